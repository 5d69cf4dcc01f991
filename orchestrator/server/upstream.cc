// UpstreamClient on Asio and Beast's response parser: one Engine per client,
// one ThreadState (idle connections per port, requests in flight) per I/O
// thread, touched only by that thread; one Exchange per request. The
// request head is written by hand and the body straight from the caller's
// shared string (no copy, no serializer); the answer is read by Beast with
// the client's header and body limits. About 660 lines, kept in one file:
// an exchange's life (connect or reuse, write, read, retry, give back) is
// one state machine over the per-thread state.
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>  // Boost 1.74's Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "upstream_threads.h"  // beside this file: internal to sluice_http

namespace sluice::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string UpstreamResponse::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return "";
}

const char* UpstreamErrorName(UpstreamError error) {
  switch (error) {
    case UpstreamError::kNone: return "none";
    case UpstreamError::kConnect: return "connect";
    case UpstreamError::kClosed: return "closed";
    case UpstreamError::kTimeout: return "timeout";
    case UpstreamError::kBadResponse: return "bad-response";
  }
  return "unknown";
}

namespace upstream_internal {

namespace {

thread_local const void* tls_owner = nullptr;
thread_local size_t tls_index = 0;

std::string Address(int port) { return "127.0.0.1:" + std::to_string(port); }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool HasLineBreak(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// Whether a caller's header may go out as given (see UpstreamRequest::headers).
bool Sendable(const std::string& name, const std::string& value) {
  if (name.empty() || HasLineBreak(name) || HasLineBreak(value)) return false;
  if (name.find_first_of(": \t") != std::string::npos) return false;
  std::string lower = Lower(name);
  return lower != "host" && lower != "content-length" && lower != "transfer-encoding" && lower != "connection";
}

// A method token and an origin-form target with no white space or control byte.
bool ValidRequestLine(const UpstreamRequest& r) {
  if (r.method.empty() || r.target.empty() || r.target[0] != '/') return false;
  for (unsigned char c : r.method)
    if (!std::isalpha(c) && c != '-' && c != '_') return false;
  for (unsigned char c : r.target)
    if (c <= 0x20 || c == 0x7f) return false;
  return true;
}

// One connection to a port; pooled between requests.
struct Connection {
  Connection(net::io_context& ctx, size_t buffer_limit) : socket(ctx), idle_timer(ctx), buffer(buffer_limit) {}
  tcp::socket socket;
  net::steady_timer idle_timer;
  beast::flat_buffer buffer;  // empty between answers
  uint64_t idle_epoch = 0;    // +1 each time it enters or leaves the pool: a stale idle timer sees it moved
  bool reused = false;        // has carried a whole answer before
};

void Close(Connection& c) {
  beast::error_code ec;
  c.idle_timer.cancel();
  c.socket.shutdown(tcp::socket::shutdown_both, ec);
  c.socket.close(ec);
}

// Whether an idle connection still looks usable: no FIN or reset from the
// server and no byte it sent unasked. A non-blocking peek, so nothing waits.
bool StillOpen(tcp::socket& s) {
  char c;
  ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

class Exchange;

// What one I/O thread owns of an Engine.
struct ThreadState {
  net::io_context* ctx = nullptr;
  std::unordered_map<int, std::vector<std::shared_ptr<Connection>>> idle;  // per port, most recent last
  std::unordered_set<std::shared_ptr<Exchange>> active;
  bool stopped = false;
  std::vector<std::function<void()>> deferred;  // failures of Sends made while stopping
};

UpstreamResult StoppedResult(int port, bool wrote_any) {
  UpstreamResult r;
  r.error = wrote_any ? UpstreamError::kClosed : UpstreamError::kConnect;
  r.wrote_any = wrote_any;
  r.message = Address(port) + ": the HTTP server stopped";
  return r;
}

// The most the client buffers of an answer beyond its header: chunk data and
// Content-Length bodies pass through the buffer into the body.
size_t BufferLimit(const UpstreamOptions& o) { return o.max_header + 65536; }

void LimitParser(http::response_parser<http::string_body>& p, const UpstreamOptions& o, std::string_view method) {
  p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(o.max_header, UINT32_MAX)));
  p.body_limit(o.max_body);  // a larger Content-Length fails the header
  if (method == "HEAD") p.skip(true);
}

// What a parser's error means: the error and what follows "answer from 127.0.0.1:PORT: ".
std::pair<UpstreamError, std::string> Judge(beast::error_code ec, const UpstreamOptions& o) {
  if (ec == http::error::header_limit)
    return {UpstreamError::kBadResponse, "header over " + std::to_string(o.max_header) + " bytes"};
  if (ec == http::error::body_limit)
    return {UpstreamError::kBadResponse, "body over " + std::to_string(o.max_body) + " bytes"};
  if (ec == http::error::buffer_overflow)
    return {UpstreamError::kBadResponse, "a chunk header or trailer over " + std::to_string(BufferLimit(o)) + " bytes"};
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec.category() != http::make_error_code(http::error::bad_version).category())
    return {UpstreamError::kClosed, ec.message()};  // the connection ended or failed
  return {UpstreamError::kBadResponse, "not HTTP/1.1: " + ec.message()};
}

// Beast reads any three digits; 000 to 099 are not HTTP statuses.
bool BadStatus(int status) { return status < 100; }
std::string BadStatusText(int status) { return "status " + std::to_string(status) + " is not an HTTP status"; }

// An interim answer (100, 103 Early Hints): the real one follows it.
bool Interim(int status) { return status >= 100 && status < 200 && status != 101; }
constexpr int kMaxInterim = 8;

using Headers = std::vector<std::pair<std::string, std::string>>;

// The message's fields now, names lower case: taken when its header is
// done, they are the header's. A chunked body's trailer fields join the
// same list later, and not at its end: Beast puts a field after the last
// one of the same name, so no count of the header's fields tells them apart.
Headers HeaderFields(const http::response<http::string_body>& msg) {
  Headers h;
  for (const auto& f : msg) h.emplace_back(Lower(std::string(f.name_string())), std::string(f.value()));
  return h;
}

// The answer, with `headers` (HeaderFields at the header's end) as its
// headers: a chunked body's trailer fields are dropped (they are not
// headers, and would pass the header's size limit unchecked).
UpstreamResponse ToResponse(http::response<http::string_body>& msg, Headers headers) {
  UpstreamResponse r;
  r.status = static_cast<int>(msg.result_int());
  r.headers = std::move(headers);
  r.body = std::move(msg.body());
  return r;
}

void Call(UpstreamCallback& done, UpstreamResult result) {
  try {
    done(std::move(result));
  } catch (const std::exception&) {  // a callback's exception must not end the I/O thread
  }
}

}  // namespace

