// Outbound URLs (OpenLineage today, notifications later): Sluice calls them
// with its own credentials from the machine it runs on, so a URL that
// resolves to this machine (loopback), to the link-local network or to a
// cloud metadata service (169.254.169.254) could reach what only the machine
// should. Such hosts are refused unless allow-listed in SLUICE_OUTBOUND_ALLOW
// (a comma-separated list of host names or addresses, as written in the URL).
//
// The host is resolved once and the caller connects to the address checked
// (pin it, e.g. httplib's set_hostname_addr_map), so DNS rebinding cannot
// swap in a refused address between the check and the connection.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sluice {

// The host of "http(s)://host[:port]/..." ("[::1]" gives "::1"); empty if none.
std::string UrlHost(std::string_view url);

// SLUICE_OUTBOUND_ALLOW, split.
std::vector<std::string> OutboundAllowList();

// Resolves `host` and returns the address to connect to: the first address,
// after checking every address it resolves to. Refused (InvalidSpec, naming
// the host, the address and the way out) if any is loopback, link-local,
// unspecified, multicast or a metadata address and `host` is not in `allow`.
Result<std::string> CheckOutboundHost(const std::string& host, const std::vector<std::string>& allow);

}  // namespace sluice
