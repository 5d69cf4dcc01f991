// HttpReadinessProbe (supervisor.h): readiness polls over plain
// non-blocking POSIX sockets, every due replica at once in one poll().
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "serving/supervisor.h"

namespace sluice::serving {

std::vector<bool> HttpReadinessProbe::Probe(const std::vector<int>& ports, int64_t timeout_ms) {
  struct Conn {
    int fd = -1;
    bool sent = false;
    std::string request, answer;
    bool done = false, ready = false;
  };
  std::vector<Conn> conns(ports.size());
  for (size_t i = 0; i < ports.size(); ++i) {
    Conn& c = conns[i];
    c.done = true;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(ports[i]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
      ::close(fd);
      continue;
    }
    c.fd = fd;
    c.done = false;
    c.request = "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(ports[i]) +
                "\r\nConnection: close\r\n\r\n";
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i].done) continue;
      fds.push_back({conns[i].fd, static_cast<short>(conns[i].sent ? POLLIN : POLLOUT), 0});
      which.push_back(i);
    }
    if (fds.empty()) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) break;
    for (size_t k = 0; k < fds.size() && n > 0; ++k) {
      if (fds[k].revents == 0) continue;
      Conn& c = conns[which[k]];
      if (!c.sent) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || ::send(c.fd, c.request.data(), c.request.size(), MSG_NOSIGNAL) !=
                            static_cast<ssize_t>(c.request.size())) {
          c.done = true;  // refused, or a request of 80 bytes did not fit: not ready
          continue;
        }
        c.sent = true;
        continue;
      }
      char buf[512];
      ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
      if (got > 0) c.answer.append(buf, static_cast<size_t>(got));
      // The status line is all we need: "HTTP/1.1 200 OK".
      if (got <= 0 || c.answer.find("\r\n") != std::string::npos || c.answer.size() > 256) {
        c.done = true;
        c.ready = c.answer.rfind("HTTP/1.", 0) == 0 && c.answer.size() >= 12 && c.answer.compare(8, 4, " 200") == 0;
      }
    }
  }
  std::vector<bool> out(ports.size(), false);
  for (size_t i = 0; i < conns.size(); ++i) {
    out[i] = conns[i].ready;
    if (conns[i].fd >= 0) ::close(conns[i].fd);
  }
  return out;
}

}  // namespace sluice::serving