class Engine : public UpstreamClient, public std::enable_shared_from_this<Engine> {
 public:
  Engine(const void* owner, std::vector<net::io_context*> contexts, UpstreamOptions options)
      : owner_(owner), contexts_(std::move(contexts)), options_(options) {
    for (auto* ctx : contexts_) {
      states_.push_back(std::make_unique<ThreadState>());
      states_.back()->ctx = ctx;
    }
  }

  ~Engine() override {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // StopEngines left no socket behind
    // Idle connections belong to their thread: destroy them there.
    for (size_t i = 0; i < states_.size(); ++i)
      net::post(*contexts_[i], [s = std::shared_ptr<ThreadState>(std::move(states_[i]))] {});
  }

  void Send(int port, UpstreamRequest request, std::chrono::milliseconds timeout, UpstreamCallback done) override {
    Clock::time_point deadline = Clock::now() + timeout;
    if (tls_owner == owner_ && tls_index < states_.size()) {
      StartOn(tls_index, port, std::move(request), deadline, timeout, std::move(done));
      return;
    }
    std::unique_lock lock(mu_);
    if (stopping_ || contexts_.empty()) {
      lock.unlock();
      Call(done, StoppedResult(port, false));
      return;
    }
    size_t i = next_++ % contexts_.size();
    net::post(*contexts_[i], [self = shared_from_this(), i, port, request = std::move(request), deadline, timeout,
                              done = std::move(done)]() mutable {
      self->StartOn(i, port, std::move(request), deadline, timeout, std::move(done));
    });
  }

