// HttpServer on Boost.Beast: one io_context (one thread) per set of
// connections, Server-Sent Events written straight to the socket after a
// hand-written header block, deferred answers posted back to the
// connection's thread. About 610 lines, kept in one file: a connection's
// life (read, route, answer now or later, stream) is one state machine.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>  // Boost 1.74's Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "server/http.h"
#include "upstream_threads.h"  // beside this file: internal to sluice_http

namespace sluice::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = Hex(in[i + 1]), lo = Hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::string Request::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return "";
}

std::optional<std::string> Request::Query(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return v;
  return std::nullopt;
}

namespace {

struct Shared {
  ServerOptions options;
  Handler handler;             // one of these two, or both and `deferred`
  AsyncHandler async_handler;
  std::function<bool(const Request&)> deferred;  // with both: which requests go to async_handler
  std::atomic<int> connections{0};
  std::atomic<uint64_t> accepted{0};  // numbers the connections (Request::connection)

  // The body of one of the server's own refusals.
  std::string ErrorBody(int status, const std::string& code, const std::string& message) const {
    if (options.error_body) return options.error_body(status, code, message);
    return R"({"error":{"code":")" + code + R"(","message":")" + message + "\"}}";
  }
  Response Error(int status, const std::string& code, const std::string& message) const {
    Response res;
    res.status = status;
    res.body = ErrorBody(status, code, message);
    return res;
  }
};

// A parser's verdict that the bytes are not HTTP (answered 400), as opposed
// to a client that went away, a timeout, or a limit (413/431).
bool IsMalformed(beast::error_code ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category()) return false;
  auto e = static_cast<http::error>(ec.value());
  return e >= http::error::bad_line_ending && e <= http::error::bad_obs_fold;
}

// Splits and decodes the target; false if it is not a decodable origin-form path.
bool ParseTarget(std::string_view target, Request* r) {
  if (target.empty() || target[0] != '/') return false;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    std::string decoded;
    if (!PercentDecode(seg, &decoded)) return false;
    if (!(decoded.empty() && slash == std::string_view::npos && !r->segments.empty())) r->segments.push_back(decoded);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (!r->segments.empty() && r->segments.back().empty()) r->segments.pop_back();
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string k, v;
    if (!PercentDecode(pair.substr(0, eq), &k, true)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), &v, true)) return false;
    if (!k.empty()) r->query.emplace_back(std::move(k), std::move(v));
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return true;
}

// Fills `req` from a parsed message; false if the target is not a decodable path.
template <typename Message>
bool ToRequest(const Message& msg, std::string body, Request* req) {
  req->method = std::string(msg.method_string());
  req->target = std::string(msg.target());
  for (const auto& f : msg) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    req->headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req->body = std::move(body);
  return ParseTarget(req->target, req);
}

// The most a connection buffers: the header block, or (reading a chunked
// body) one chunk-size line or the trailer block, must fit. Beast 1.74 counts
// neither a chunk extension nor trailer fields against its header or body
// limit, so without this cap a client could grow the buffer without bound
// (found by tests/fuzz/http_request_fuzz). Chunk data and Content-Length
// bodies pass through the buffer and are bounded by max_body.
size_t BufferLimit(const ServerOptions& o) { return o.max_header + 8192; }

// The bytes of a message's fields, trailers included: at most max_header.
template <typename Message>
size_t FieldBytes(const Message& msg) {
  size_t n = 0;
  for (const auto& f : msg) n += f.name_string().size() + f.value().size() + 4;  // ": " and CRLF
  return n;
}

// The header parser a connection starts each request with.
void LimitHeaderParser(http::request_parser<http::empty_body>& p, const ServerOptions& o) {
  p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(o.max_header, UINT32_MAX)));
  p.body_limit(o.max_body);  // a larger Content-Length fails the header read
  p.eager(false);
}

class Session;

}  // namespace

