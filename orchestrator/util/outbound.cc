#include "util/outbound.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "util/strings.h"

namespace sluice {

std::string UrlHost(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    return close == std::string_view::npos ? "" : std::string(rest.substr(1, close - 1));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

std::vector<std::string> OutboundAllowList() {
  const char* v = std::getenv("SLUICE_OUTBOUND_ALLOW");
  std::vector<std::string> out;
  for (std::string& s : Split(v ? v : "", ',')) {
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

namespace {

// Why an address may not be called, or nullptr.
const char* Refused(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
    if ((a >> 24) == 127) return "loopback";
    if ((a >> 16) == 0xA9FE) return a == 0xA9FEA9FE ? "a cloud metadata address" : "link-local";
    if ((a >> 24) == 0) return "unspecified";
    if ((a >> 28) == 0xE) return "multicast";
    if (a == 0x646464C8) return "a cloud metadata address";  // 100.100.100.200
    return nullptr;
  }
  if (sa->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return "loopback";
    if (IN6_IS_ADDR_UNSPECIFIED(&a)) return "unspecified";
    if (IN6_IS_ADDR_LINKLOCAL(&a)) return "link-local";
    if (IN6_IS_ADDR_MULTICAST(&a)) return "multicast";
    if (IN6_IS_ADDR_V4MAPPED(&a) || IN6_IS_ADDR_V4COMPAT(&a)) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, a.s6_addr + 12, 4);
      return Refused(reinterpret_cast<const sockaddr*>(&v4));
    }
    static const unsigned char kAwsMetadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    if (std::memcmp(a.s6_addr, kAwsMetadata, 16) == 0) return "a cloud metadata address";
    return nullptr;
  }
  return "not an IP address";
}

}  // namespace

Result<std::string> CheckOutboundHost(const std::string& host, const std::vector<std::string>& allow) {
  if (host.empty()) return Status::InvalidSpec("the URL has no host");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return Status::InvalidSpec("cannot resolve " + Quote(host) + ": " + ::gai_strerror(rc));
  bool allowed = std::find(allow.begin(), allow.end(), host) != allow.end();
  std::string first, refusal;
  for (addrinfo* p = res; p; p = p->ai_next) {
    char text[INET6_ADDRSTRLEN] = "";
    const void* raw = p->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr)
                                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr);
    ::inet_ntop(p->ai_family, raw, text, sizeof text);
    if (first.empty()) first = text;
    const char* why = Refused(p->ai_addr);
    bool this_allowed = allowed || std::find(allow.begin(), allow.end(), std::string(text)) != allow.end();
    if (why && !this_allowed && refusal.empty())
      refusal = Quote(host) + " resolves to " + text + ", " + why + "; Sluice does not call such addresses unless " +
                "SLUICE_OUTBOUND_ALLOW names the host (SLUICE_OUTBOUND_ALLOW=" + host + ")";
  }
  ::freeaddrinfo(res);
  if (!refusal.empty()) return Status::InvalidSpec(refusal);
  return first;
}

}  // namespace sluice
