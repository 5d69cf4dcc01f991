// UpstreamClient (server/upstream.h) against real servers on loopback: the
// project's HttpServer as the upstream (its Request::connection tells which
// connection a request came on), a raw socket server where an upstream must
// misbehave (close after reading, send bytes that are not HTTP or exact
// header sizes), and an HttpServer whose AsyncHandler forwards with the
// client, as the gateway will.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "../common/free_port.h"
#include "server/http.h"
#include "server/upstream.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;

// Callbacks' results in the order they came, and the thread each ran on.
class Collector {
 public:
  UpstreamCallback Callback() {
    return [this](UpstreamResult r) {
      std::lock_guard lock(mu_);
      results_.push_back(std::move(r));
      threads_.push_back(std::this_thread::get_id());
      cv_.notify_all();
    };
  }
  // True once at least n results came (20 s at most).
  bool Wait(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 20s, [&] { return results_.size() >= n; });
  }
  std::vector<UpstreamResult> results() {
    std::lock_guard lock(mu_);
    return results_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<UpstreamResult> results_;
  std::vector<std::thread::id> threads_;
};

UpstreamRequest Post(std::string target, std::string body = "{}") {
  UpstreamRequest r;
  r.target = std::move(target);
  r.headers = {{"content-type", "application/json"}};
  r.body = std::make_shared<const std::string>(std::move(body));
  return r;
}

UpstreamResult SendAndWait(UpstreamClient& client, int port, UpstreamRequest request,
                           std::chrono::milliseconds timeout = 10s) {
  Collector c;
  client.Send(port, std::move(request), timeout, c.Callback());
  EXPECT_TRUE(c.Wait(1));
  auto results = c.results();
  return results.empty() ? UpstreamResult{} : results[0];
}

std::unique_ptr<HttpServer> Started(std::unique_ptr<HttpServer> server) {
  Status s = server->Start();
  EXPECT_TRUE(s.ok()) << s.message();
  return server;
}

ServerOptions Loopback() {
  ServerOptions o;
  o.port = 0;
  o.threads = 2;
  o.max_body = 64 << 20;
  return o;
}

// Answers /status/N with N, echoing x-in as x-echo, the connection as
// x-connection, Host as x-host, and "got:" + the body; /size/N with N bytes.
std::unique_ptr<HttpServer> EchoServer(ServerOptions options = Loopback()) {
  return Started(std::make_unique<HttpServer>(options, [](const Request& req) {
    Response res;
    res.content_type = "text/plain";
    res.headers = {{"x-echo", req.Header("x-in")},
                   {"x-connection", std::to_string(req.connection)},
                   {"x-host", req.Header("host")},
                   {"x-content-length", req.Header("content-length")},
                   {"x-injected", req.Header("x-injected")}};
    if (req.segments.size() == 2 && req.segments[0] == "status") {
      res.status = std::stoi(req.segments[1]);
      res.body = "got:" + req.body;
    } else if (req.segments.size() == 2 && req.segments[0] == "size") {
      res.body.assign(std::stoul(req.segments[1]), 'x');
    } else if (req.segments.size() == 2 && req.segments[0] == "header") {
      res.headers.emplace_back("x-big", std::string(std::stoul(req.segments[1]), 'h'));
    }
    return res;
  }));
}