// One request's pending answer (see Responder in http.h).
struct Responder::State {
  explicit State(std::shared_ptr<Session> s) : session(std::move(s)) {}
  ~State();
  std::shared_ptr<Session> session;
  std::atomic<bool> sent{false};
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Shared* shared)
      : stream_(std::move(socket)), buffer_(BufferLimit(shared->options)), shared_(shared), id_(++shared->accepted) {}
  ~Session() { --shared_->connections; }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  // The event stream's side (any thread).
  void Enqueue(std::string text) {
    net::post(stream_.get_executor(), [self = shared_from_this(), text = std::move(text)]() mutable {
      if (self->closed_) return;
      self->queued_bytes_ += text.size();
      if (self->queued_bytes_ > kMaxQueuedBytes) {  // a client that does not read
        self->Shutdown();
        return;
      }
      self->queue_.push_back(std::move(text));
      if (!self->writing_) self->WriteQueue();
    });
  }
  void CloseFromOutside() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->Shutdown(); });
  }
  // A deferred answer (any thread): written on the connection's thread.
  void Answer(Response res) {
    net::post(stream_.get_executor(), [self = shared_from_this(), res = std::move(res)]() mutable {
      if (self->closed_) return;
      if (res.on_stream) return self->StartStream(std::move(res));
      self->Write(std::move(res), self->keep_alive_);
    });
  }
  const Shared& shared() const { return *shared_; }
  std::atomic<bool> gone{false};

 private:
  static constexpr size_t kMaxQueuedBytes = 4 << 20;

  void ReadHeader() {
    header_parser_.emplace();
    LimitHeaderParser(*header_parser_, shared_->options);
    stream_.expires_after(shared_->options.read_timeout);
    http::async_read_header(stream_, buffer_, *header_parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return Refuse(431, "request header fields too large");
    if (ec == http::error::body_limit)
      return Refuse(413, "request body over the limit of " + std::to_string(shared_->options.max_body) + " bytes");
    if (IsMalformed(ec)) return Refuse(400, "the request is not valid HTTP");
    if (ec) return Shutdown();
    auto& h = header_parser_->get();
    auto length = header_parser_->content_length();
    if (length && *length > shared_->options.max_body)
      return Refuse(413, "request body over the limit of " + std::to_string(shared_->options.max_body) + " bytes");
    if (shared_->options.screen) {
      Request req;
      if (!ToRequest(h, std::string(), &req)) return Refuse(400, "the request target is not a valid path");
      std::optional<Response> refusal;
      try {
        refusal = shared_->options.screen(req);
      } catch (const std::exception&) {
        refusal = shared_->Error(500, "internal", "the server failed to answer");
      }
      if (refusal) return Write(std::move(*refusal), false);  // the body, if any, is not read
    }
    if (header_parser_->is_done()) {  // no body: answer without a second read
      auto msg = header_parser_->release();
      return Dispatch(msg, std::string());
    }
    body_parser_.emplace(std::move(*header_parser_));
    body_parser_->body_limit(shared_->options.max_body);
    if (beast::iequals(h[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t) {
        if (ec) return self->Shutdown();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *body_parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(beast::error_code ec) {
    if (ec == http::error::body_limit || ec == http::error::buffer_overflow)
      return Refuse(413, "request body over the limit of " + std::to_string(shared_->options.max_body) + " bytes");
    if (IsMalformed(ec)) return Refuse(400, "the request is not valid HTTP");
    if (ec) return Shutdown();
    auto msg = body_parser_->release();
    body_parser_.reset();
    if (FieldBytes(msg) > shared_->options.max_header) return Refuse(431, "request header fields too large");  // trailers
    Dispatch(msg, std::move(msg.body()));
  }

  template <typename Message>
  void Dispatch(const Message& msg, std::string body) {
    Request req;
    req.connection = id_;
    keep_alive_ = msg.keep_alive();
    if (!ToRequest(msg, std::move(body), &req)) return Refuse(400, "the request target is not a valid path");
    if (shared_->async_handler && (!shared_->handler || shared_->deferred(req))) {
      // Unsent and destroyed (the handler threw, or dropped it): the State answers 500.
      Responder responder(std::make_shared<Responder::State>(shared_from_this()));
      try {
        shared_->async_handler(std::move(req), std::move(responder));
      } catch (const std::exception&) {
      }
      return;
    }
    Response res;
    try {
      res = shared_->handler(req);
    } catch (const std::exception&) {
      res = shared_->Error(500, "internal", "the server failed to answer");
    }
    if (res.on_stream) return StartStream(std::move(res));
    Write(std::move(res), keep_alive_);
  }

  void Write(Response res, bool keep_alive) {
    if (!res.static_body.empty()) {
      auto msg = std::make_shared<http::response<http::span_body<const char>>>(static_cast<http::status>(res.status), 11);
      msg->body() = http::span_body<const char>::value_type(res.static_body.data(), res.static_body.size());
      return Send(std::move(msg), res, keep_alive);
    }
    auto msg = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(res.status), 11);
    msg->body() = std::move(res.body);
    Send(std::move(msg), res, keep_alive);
  }

  template <typename Message>
  void Send(std::shared_ptr<Message> msg, const Response& res, bool keep_alive) {
    msg->set(http::field::server, "sluice");
    msg->set(http::field::content_type, res.content_type);
    msg->set("X-Content-Type-Options", "nosniff");
    for (auto& [k, v] : res.headers) msg->insert(k, v);
    msg->keep_alive(keep_alive);
    msg->prepare_payload();
    stream_.expires_after(shared_->options.read_timeout);
    http::async_write(stream_, *msg, [self = shared_from_this(), msg](beast::error_code ec, size_t) {
      if (ec || !msg->keep_alive()) return self->Shutdown();
      self->ReadHeader();
    });
  }

  void Refuse(int status, const std::string& message) {
    const char* code = status == 431 ? "header_too_large" : status == 413 ? "body_too_large" : "bad_request";
    Write(shared_->Error(status, code, message), false);
  }

  void StartStream(Response res) {
    std::string head = "HTTP/1.1 200 OK\r\nServer: sluice\r\nContent-Type: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n";
    for (auto& [k, v] : res.headers) head += k + ": " + v + "\r\n";
    head += "\r\n";
    stream_.expires_never();
    queue_.push_back(std::move(head));
    WriteQueue();
    // Reading tells us when the client goes away.
    stream_.async_read_some(net::buffer(sink_), [self = shared_from_this()](beast::error_code, size_t) {
      self->Shutdown();
    });
    res.on_stream(std::make_shared<Stream>(weak_from_this()));
  }

  void WriteQueue() {
    if (queue_.empty() || closed_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    auto text = std::make_shared<std::string>(std::move(queue_.front()));
    queue_.pop_front();
    queued_bytes_ -= std::min(queued_bytes_, text->size());
    net::async_write(stream_.socket(), net::buffer(*text), [self = shared_from_this(), text](beast::error_code ec, size_t) {
      if (ec) return self->Shutdown();
      self->WriteQueue();
    });
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    gone = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  class Stream : public EventStream {
   public:
    explicit Stream(std::weak_ptr<Session> s) : session_(std::move(s)) {}
    bool SendText(std::string events) override {
      auto s = session_.lock();
      if (!s || s->gone) return false;
      s->Enqueue(std::move(events));
      return true;
    }
    bool open() const override {
      auto s = session_.lock();
      return s && !s->gone;
    }
    void Close() override {
      if (auto s = session_.lock()) s->CloseFromOutside();
    }

   private:
    std::weak_ptr<Session> session_;
  };

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Shared* shared_;
  const uint64_t id_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> body_parser_;
  bool writing_ = false, closed_ = false;
  bool keep_alive_ = false;  // of the request being answered
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  char sink_[512];
};

}  // namespace

std::string EventStream::FormatEvent(std::string_view event, std::string_view data) {
  std::string text;
  if (event.empty()) {
    text = ": " + std::string(data) + "\n\n";
    return text;
  }
  text.reserve(event.size() + data.size() + 16);
  text += "event: ";
  text += event;
  text += '\n';
  size_t start = 0;
  while (true) {  // one data: line per line of data
    size_t nl = data.find('\n', start);
    text += "data: ";
    text += data.substr(start, nl == std::string_view::npos ? nl : nl - start);
    text += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  text += '\n';
  return text;
}

Responder::State::~State() {
  if (!sent.exchange(true)) session->Answer(session->shared().Error(500, "internal", "the server failed to answer"));
}

void Responder::Send(Response response) const {
  if (state_ && !state_->sent.exchange(true)) state_->session->Answer(std::move(response));
}

ParseResult ParseRequest(std::string_view wire, const ServerOptions& options, Request* out) {
  // As ReadHeader, OnHeader, ReadBody and OnRequest do, from a buffer.
  auto refusal = [](beast::error_code ec) {
    if (ec == http::error::need_more) return ParseResult::kIncomplete;
    if (ec == http::error::header_limit) return ParseResult::kHeaderTooLarge;
    if (ec == http::error::body_limit) return ParseResult::kTooLarge;
    return ParseResult::kBad;
  };
  beast::error_code ec;
  http::request_parser<http::empty_body> header;
  LimitHeaderParser(header, options);
  size_t used = header.put(net::buffer(wire.data(), wire.size()), ec);
  if (ec) return refusal(ec);
  if (!header.is_header_done()) return ParseResult::kIncomplete;
  auto length = header.content_length();
  if (length && *length > options.max_body) return ParseResult::kTooLarge;
  if (header.is_done()) {
    auto msg = header.release();
    return ToRequest(msg, std::string(), out) ? ParseResult::kRequest : ParseResult::kBad;
  }
  http::request_parser<http::string_body> body(std::move(header));
  body.body_limit(options.max_body);
  body.eager(true);  // as http::async_read sets it
  // The parser sees what the connection's buffer would hold: at most BufferLimit() bytes not yet consumed.
  const size_t window = BufferLimit(options);
  while (!body.is_done()) {
    size_t avail = std::min(window, wire.size() - used);
    size_t n = body.put(net::buffer(wire.data() + used, avail), ec);
    used += n;
    if (ec && ec != http::error::need_more) return refusal(ec);
    if (n == 0) return avail == window ? ParseResult::kTooLarge : ParseResult::kIncomplete;  // a full buffer is buffer_overflow
  }
  auto msg = body.release();
  if (FieldBytes(msg) > options.max_header) return ParseResult::kHeaderTooLarge;
  return ToRequest(msg, std::move(msg.body()), out) ? ParseResult::kRequest : ParseResult::kBad;
}

// One io_context per thread, each connection on one of them (round robin):
// a connection's handlers never run concurrently, so they need no strand.
struct HttpServer::Impl {
  Shared shared;
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  size_t next = 0;
  int port = 0;
  std::string busy;  // the answer over max_connections
  std::mutex upstream_mu;
  std::vector<std::weak_ptr<upstream_internal::Engine>> upstreams;  // guarded by upstream_mu
  bool upstreams_stopped = false;                                   // guarded by upstream_mu

  std::vector<net::io_context*> Contexts() const {
    std::vector<net::io_context*> out;
    for (auto& c : contexts) out.push_back(c.get());
    return out;
  }

  void Accept() {
    net::io_context& ctx = *contexts[next++ % contexts.size()];
    acceptor->async_accept(ctx, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        if (++shared.connections > shared.options.max_connections) {
          --shared.connections;
          beast::error_code ignored;
          net::write(socket, net::buffer(busy), ignored);
          socket.close(ignored);
        } else {
          std::make_shared<Session>(std::move(socket), &shared)->Start();
        }
      }
      Accept();
    });
  }
};

HttpServer::HttpServer(ServerOptions options, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared.options = std::move(options);
  impl_->shared.handler = std::move(handler);
}

HttpServer::HttpServer(ServerOptions options, AsyncHandler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared.options = std::move(options);
  impl_->shared.async_handler = std::move(handler);
}

HttpServer::HttpServer(ServerOptions options, Handler handler, AsyncHandler async_handler,
                       std::function<bool(const Request&)> deferred)
    : impl_(std::make_unique<Impl>()) {
  impl_->shared.options = std::move(options);
  impl_->shared.handler = std::move(handler);
  impl_->shared.async_handler = std::move(async_handler);
  impl_->shared.deferred = std::move(deferred);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  std::string body = impl_->shared.ErrorBody(503, "busy", "too many connections");
  impl_->busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int n = std::max(1, impl_->shared.options.threads);
  for (int i = 0; i < n; ++i) impl_->contexts.push_back(std::make_unique<net::io_context>(1));
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->shared.options.listen, ec);
  if (ec) return Status::IoError("--listen " + impl_->shared.options.listen + ": not an IP address");
  tcp::endpoint ep(address, static_cast<unsigned short>(impl_->shared.options.port));
  auto& a = impl_->acceptor.emplace(*impl_->contexts[0]);
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return Status::IoError("listen on " + impl_->shared.options.listen + ":" +
                           std::to_string(impl_->shared.options.port) + ": " + ec.message());
  impl_->port = a.local_endpoint().port();
  impl_->Accept();
  for (size_t i = 0; i < impl_->contexts.size(); ++i) {
    net::io_context* c = impl_->contexts[i].get();
    impl_->threads.emplace_back([c, i, owner = impl_.get()] {
      upstream_internal::EnterIoThread(owner, i);  // so an upstream client knows its own threads
      auto guard = net::make_work_guard(*c);  // contexts with no connection yet keep running
      c->run();
    });
  }
  return Status::Ok();
}

int HttpServer::port() const { return impl_->port; }

std::shared_ptr<UpstreamClient> HttpServer::MakeUpstreamClient(UpstreamOptions options) {
  std::lock_guard lock(impl_->upstream_mu);
  // Not started, or stopped: a client with no threads, whose Sends fail at once.
  bool running = !impl_->threads.empty() && !impl_->upstreams_stopped;
  auto engine = upstream_internal::MakeEngine(impl_.get(), running ? impl_->Contexts() : std::vector<net::io_context*>(),
                                              options);
  if (running) impl_->upstreams.push_back(engine);
  return upstream_internal::AsClient(std::move(engine));
}

void HttpServer::Stop() {
  if (!impl_ || impl_->threads.empty()) return;
  // Upstream requests in flight end first, their callbacks called on their own I/O threads.
  std::vector<std::shared_ptr<upstream_internal::Engine>> engines;
  {
    std::lock_guard lock(impl_->upstream_mu);
    impl_->upstreams_stopped = true;
    for (auto& weak : impl_->upstreams)
      if (auto e = weak.lock()) engines.push_back(std::move(e));
    impl_->upstreams.clear();
  }
  upstream_internal::StopEngines(engines, impl_->Contexts());
  engines.clear();
  net::post(*impl_->contexts[0], [this] {
    beast::error_code ec;
    impl_->acceptor->close(ec);
  });
  for (auto& ctx : impl_->contexts) ctx->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace sluice::server