  void Forget(int port) override {
    bool on_thread = tls_owner == owner_ && tls_index < states_.size();
    if (on_thread) CloseIdle(tls_index, port);
    std::lock_guard lock(mu_);
    if (stopping_) return;
    for (size_t i = 0; i < contexts_.size(); ++i) {
      if (on_thread && i == tls_index) continue;
      net::post(*contexts_[i], [self = shared_from_this(), i, port] { self->CloseIdle(i, port); });
    }
  }

  // From now on a Send from outside the I/O threads fails at once.
  void BeginStop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  // On thread i: Sends made on it from now on are deferred failures.
  void MarkStopped(size_t i) { states_[i]->stopped = true; }
  // On thread i: fails what is in flight and deferred, closes idle
  // connections; false if there was nothing to do.
  bool FailPending(size_t i);

  // For Exchange, on thread i.
  const UpstreamOptions& options() const { return options_; }
  void Release(ThreadState& state, int port, std::shared_ptr<Connection> conn);

 private:
  void StartOn(size_t i, int port, UpstreamRequest request, Clock::time_point deadline,
               std::chrono::milliseconds timeout, UpstreamCallback done);
  void CloseIdle(size_t i, int port) {
    auto& state = *states_[i];
    auto it = state.idle.find(port);
    if (it == state.idle.end()) return;
    for (auto& c : it->second) Close(*c);
    state.idle.erase(it);
  }

  const void* owner_;
  const std::vector<net::io_context*> contexts_;
  const UpstreamOptions options_;
  std::vector<std::unique_ptr<ThreadState>> states_;  // states_[i] is touched only on contexts_[i]'s thread
  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
  size_t next_ = 0;        // guarded by mu_
};

