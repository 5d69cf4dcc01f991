// The HTTP/1.1 client of the serving gateway (library `sluice_http`, on the
// same Asio I/O threads as HttpServer; upstream.cc): sends a request to a
// server on 127.0.0.1 (a model-server replica) over pooled keep-alive
// connections and hands the answer to a callback. No Beast or Asio in this
// header, so serving/ may include it.
//
// Threads. An UpstreamClient from HttpServer::MakeUpstreamClient() keeps one
// set of connections per I/O thread and port, touched only by that thread: no
// lock on the path of a request sent from a handler. Send called on one of
// the server's I/O threads runs the request on that thread, with its pool,
// and calls `done` there. Send called on any other thread takes a mutex,
// posts the request to the I/O threads in turn (round robin), and `done`
// runs on the I/O thread that took it. `done` is called exactly once per
// Send, never from inside Send, with one exception stated at Send.
//
// The pool. A connection goes back to its thread's pool for its port after
// a whole answer that allows keep-alive (and left no stray bytes); a request
// takes the most recently used one. There is no cap on connections per port
// and thread: a request that finds none idle opens a new one, so the number
// open is at most the requests in flight plus those idle; the gateway's
// max_inflight bounds it. A connection idle for `idle_timeout` (4 s; a model
// server's own idle limit is 10 s) is closed, so none is reused after the
// server dropped it. Before reuse, a non-blocking peek checks the socket: a
// connection whose server has closed it (or sent bytes nobody asked for) is
// discarded and the next one tried. If writing the request to a reused
// connection fails before any byte went out, the request moves to a new
// connection once, as nothing was delivered.
//
// kConnect or kClosed. kConnect means provably nothing reached the server:
// the connect failed, or the write failed with zero bytes written. Once any
// byte of the request was written, a failure before the whole answer is
// kClosed, even on a reused connection whose server may have closed it
// while idle, and even when no byte of the answer came: the client cannot
// tell "closed before reading the request" from "read it, started the
// inference, died", and the gateway retries only kConnect, so a request an
// inference may have run for is never run twice (Go's net/http makes the
// same choice for a POST). The idle limit and the peek make the stale case
// rare; a replica that restarts shows up as kConnect on the next request.
//
// Stop. HttpServer::Stop() (and the standalone client's destructor) first,
// on each I/O thread, ends every request still pending: its connection is
// closed and `done` is called there with kConnect (nothing written yet) or
// kClosed (some written), message "...: the HTTP server stopped". A Send
// made by one of those callbacks fails the same way. Idle connections are
// closed. After that the client holds no socket and may outlive the server;
// a later Send fails as stated at Send.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::server {

struct UpstreamRequest {
  std::string method = "POST";
  std::string target;                                        // "/v2/models/fashion/infer"
  // Sent as given, in order (content-type, x-request-id, ...). The client
  // sets Host ("127.0.0.1:<port>") and Content-Length itself and leaves out
  // any given host, content-length, transfer-encoding or connection header;
  // a header whose name or value holds CR, LF or NUL (or a name with ':' or
  // white space) is left out too, so no value can split the request.
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<const std::string> body;                   // may be null (no body); shared, never copied
};

struct UpstreamResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case, in order
  std::string body;
  std::string Header(std::string_view lower_name) const;     // the first value; "" if none
};

enum class UpstreamError {
  kNone,         // an answer was read (any status, 4xx/5xx included)
  kConnect,      // the connection could not be made; nothing of the request was written (safe to retry elsewhere)
  kClosed,       // the connection closed or reset after the request was (partly) written, before a whole answer
  kTimeout,      // no whole answer within the deadline
  kBadResponse,  // bytes that are not an HTTP/1.1 answer, or over the limits (16 KiB header, 64 MiB body)
};

// "none", "connect", "closed", "timeout", "bad-response": for logs.
const char* UpstreamErrorName(UpstreamError error);

struct UpstreamResult {
  UpstreamError error = UpstreamError::kNone;
  bool wrote_any = false;     // whether any byte of this request reached the socket
  UpstreamResponse response;  // valid when error == kNone
  // For logs and the gateway's 502 text: "connect 127.0.0.1:4321: Connection refused",
  // "127.0.0.1:4321 closed the connection: End of file", "no answer from 127.0.0.1:4321 within 30000 ms",
  // "answer from 127.0.0.1:4321: header over 16384 bytes". Empty when error == kNone.
  std::string message;
};

using UpstreamCallback = std::function<void(UpstreamResult)>;

struct UpstreamOptions {
  size_t max_header = 16 << 10;  // the answer's status line, fields and blank line: exactly this many pass
  size_t max_body = 64 << 20;    // refused from the Content-Length before any of it is read; chunked, as it passes
  std::chrono::milliseconds idle_timeout{4000};  // a pooled connection idle this long is closed
};

// Sends requests to servers on 127.0.0.1 over pooled keep-alive connections.
// Threads and the pool: see the top of this file.
class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  // Sends `request` to 127.0.0.1:port and calls `done` exactly once with the
  // result, never from inside Send, except: once the server (or standalone
  // client) has stopped, a Send from a thread that is not one of its I/O
  // threads calls `done` before returning, with kConnect ("...: the HTTP
  // server stopped"), as no thread is left to call it on. `timeout` runs
  // from the call to Send and covers the connect, the write and the whole
  // answer; at it the connection is closed (kTimeout). The body is shared,
  // not copied, and held until `done` is called.
  virtual void Send(int port, UpstreamRequest request, std::chrono::milliseconds timeout, UpstreamCallback done) = 0;
  // Closes the idle pooled connections to a port (a replica that went away),
  // on every I/O thread: at once on the calling I/O thread, the others when
  // they next run. Requests in flight to it are not touched. Any thread.
  virtual void Forget(int port) = 0;
};

// A client with `threads` I/O threads of its own (for tests and processes
// without an HttpServer). Send from any thread posts to them in turn. The
// destructor ends pending requests as HttpServer::Stop() does (their
// callbacks are called on the client's threads), then joins the threads.
// REQUIRES: not destroyed on one of its own threads (from a callback).
std::unique_ptr<UpstreamClient> MakeStandaloneUpstreamClient(int threads, UpstreamOptions options = {});

// What the client makes of the bytes `wire` as the answer to a request with
// `method`, without a socket: the same Beast parser with the same limits
// and buffer, interim (1xx) answers skipped, then the same conversion to an
// UpstreamResponse (names lower-cased). The end of `wire` is the end of the
// connection (it ends a body that runs to the close). For the fuzzer
// (tests/fuzz/upstream_response_fuzz.cc) and tests.
enum class UpstreamParse {
  kResponse,    // a whole answer, in *out; bytes after it are not looked at
  kIncomplete,  // the bytes end inside the answer (the client's kClosed)
  kBad,         // not HTTP/1.1, or over a limit (the client's kBadResponse); *why says which
};
UpstreamParse ParseUpstreamResponse(std::string_view wire, std::string_view method, const UpstreamOptions& options,
                                    UpstreamResponse* out, std::string* why = nullptr);

}  // namespace sluice::server
