// Checks on a request's header, made before any of its body is read (the
// HTTP server's `screen`, server/http.h): the count of header fields, the
// Host against DNS rebinding, and the bearer token. Used by the model server
// (plugins/torch/model_server.cc) and, later, the serving gateway; it lives
// in sluice_http's include root (server/http.h beside it) so both reach it.
// Header-only and free of libtorch, so the fuzz target
// (tests/fuzz/http_request_fuzz.cc) runs them on every request it parses,
// as the model server does. Pure: any thread.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "server/http.h"

namespace sluice::server {

struct Guard {
  std::string token;                       // "": no token needed
  std::vector<std::string> allowed_hosts;  // lower case, besides IP addresses and localhost
  size_t max_header_fields = 100;
};

// A request the server refuses: its status and the reason.
struct Refused {
  int status;
  std::string message;
};

// Compares in time that depends on the lengths only.
inline bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Why a request's Host is not one this server answers for, if it is not: a
// web page can reach a loopback server through DNS rebinding (its own name
// resolving to 127.0.0.1), but its requests then carry that name as Host.
// Accepted: IP literals, localhost, and `allowed` names (lower case).
inline std::optional<std::string> ForeignHost(const std::string& host_header, const std::vector<std::string>& allowed) {
  std::string host = host_header;
  if (!host.empty() && host[0] == '[') host = host.substr(1, host.find(']') - 1);  // [::1]:8081
  else host = host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  if (host.empty()) return std::nullopt;  // HTTP/1.0 without Host
  std::string lower = host;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  unsigned char buf[sizeof(in6_addr)];
  if (lower == "localhost" || inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1)
    return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), lower) != allowed.end()) return std::nullopt;
  return "Host " + host_header.substr(0, 100) +
         " is not served here (allowed_hosts names the hosts besides IP addresses and localhost)";
}

// Why the request is refused from its header alone, if it is: 431 over
// max_header_fields fields, 403 for a foreign Host, 401 without the token
// (every route but the two health routes). The connection is then closed
// and the body never read.
inline std::optional<Refused> Screen(const server::Request& req, const Guard& guard) {
  if (req.headers.size() > guard.max_header_fields)
    return Refused{431, "request header fields too large (at most " + std::to_string(guard.max_header_fields) + " fields)"};
  if (auto why = ForeignHost(req.Header("host"), guard.allowed_hosts)) return Refused{403, *why};
  bool health = req.segments.size() == 3 && req.segments[0] == "v2" && req.segments[1] == "health" &&
                (req.segments[2] == "live" || req.segments[2] == "ready");
  if (!guard.token.empty() && !health && !SameSecret(req.Header("authorization"), "Bearer " + guard.token))
    return Refused{401, "this server needs Authorization: Bearer <token>"};
  return std::nullopt;
}

}  // namespace sluice::server
