#include "exec/service_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "exec/local_executor.h"

namespace sluice::exec {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

using Clock = std::chrono::steady_clock;

int LeftMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on `fd` until `deadline`; true when they came.
bool PollUntil(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, LeftMs(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

// A connected non-blocking socket to 127.0.0.1:port, or -1.
int Connect(int port, Clock::time_point deadline) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  int err = errno;
  if (err == EINPROGRESS && PollUntil(fd, POLLOUT, deadline)) {
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
  }
  ::close(fd);
  return -1;
}

}  // namespace

Result<int> FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("a socket for a service's port: ") + std::strerror(errno));
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Status::IoError("a free port on 127.0.0.1 for a service: " + why);
  }
  ::close(fd);
  return static_cast<int>(ntohs(a.sin_port));
}

bool TcpReady(int port, int timeout_ms) {
  int fd = Connect(port, Clock::now() + std::chrono::milliseconds(timeout_ms));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool HttpReady(int port, const std::string& path, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int fd = Connect(port, deadline);
  if (fd < 0) return false;
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size() && PollUntil(fd, POLLOUT, deadline)) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0 && errno != EAGAIN && errno != EINTR) break;
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string answer;
  while (sent == request.size() && answer.find("\r\n") == std::string::npos && answer.size() < 256 &&
         PollUntil(fd, POLLIN, deadline)) {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (n > 0) answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.x 2xx ..." or 3xx.
  return answer.rfind("HTTP/1.", 0) == 0 && answer.size() >= 12 && answer[8] == ' ' &&
         (answer[9] == '2' || answer[9] == '3');
}

Result<int> LocalExecutor::ServicePort() { return FreeLoopbackPort(); }

bool LocalExecutor::ServiceReady(const engine::ServiceCheck& check) {
  constexpr int kCheckMs = 1000;
  if (check.kind == engine::ServiceCheck::Kind::kHttp) return HttpReady(check.port, check.http_path, kCheckMs);
  return TcpReady(check.port, kCheckMs);
}

}  // namespace sluice::exec