// A TCP server on 127.0.0.1 that serves one connection at a time: it reads
// each request's head and Content-Length body, then hands the socket to
// `act`, which writes what it likes and returns whether to keep reading
// (false closes the connection).
class RawServer {
 public:
  explicit RawServer(std::function<bool(int fd)> act) : act_(std::move(act)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 50) > 0;
  }
  // One request's head and body; false if the peer went away or we stop.
  bool ReadRequest(int fd) {
    std::string in;
    char buf[4096];
    size_t end = std::string::npos;
    while (end == std::string::npos) {
      if (stop_) return false;
      if (!Readable(fd)) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      end = in.find("\r\n\r\n");
    }
    size_t length = 0;
    size_t at = in.find("Content-Length: ");
    if (at != std::string::npos && at < end) length = std::stoul(in.substr(at + 16));
    while (in.size() < end + 4 + length) {
      if (stop_) return false;
      if (!Readable(fd)) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  void Loop() {
    while (!stop_) {
      if (!Readable(listen_fd_)) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      while (ReadRequest(fd)) {
        ++requests_;
        if (!act_(fd)) break;
      }
      ::close(fd);
    }
  }

  std::function<bool(int)> act_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// An answer whose status line and fields, with the blank line, are exactly `size` bytes.
std::string AnswerWithHeaderOf(size_t size) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ";
  const std::string tail = "\r\n\r\n";
  head.append(size - head.size() - tail.size(), 'p');
  return head + tail + "ok";
}

TEST(UpstreamTest, AnAnswerIsRelayedWithItsStatusHeadersAndBody) {
  auto upstream = EchoServer();
  auto client = MakeStandaloneUpstreamClient(1);
  for (int status : {200, 404, 500}) {
    UpstreamRequest req = Post("/status/" + std::to_string(status), R"({"inputs":[]})");
    req.headers.emplace_back("X-In", "hello");
    UpstreamResult r = SendAndWait(*client, upstream->port(), req);
    ASSERT_EQ(r.error, UpstreamError::kNone) << r.message;
    EXPECT_TRUE(r.wrote_any);
    EXPECT_TRUE(r.message.empty());
    EXPECT_EQ(r.response.status, status);
    EXPECT_EQ(r.response.Header("x-echo"), "hello");
    EXPECT_EQ(r.response.Header("content-type"), "text/plain");  // names lower-cased
    EXPECT_EQ(r.response.body, R"(got:{"inputs":[]})");
  }
}

TEST(UpstreamTest, TheClientSetsHostAndContentLengthAndDropsHeadersThatCouldSplitTheRequest) {
  auto upstream = EchoServer();
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamRequest req = Post("/status/200", "12345");
  req.headers.emplace_back("Host", "evil.example");
  req.headers.emplace_back("Content-Length", "99");
  req.headers.emplace_back("x-injected", "a\r\nx-smuggled: 1");
  UpstreamResult r = SendAndWait(*client, upstream->port(), req);
  ASSERT_EQ(r.error, UpstreamError::kNone) << r.message;
  EXPECT_EQ(r.response.Header("x-host"), "127.0.0.1:" + std::to_string(upstream->port()));
  EXPECT_EQ(r.response.Header("x-content-length"), "5");
  EXPECT_EQ(r.response.Header("x-injected"), "");
  EXPECT_EQ(r.response.body, "got:12345");
}

TEST(UpstreamTest, SequentialRequestsReuseOneKeepAliveConnection) {
  auto upstream = EchoServer();
  auto client = MakeStandaloneUpstreamClient(1);
  std::string first;
  for (int i = 0; i < 5; ++i) {
    UpstreamResult r = SendAndWait(*client, upstream->port(), Post("/status/200"));
    ASSERT_EQ(r.error, UpstreamError::kNone) << r.message;
    if (i == 0) first = r.response.Header("x-connection");
    EXPECT_EQ(r.response.Header("x-connection"), first) << "request " << i;
  }
  EXPECT_EQ(first, "1");
}

TEST(UpstreamTest, AConnectionIdlePastTheIdleTimeoutIsNotReused) {
  auto upstream = EchoServer();
  UpstreamOptions options;
  options.idle_timeout = 100ms;
  auto client = MakeStandaloneUpstreamClient(1, options);
  UpstreamResult a = SendAndWait(*client, upstream->port(), Post("/status/200"));
  std::this_thread::sleep_for(400ms);
  UpstreamResult b = SendAndWait(*client, upstream->port(), Post("/status/200"));
  ASSERT_EQ(b.error, UpstreamError::kNone) << b.message;
  EXPECT_EQ(a.response.Header("x-connection"), "1");
  EXPECT_EQ(b.response.Header("x-connection"), "2");
}

TEST(UpstreamTest, AConnectionTheServerClosedWhileIdleIsDiscardedBeforeReuse) {
  ServerOptions options = Loopback();
  options.read_timeout = 100ms;  // the upstream drops an idle keep-alive connection after 100 ms
  auto upstream = EchoServer(options);
  auto client = MakeStandaloneUpstreamClient(1);  // its own idle limit: 4 s
  UpstreamResult a = SendAndWait(*client, upstream->port(), Post("/status/200"));
  std::this_thread::sleep_for(500ms);
  UpstreamResult b = SendAndWait(*client, upstream->port(), Post("/status/200"));
  ASSERT_EQ(b.error, UpstreamError::kNone) << b.message;
  EXPECT_EQ(a.response.Header("x-connection"), "1");
  EXPECT_EQ(b.response.Header("x-connection"), "2");
}

TEST(UpstreamTest, ForgetClosesThePortsIdleConnections) {
  auto upstream = EchoServer();
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamResult a = SendAndWait(*client, upstream->port(), Post("/status/200"));
  client->Forget(upstream->port());
  UpstreamResult b = SendAndWait(*client, upstream->port(), Post("/status/200"));
  ASSERT_EQ(b.error, UpstreamError::kNone) << b.message;
  EXPECT_EQ(a.response.Header("x-connection"), "1");
  EXPECT_EQ(b.response.Header("x-connection"), "2");
}

TEST(UpstreamTest, ARefusedConnectIsReportedNeverSent) {
  int port = testing::FreePort();  // nothing listens on it
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamResult r = SendAndWait(*client, port, Post("/v2/models/fashion/infer"));
  EXPECT_EQ(r.error, UpstreamError::kConnect);
  EXPECT_FALSE(r.wrote_any);
  EXPECT_EQ(r.message, "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST(UpstreamTest, AServerThatClosesAfterReadingTheRequestIsReportedSent) {
  RawServer upstream([](int) { return false; });
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamResult r = SendAndWait(*client, upstream.port(), Post("/v2/models/fashion/infer"));
  EXPECT_EQ(r.error, UpstreamError::kClosed) << r.message;
  EXPECT_TRUE(r.wrote_any);
  EXPECT_EQ(upstream.requests(), 1);
  EXPECT_NE(r.message.find("127.0.0.1:" + std::to_string(upstream.port()) + " closed the connection"),
            std::string::npos) << r.message;
}

TEST(UpstreamTest, AServerThatNeverAnswersTimesOutAtTheDeadline) {
  std::mutex mu;
  std::vector<Responder> held;
  auto upstream = Started(std::make_unique<HttpServer>(Loopback(), [&](Request, Responder r) {
    std::lock_guard lock(mu);
    held.push_back(std::move(r));
  }));
  auto client = MakeStandaloneUpstreamClient(1);
  auto start = std::chrono::steady_clock::now();
  UpstreamResult r = SendAndWait(*client, upstream->port(), Post("/v2/models/fashion/infer"), 300ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.error, UpstreamError::kTimeout);
  EXPECT_TRUE(r.wrote_any);
  EXPECT_EQ(r.message, "no answer from 127.0.0.1:" + std::to_string(upstream->port()) + " within 300 ms");
  EXPECT_GE(elapsed, 300ms);
  std::lock_guard lock(mu);
  EXPECT_EQ(held.size(), 1u);
  held.clear();
}

TEST(UpstreamTest, AHeaderOver16KiBIsABadResponse) {
  auto upstream = EchoServer();
  auto client = MakeStandaloneUpstreamClient(1);  // the default limits
  UpstreamResult r = SendAndWait(*client, upstream->port(), Post("/header/17000"));
  EXPECT_EQ(r.error, UpstreamError::kBadResponse);
  EXPECT_EQ(r.message, "answer from 127.0.0.1:" + std::to_string(upstream->port()) + ": header over 16384 bytes");
  UpstreamResult small = SendAndWait(*client, upstream->port(), Post("/header/15000"));
  EXPECT_EQ(small.error, UpstreamError::kNone) << small.message;
}

TEST(UpstreamTest, AHeaderAtTheLimitIsAcceptedAndOneByteMoreIsRefused) {
  size_t size = 0;
  RawServer upstream([&](int fd) {
    WriteAll(fd, AnswerWithHeaderOf(size));
    return true;
  });
  UpstreamOptions options;
  options.max_header = 1024;
  auto client = MakeStandaloneUpstreamClient(1, options);
  size = 1024;
  UpstreamResult at = SendAndWait(*client, upstream.port(), Post("/"));
  EXPECT_EQ(at.error, UpstreamError::kNone) << at.message;
  EXPECT_EQ(at.response.body, "ok");
  size = 1025;
  UpstreamResult past = SendAndWait(*client, upstream.port(), Post("/"));
  EXPECT_EQ(past.error, UpstreamError::kBadResponse);
  EXPECT_NE(past.message.find("header over 1024 bytes"), std::string::npos) << past.message;
}

TEST(UpstreamTest, ABodyAtTheLimitIsAcceptedAndOneByteMoreIsRefused) {
  auto upstream = EchoServer();
  UpstreamOptions options;
  options.max_body = 1000;
  auto client = MakeStandaloneUpstreamClient(1, options);
  UpstreamResult at = SendAndWait(*client, upstream->port(), Post("/size/1000"));
  ASSERT_EQ(at.error, UpstreamError::kNone) << at.message;
  EXPECT_EQ(at.response.body.size(), 1000u);
  UpstreamResult past = SendAndWait(*client, upstream->port(), Post("/size/1001"));
  EXPECT_EQ(past.error, UpstreamError::kBadResponse);
  EXPECT_EQ(past.message, "answer from 127.0.0.1:" + std::to_string(upstream->port()) + ": body over 1000 bytes");
}

TEST(UpstreamTest, ABodyOver64MiBIsRefusedFromItsContentLengthWithoutWaitingForIt) {
  RawServer upstream([](int fd) {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string((64 << 20) + 1) + "\r\n\r\n");
    return true;  // and never sends the body
  });
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamResult r = SendAndWait(*client, upstream.port(), Post("/"), 20s);
  EXPECT_EQ(r.error, UpstreamError::kBadResponse);
  EXPECT_NE(r.message.find("body over 67108864 bytes"), std::string::npos) << r.message;
}

TEST(UpstreamTest, BytesThatAreNotHttpAreABadResponse) {
  RawServer upstream([](int fd) {
    WriteAll(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
    return false;
  });
  auto client = MakeStandaloneUpstreamClient(1);
  UpstreamResult r = SendAndWait(*client, upstream.port(), Post("/"));
  EXPECT_EQ(r.error, UpstreamError::kBadResponse) << r.message;
  EXPECT_TRUE(r.wrote_any);
}

// The front server forwards each request to `upstream_port` with its own client.
struct Front {
  std::unique_ptr<HttpServer> server;
  std::shared_ptr<UpstreamClient> client;
};

TEST(UpstreamTest, CallbacksRunOnTheIoThreadThatSentAndOnceEach) {
  auto upstream = EchoServer();
  int upstream_port = upstream->port();
  std::atomic<int> wrong_thread{0}, calls{0};
  Front front;
  front.server = Started(std::make_unique<HttpServer>(Loopback(), [&](Request, Responder responder) {
    auto sender = std::this_thread::get_id();
    front.client->Send(upstream_port, Post("/status/200"), 10s, [&, sender, responder](UpstreamResult r) {
      ++calls;
      if (std::this_thread::get_id() != sender) ++wrong_thread;
      Response res;
      res.body = std::to_string(r.response.status);
      responder.Send(std::move(res));
    });
  }));
  front.client = front.server->MakeUpstreamClient();
  for (int i = 0; i < 8; ++i) {  // fresh connections, so both I/O threads take some
    httplib::Client http("127.0.0.1", front.server->port());
    auto res = http.Get("/");
    ASSERT_TRUE(res) << "request " << i;
    EXPECT_EQ(res->body, "200");
  }
  EXPECT_EQ(calls, 8);
  EXPECT_EQ(wrong_thread, 0);

  // From a thread that is not the server's: done runs on an I/O thread.
  Collector c;
  front.client->Send(upstream_port, Post("/status/200"), 10s, c.Callback());
  ASSERT_TRUE(c.Wait(1));
  EXPECT_EQ(c.results()[0].error, UpstreamError::kNone);
  EXPECT_NE(c.threads()[0], std::this_thread::get_id());
  front.server->Stop();
  EXPECT_EQ(c.results().size(), 1u);
}

TEST(UpstreamTest, AHundredConcurrentSendsFromAnAsyncHandlerAreAllAnswered) {
  auto upstream = EchoServer();
  int upstream_port = upstream->port();
  Front front;
  front.server = Started(std::make_unique<HttpServer>(Loopback(), [&](Request, Responder responder) {
    // All callbacks run on this I/O thread: plain counters would do; shared, as they outlive the handler.
    auto answered = std::make_shared<int>(0), ok = std::make_shared<int>(0);
    for (int i = 0; i < 100; ++i) {
      front.client->Send(upstream_port, Post("/status/200", std::to_string(i)), 20s,
                         [answered, ok, responder, i](UpstreamResult r) {
                           if (r.error == UpstreamError::kNone && r.response.body == "got:" + std::to_string(i)) ++*ok;
                           if (++*answered == 100) {
                             Response res;
                             res.body = std::to_string(*ok);
                             responder.Send(std::move(res));
                           }
                         });
    }
  }));
  front.client = front.server->MakeUpstreamClient();
  httplib::Client http("127.0.0.1", front.server->port());
  http.set_read_timeout(30, 0);
  auto res = http.Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "100");
}

TEST(UpstreamTest, StopWithRequestsPendingCallsEachCallbackOnceWithAnError) {
  std::mutex mu;
  std::vector<Responder> held;
  auto upstream = Started(std::make_unique<HttpServer>(Loopback(), [&](Request, Responder r) {
    std::lock_guard lock(mu);
    held.push_back(std::move(r));
  }));
  auto front = Started(std::make_unique<HttpServer>(Loopback(), [](const Request&) { return Response(); }));
  auto client = front->MakeUpstreamClient();
  Collector c;
  for (int i = 0; i < 10; ++i) client->Send(upstream->port(), Post("/"), 60s, c.Callback());
  for (int i = 0; i < 2000; ++i) {  // until the upstream holds all ten (20 s at most)
    {
      std::lock_guard lock(mu);
      if (held.size() == 10) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  front->Stop();
  auto results = c.results();  // all called before Stop returned
  ASSERT_EQ(results.size(), 10u);
  for (const auto& r : results) {
    EXPECT_EQ(r.error, UpstreamError::kClosed);
    EXPECT_TRUE(r.wrote_any);
    EXPECT_EQ(r.message, "127.0.0.1:" + std::to_string(upstream->port()) + ": the HTTP server stopped");
  }
  for (auto id : c.threads()) EXPECT_NE(id, std::this_thread::get_id());

  // After Stop, a Send from this thread fails at once, here.
  Collector late;
  client->Send(upstream->port(), Post("/"), 1s, late.Callback());
  ASSERT_EQ(late.results().size(), 1u);
  EXPECT_EQ(late.results()[0].error, UpstreamError::kConnect);
  EXPECT_FALSE(late.results()[0].wrote_any);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.results().size(), 10u);  // none called twice
  std::lock_guard lock(mu);
  held.clear();
}

TEST(HttpServerTest, WithBothHandlersTheDeferredRequestsGoToTheAsyncOneAndTheRestAreAnsweredInline) {
  ServerOptions so;
  so.port = 0;
  std::atomic<int> inline_calls{0}, deferred_calls{0};
  std::thread later;
  HttpServer server(
      so,
      [&](const Request& r) {
        ++inline_calls;
        Response res;
        res.body = "inline:" + r.target;
        return res;
      },
      [&](Request r, Responder responder) {
        ++deferred_calls;
        later = std::thread([r = std::move(r), responder] {  // answered later, from another thread
          Response res;
          res.status = 202;
          res.body = "deferred:" + r.target;
          responder.Send(std::move(res));
        });
      },
      [](const Request& r) { return !r.segments.empty() && r.segments[0] == "v2"; });
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  auto a = client.Get("/api/health");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "inline:/api/health");
  auto b = client.Get("/v2/models/x/ready");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 202);
  EXPECT_EQ(b->body, "deferred:/v2/models/x/ready");
  EXPECT_EQ(inline_calls.load(), 1);
  EXPECT_EQ(deferred_calls.load(), 1);
  later.join();  // its Responder is gone before the server
  server.Stop();
}

}  // namespace
}  // namespace sluice::server