namespace {

// One request, from Send to its callback, on one I/O thread.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Engine> engine, ThreadState* state, int port, UpstreamRequest request,
           Clock::time_point deadline, std::chrono::milliseconds timeout, UpstreamCallback done)
      : engine_(std::move(engine)), state_(state), port_(port), request_(std::move(request)), deadline_(deadline),
        timeout_(timeout), done_(std::move(done)), timer_(*state->ctx) {}

  void Start() {
    state_->active.insert(shared_from_this());
    if (!ValidRequestLine(request_)) {  // failed later, never inside Send
      net::post(*state_->ctx, [self = shared_from_this()] {
        self->Fail(UpstreamError::kConnect, "request to " + Address(self->port_) +
                                                ": the method or target is not valid in a request line");
      });
      return;
    }
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->Fail(UpstreamError::kTimeout, "no answer from " + Address(self->port_) + " within " +
                                              std::to_string(self->timeout_.count()) + " ms");
    });
    BuildHead();
    if (!TakeIdle()) Open();
  }

  bool wrote_any() const { return wrote_any_; }
  int port() const { return port_; }

  void Fail(UpstreamError error, std::string message) {
    UpstreamResult r;
    r.error = error;
    r.wrote_any = wrote_any_;
    r.message = std::move(message);
    Finish(std::move(r), false);
  }

 private:
  void BuildHead() {
    head_ = request_.method + " " + request_.target + " HTTP/1.1\r\nHost: " + Address(port_) + "\r\n";
    for (const auto& [name, value] : request_.headers)
      if (Sendable(name, value)) head_ += name + ": " + value + "\r\n";
    if (request_.body) {
      head_ += "Content-Length: " + std::to_string(request_.body->size()) + "\r\n";
    } else if (request_.method == "POST" || request_.method == "PUT" || request_.method == "PATCH") {
      head_ += "Content-Length: 0\r\n";
    }
    head_ += "\r\n";
  }

  // The most recently used idle connection that still looks open; false if none.
  bool TakeIdle() {
    auto it = state_->idle.find(port_);
    if (it == state_->idle.end()) return false;
    auto& pool = it->second;
    while (!pool.empty()) {
      std::shared_ptr<Connection> c = std::move(pool.back());
      pool.pop_back();
      ++c->idle_epoch;
      c->idle_timer.cancel();
      if (StillOpen(c->socket)) {
        conn_ = std::move(c);
        break;
      }
      Close(*c);
    }
    if (pool.empty()) state_->idle.erase(it);
    if (!conn_) return false;
    Write();
    return true;
  }

  void Open() {
    conn_ = std::make_shared<Connection>(*state_->ctx, BufferLimit(engine_->options()));
    tcp::endpoint ep(net::ip::address_v4::loopback(), static_cast<unsigned short>(port_));
    conn_->socket.async_connect(ep, [self = shared_from_this()](beast::error_code ec) {
      if (self->finished_) return;
      if (ec) return self->Fail(UpstreamError::kConnect, "connect " + Address(self->port_) + ": " + ec.message());
      beast::error_code ignored;
      self->conn_->socket.set_option(tcp::no_delay(true), ignored);
      self->Write();
    });
  }

  void Write() {
    std::array<net::const_buffer, 2> buffers{net::buffer(head_), request_.body ? net::buffer(*request_.body)
                                                                               : net::const_buffer()};
    net::async_write(conn_->socket, buffers, [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->finished_) return;
      if (n > 0) self->wrote_any_ = true;
      if (!ec) return self->Read();
      if (n == 0 && self->conn_->reused && !self->reopened_) {
        // A pooled connection the server had dropped; nothing went out, so a new one is safe.
        self->reopened_ = true;
        Close(*self->conn_);
        return self->Open();
      }
      if (n == 0) return self->Fail(UpstreamError::kConnect, "send to " + Address(self->port_) + ": " + ec.message());
      self->Fail(UpstreamError::kClosed, Address(self->port_) + " closed the connection: " + ec.message());
    });
  }

  // The header first, without eager parsing: Beast 1.74 checks a Content-Length against the body
  // limit only then (an eager parse of a header and body read together skips the check).
  void Read() {
    parser_.emplace();
    LimitParser(*parser_, engine_->options(), request_.method);
    http::async_read_header(conn_->socket, conn_->buffer, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnHeader(ec, n); });
  }

  void OnHeader(beast::error_code ec, size_t header_bytes) {
    if (finished_) return;
    if (ec) return OnAnswer(ec);
    const auto& o = engine_->options();
    if (header_bytes > o.max_header) return OnAnswer(http::error::header_limit);
    headers_ = HeaderFields(parser_->get());
    if (parser_->is_done()) return OnAnswer({});  // no body (a HEAD, a 204, Content-Length: 0)
    auto length = parser_->content_length();
    if (length && *length > o.max_body) return OnAnswer(http::error::body_limit);
    http::async_read(conn_->socket, conn_->buffer, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnAnswer(ec); });
  }

  void OnAnswer(beast::error_code ec) {
    if (finished_) return;
    if (ec) {
      auto [error, detail] = Judge(ec, engine_->options());
      if (error == UpstreamError::kClosed)
        return Fail(error, Address(port_) + " closed the connection before a whole answer: " + detail);
      return Fail(error, "answer from " + Address(port_) + ": " + detail);
    }
    auto& msg = parser_->get();
    if (BadStatus(msg.result_int()))
      return Fail(UpstreamError::kBadResponse, "answer from " + Address(port_) + ": " + BadStatusText(msg.result_int()));
    if (Interim(msg.result_int())) {
      if (++interim_ > kMaxInterim)
        return Fail(UpstreamError::kBadResponse, "answer from " + Address(port_) + ": more than 8 interim (1xx) answers");
      return Read();
    }
    UpstreamResult r;
    r.wrote_any = true;
    r.response = ToResponse(msg, std::move(headers_));
    bool reusable = r.response.status != 101 && msg.keep_alive() && !parser_->need_eof() && conn_->buffer.size() == 0;
    Finish(std::move(r), reusable);
  }

  void Finish(UpstreamResult result, bool reusable) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    // parser_ stays too: a pending read holds it (see the connection below).
    if (conn_) {
      if (reusable) {
        engine_->Release(*state_, port_, std::move(conn_));
      } else {
        // Closed but kept: a read or write still pending on it (a timeout
        // ends the exchange mid-read) completes with an error and touches
        // the connection's buffer first. Its handler holds this exchange,
        // so the connection goes when the last handler has run.
        Close(*conn_);
      }
    }
    auto self = shared_from_this();  // lives through the callback
    state_->active.erase(self);
    UpstreamCallback done = std::move(done_);
    Call(done, std::move(result));
  }

  std::shared_ptr<Engine> engine_;  // keeps the ThreadState alive
  ThreadState* state_;
  const int port_;
  UpstreamRequest request_;
  const Clock::time_point deadline_;
  const std::chrono::milliseconds timeout_;
  UpstreamCallback done_;
  net::steady_timer timer_;
  std::string head_;
  std::shared_ptr<Connection> conn_;
  std::optional<http::response_parser<http::string_body>> parser_;
  Headers headers_;  // parser_'s header's fields (HeaderFields when it was done)
  bool finished_ = false, wrote_any_ = false, reopened_ = false;
  int interim_ = 0;
};

}  // namespace

