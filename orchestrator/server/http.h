// The project's HTTP server (library `sluice_http`, Boost.Beast on Asio, in
// http_server.cc; nothing else includes Beast): requests and responses as
// a handler sees them, and the server that reads and writes them. `sluice
// serve` (the API, UI, webhooks, SSE) and the model server (`torch/serve`,
// `sluice serve-model`) run on it; so will the serving gateway. It depends
// on Boost and util/status.h (header-only use) and nothing else of Sluice.
//
// Contract: the handler is called on one of the server's I/O threads, once
// per request, with the whole body read. A plain Handler answers at once and
// may block only briefly (a SQLite query, a process spawn); an AsyncHandler
// hands slow work elsewhere and answers later through its Responder, from
// any thread, so that no I/O thread waits. Limits are enforced before the
// handler sees anything: a header block over max_header is answered 431, a
// body over max_body 413 (from its Content-Length, before any of it is read;
// a chunked body as it passes the limit), trailer fields of a chunked body
// count against max_header (431), a connection buffers at most max_header +
// 8 KiB (a chunk extension or trailer block that does not fit is 413), bytes
// the parser cannot make a request of are answered 400, a request whose
// header and body have not both arrived within read_timeout of its first
// byte (or of the previous answer, for an idle keep-alive connection) is
// dropped unanswered, and connections over max_connections are answered 503
// and closed. Every refusal closes the connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/upstream.h"
#include "util/status.h"

namespace sluice::server {

struct Request {
  std::string method;                 // GET, POST, ...
  std::string target;                 // as sent: /api/runs?limit=5
  std::vector<std::string> segments;  // the path split on '/', each percent-decoded
  std::vector<std::pair<std::string, std::string>> query;    // decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  uint64_t connection = 0;  // which of the server's connections it came on: 1, 2, ... in the order accepted

  // The first header or query value with this name; "" if none.
  std::string Header(std::string_view lower_name) const;
  std::optional<std::string> Query(std::string_view name) const;
};

// A Server-Sent Events stream to one client. Send may be called from any
// thread; events are written in order. A client that stops reading is
// dropped once a bounded amount is queued for it.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Queues "event: <event>\ndata: <data>\n\n" (or a comment if event is
  // empty). False once the client is gone.
  bool Send(std::string_view event, std::string_view data) { return SendText(FormatEvent(event, data)); }
  // Queues whole events made by FormatEvent, written as one piece: a
  // sender of many events at once (the event hub) formats them once for
  // all its clients and queues each client one string.
  virtual bool SendText(std::string events) = 0;
  virtual bool open() const = 0;
  virtual void Close() = 0;

  // The text of one event: one `data:` line per line of `data`.
  static std::string FormatEvent(std::string_view event, std::string_view data);
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Instead of `body`: bytes that outlive the server (the embedded UI), sent without a copy.
  std::string_view static_body;
  // For an event stream: called once the response's headers are on their
  // way, with the stream to send events into. The body is not used.
  std::function<void(std::shared_ptr<EventStream>)> on_stream;
};

using Handler = std::function<Response(const Request&)>;

// Answers one request later (a deferred response), from any thread. Cheap to
// copy; every copy answers the same request. The first Send is the answer
// (a Response with on_stream starts an event stream) and later ones are
// ignored; if every copy is destroyed unsent, the client gets a 500. The
// connection reads nothing more until the answer is written. After the
// server's Stop() an answer is dropped. REQUIRES: every copy is sent or
// destroyed before the HttpServer is destroyed (it holds the connection).
class Responder {
 public:
  void Send(Response response) const;

  struct State;  // http_server.cc
  explicit Responder(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

// Called on an I/O thread with the request (its body moved in); must return
// quickly and answer through the Responder, now or later.
using AsyncHandler = std::function<void(Request, Responder)>;

struct ServerOptions {
  std::string listen = "127.0.0.1";
  int port = 8080;                    // 0 picks a free one
  int threads = 2;                    // I/O threads
  size_t max_body = 1 << 20;
  size_t max_header = 16 << 10;
  std::chrono::milliseconds read_timeout{10000};
  int max_connections = 1024;
  // Optional: called on an I/O thread once a request's header is read,
  // before any of its body (the Request's body is empty). A Response
  // refuses the request without reading the body and closes the
  // connection; nullopt lets it through. Must not block. For checks that
  // need only the header: credentials, Host, header counts.
  std::function<std::optional<Response>(const Request&)> screen;
  // Optional: the body of the server's own refusals (400, 413, 431, 500,
  // 503), from the status, a short code ("body_too_large") and a message.
  // Default: {"error":{"code":"...","message":"..."}} (the API's shape).
  std::function<std::string(int status, const std::string& code, const std::string& message)> error_body;
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  HttpServer(ServerOptions options, AsyncHandler handler);
  // Both: a request for which `deferred(request)` is true goes to the
  // AsyncHandler, every other one to the Handler, answered inline as with
  // the first constructor (sluice serve: the gateway's /v2 routes and the
  // API). `deferred` runs on the I/O thread and must be quick.
  HttpServer(ServerOptions options, Handler handler, AsyncHandler async_handler,
             std::function<bool(const Request&)> deferred);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on the server's threads.
  Status Start();
  int port() const;
  // A client that sends requests to 127.0.0.1 from this server's I/O
  // threads, with a pool per thread (server/upstream.h, which states the
  // threads, the pool and what Stop does to requests in flight). Any
  // thread. Made before Start or after Stop, its every Send fails at once
  // (kConnect, "the HTTP server stopped"). The client may outlive the
  // server: Stop ends its requests (each callback called once, with an
  // error) and closes its connections before the threads stop.
  std::shared_ptr<UpstreamClient> MakeUpstreamClient(UpstreamOptions options = {});
  // Ends every upstream request in flight (see above), closes the listener
  // and every connection, and joins the threads.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "%2e%2E" -> "..", "+" stays "+"; false on a bad escape.
bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space = false);

// What a connection makes of the bytes `wire`, without a socket: the same
// Beast parsers with the same limits (max_header, max_body), then the same
// conversion to a Request (header names lower-cased, the target split and
// decoded). For the fuzzer (tests/fuzz/http_request_fuzz.cc) and tests.
enum class ParseResult {
  kRequest,     // a whole request, in *out; bytes after it are not looked at
  kIncomplete,  // the bytes end inside the request
  kBad,         // not HTTP, or a target that is not a decodable path: the connection drops it or answers 400
  kTooLarge,    // 413: a body (declared or chunked) over max_body
  kHeaderTooLarge,  // 431: a header block over max_header
};
ParseResult ParseRequest(std::string_view wire, const ServerOptions& options, Request* out);

}  // namespace sluice::server