TEST(UpstreamTest, AChunkedAnswersTrailerFieldsAreNotTakenAsHeaders) {
  // Trailers come after the body, past the header's size check: a crash the
  // fuzzer found when they were counted as headers (corpus:
  // trailer-over-header-limit).
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: 1\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: " +
      std::string(300, 't') + "\r\n\r\n";
  sluice::server::UpstreamOptions small;
  small.max_header = 256;
  sluice::server::UpstreamResponse r;
  std::string why;
  ASSERT_EQ(sluice::server::ParseUpstreamResponse(wire, "POST", small, &r, &why), sluice::server::UpstreamParse::kResponse)
      << why;
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.Header("x-head"), "1");
  EXPECT_EQ(r.Header("x-trailer"), "");
  EXPECT_EQ(r.headers.size(), 2u) << "transfer-encoding and x-head";
}

TEST(UpstreamTest, ATrailerFieldNamedLikeAHeaderFieldNeitherJoinsNorDisplacesTheHeaders) {
  // Beast files a field after the last one of its name, trailers included:
  // a crash the fuzzer found when the header was "its first N fields"
  // (corpus: trailer-named-as-header).
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: 1\r\nContent-Type: text/plain\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Head: " + std::string(300, 't') + "\r\n\r\n";
  sluice::server::UpstreamOptions small;
  small.max_header = 256;
  sluice::server::UpstreamResponse r;
  std::string why;
  ASSERT_EQ(sluice::server::ParseUpstreamResponse(wire, "POST", small, &r, &why), sluice::server::UpstreamParse::kResponse)
      << why;
  EXPECT_EQ(r.body, "hello");
  const std::vector<std::pair<std::string, std::string>> header = {
      {"transfer-encoding", "chunked"}, {"x-head", "1"}, {"content-type", "text/plain"}};
  EXPECT_EQ(r.headers, header);
}