void Engine::StartOn(size_t i, int port, UpstreamRequest request, Clock::time_point deadline,
                     std::chrono::milliseconds timeout, UpstreamCallback done) {
  ThreadState& state = *states_[i];
  if (state.stopped) {
    state.deferred.push_back([port, done = std::move(done)]() mutable { Call(done, StoppedResult(port, false)); });
    return;
  }
  std::make_shared<Exchange>(shared_from_this(), &state, port, std::move(request), deadline, timeout, std::move(done))
      ->Start();
}

void Engine::Release(ThreadState& state, int port, std::shared_ptr<Connection> conn) {
  if (state.stopped) return Close(*conn);
  conn->reused = true;
  uint64_t epoch = ++conn->idle_epoch;
  conn->idle_timer.expires_after(options_.idle_timeout);
  conn->idle_timer.async_wait([weak = std::weak_ptr<Connection>(conn), epoch, state = &state, port](beast::error_code ec) {
    auto c = weak.lock();
    if (ec || !c || c->idle_epoch != epoch) return;  // taken, closed, or its state is gone
    // Still in the pool (so `state` lives): close it and take it out.
    auto it = state->idle.find(port);
    if (it == state->idle.end()) return;
    auto& pool = it->second;
    pool.erase(std::remove(pool.begin(), pool.end(), c), pool.end());
    if (pool.empty()) state->idle.erase(it);
    Close(*c);
  });
  state.idle[port].push_back(std::move(conn));
}

bool Engine::FailPending(size_t i) {
  ThreadState& state = *states_[i];
  bool any = !state.active.empty() || !state.deferred.empty() || !state.idle.empty();
  std::vector<std::shared_ptr<Exchange>> active(state.active.begin(), state.active.end());
  for (auto& e : active) e->Fail(e->wrote_any() ? UpstreamError::kClosed : UpstreamError::kConnect,
                                 StoppedResult(e->port(), e->wrote_any()).message);
  for (auto& [port, pool] : state.idle)
    for (auto& c : pool) Close(*c);
  state.idle.clear();
  auto deferred = std::move(state.deferred);
  state.deferred.clear();
  for (auto& f : deferred) f();
  return any;
}

void EnterIoThread(const void* owner, size_t index) {
  tls_owner = owner;
  tls_index = index;
}

std::shared_ptr<Engine> MakeEngine(const void* owner, std::vector<net::io_context*> contexts, UpstreamOptions options) {
  return std::make_shared<Engine>(owner, std::move(contexts), options);
}

std::shared_ptr<UpstreamClient> AsClient(std::shared_ptr<Engine> engine) { return engine; }

void StopEngines(const std::vector<std::shared_ptr<Engine>>& engines, const std::vector<net::io_context*>& contexts) {
  if (engines.empty()) return;
  for (auto& e : engines) e->BeginStop();
  std::vector<std::future<void>> finished;
  for (size_t i = 0; i < contexts.size(); ++i) {
    auto promise = std::make_shared<std::promise<void>>();
    finished.push_back(promise->get_future());
    net::post(*contexts[i], [&engines, i, promise] {
      for (auto& e : engines) e->MarkStopped(i);
      // A callback may Send again (a retry); that fails too, in a later round.
      bool any = true;
      while (any) {
        any = false;
        for (auto& e : engines) any = e->FailPending(i) || any;
      }
      promise->set_value();
    });
  }
  for (auto& f : finished) f.wait();
}

}  // namespace upstream_internal

UpstreamParse ParseUpstreamResponse(std::string_view wire, std::string_view method, const UpstreamOptions& options,
                                    UpstreamResponse* out, std::string* why) {
  using namespace upstream_internal;
  // As Read and OnAnswer do, from a buffer that holds at most BufferLimit() unconsumed bytes.
  const size_t window = BufferLimit(options);
  auto judged = [&](beast::error_code ec) {
    auto [error, detail] = Judge(ec, options);
    if (why) *why = detail;
    return error == UpstreamError::kClosed ? UpstreamParse::kIncomplete : UpstreamParse::kBad;
  };
  size_t used = 0;
  for (int interim = 0;; ++interim) {
    http::response_parser<http::string_body> p;
    LimitParser(p, options, method);
    const size_t start = used;
    beast::error_code ec;
    p.eager(false);  // the header alone first, as Read does
    bool header_checked = false;
    Headers headers;
    while (!p.is_done()) {
      if (p.is_header_done() && !header_checked) {
        header_checked = true;
        headers = HeaderFields(p.get());
        if (used - start > options.max_header) return judged(http::error::header_limit);
        auto length = p.content_length();
        if (length && *length > options.max_body) return judged(http::error::body_limit);
        p.eager(true);  // as http::async_read sets it
        continue;
      }
      size_t avail = std::min(window, wire.size() - used);
      size_t n = avail == 0 ? 0 : p.put(net::buffer(wire.data() + used, avail), ec);
      used += n;
      if (avail == 0 || (n == 0 && (!ec || ec == http::error::need_more))) {
        if (avail == window) return judged(http::error::buffer_overflow);  // a full buffer the parser cannot use
        ec = {};
        p.put_eof(ec);  // the bytes end here: the connection's end of file
        if (ec) return judged(ec);
        break;
      }
      if (ec == http::error::need_more) {
        ec = {};
        continue;
      }
      if (ec) return judged(ec);
    }
    if (!header_checked && used - start > options.max_header) return judged(http::error::header_limit);
    if (BadStatus(p.get().result_int())) {
      if (why) *why = BadStatusText(p.get().result_int());
      return UpstreamParse::kBad;
    }
    if (Interim(p.get().result_int())) {
      if (interim == kMaxInterim) {
        if (why) *why = "more than 8 interim (1xx) answers";
        return UpstreamParse::kBad;
      }
      continue;
    }
    if (!header_checked) headers = HeaderFields(p.get());  // done at once: no body, so no trailer
    *out = ToResponse(p.get(), std::move(headers));
    return UpstreamParse::kResponse;
  }
}

namespace {

// The client of MakeStandaloneUpstreamClient: an Engine on threads of its own.
class StandaloneUpstreamClient : public UpstreamClient {
 public:
  StandaloneUpstreamClient(int threads, UpstreamOptions options) {
    std::vector<net::io_context*> ptrs;
    for (int i = 0; i < std::max(1, threads); ++i) {
      contexts_.push_back(std::make_unique<net::io_context>(1));
      ptrs.push_back(contexts_.back().get());
    }
    engine_ = upstream_internal::MakeEngine(this, ptrs, options);
    for (size_t i = 0; i < ptrs.size(); ++i) {
      threads_.emplace_back([this, c = ptrs[i], i] {
        upstream_internal::EnterIoThread(this, i);
        auto guard = net::make_work_guard(*c);
        c->run();
      });
    }
  }

  ~StandaloneUpstreamClient() override {
    std::vector<net::io_context*> ptrs;
    for (auto& c : contexts_) ptrs.push_back(c.get());
    upstream_internal::StopEngines({engine_}, ptrs);
    for (auto& c : contexts_) c->stop();
    for (auto& t : threads_) t.join();
    engine_.reset();  // pending handlers may still hold it until the contexts go
  }

  void Send(int port, UpstreamRequest request, std::chrono::milliseconds timeout, UpstreamCallback done) override {
    engine_->Send(port, std::move(request), timeout, std::move(done));
  }
  void Forget(int port) override { engine_->Forget(port); }

 private:
  std::vector<std::unique_ptr<net::io_context>> contexts_;  // declared first: destroyed last
  std::shared_ptr<upstream_internal::Engine> engine_;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<UpstreamClient> MakeStandaloneUpstreamClient(int threads, UpstreamOptions options) {
  return std::make_unique<StandaloneUpstreamClient>(threads, options);
}

}  // namespace sluice::server
