// fake_oip_server: a stand-in for a model server in the serving tests (the
// supervisor's and the gateway's). It speaks enough of the Open Inference
// Protocol v2 on the project's HttpServer (sluice_http), on 127.0.0.1 only.
//
//   fake_oip_server [--port N] [--label L] [--not-ready-for-ms N]
//                   [--exit-after-requests N] [--exit-code C]
//                   [--ignore-sigterm] [--delay-ms N] [--class C]
//                   [--status S]
//
// Port: --port, else $PORT (as a command version gets it from the gateway),
// else 0 (a free one). Once listening it prints "listening on PORT" to stdout.
//
// Routes (anything else 404 {"error": "..."}):
//   GET  /v2/health/live         200 {"live": true}
//   GET  /v2/health/ready        503 {"ready": false} for the first
//                                --not-ready-for-ms after start, then
//                                200 {"ready": true}
//   GET  /v2/models/NAME         200 {"name": NAME, "platform": "fake",
//                                "versions": ["1"], "inputs": [], "outputs": []}
//   POST /v2/models/NAME/infer   after --delay-ms, 200 {"model_name": NAME,
//   (and /v2/models/NAME/versions/V/infer)
//                                "outputs": [{"name": "echo", "datatype":
//                                "BYTES", "shape": [1], "data": [BODY]}],
//                                "fake": {"pid": PID, "label": L, "request":
//                                K (1 for the first infer), "markers":
//                                {"SLUICE_HOME": ..., "SLUICE_SERVICE": ...,
//                                "SLUICE_SERVICE_VERSION": ...,
//                                "SLUICE_REPLICA": ..., "SLUICE_REVISION":
//                                ...} (the ones set)}}
//
// --class C: the infer answer's outputs also hold, after the echo (which
// stays outputs[0]), {"name": "class", "datatype": "BYTES", "shape": [1],
// "data": [C]}: a predicted class for the gateway's payload profile.
//
// --status S: every infer is answered with status S (a broken model:
// 500), the body {"error": "fake failure", ...} after --delay-ms.
//
// --exit-after-requests N: after the answer to the Nth infer request is
// handed to the server, the process exits with --exit-code (default 1)
// 100 ms later (so the answer gets out).
// SIGTERM (and SIGINT) stop the server and exit 0; with --ignore-sigterm,
// SIGTERM is ignored (only SIGKILL or SIGINT ends it).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/http.h"

namespace {

struct Flags {
  int port = -1;
  std::string label;
  long not_ready_for_ms = 0;
  long exit_after_requests = 0;  // 0: never
  int exit_code = 1;
  bool ignore_sigterm = false;
  long delay_ms = 0;
  std::string predicted_class;  // --class; empty: no class output
  int status = 200;             // --status
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "fake_oip_server: " << why << "\n";
  std::exit(2);
}

Flags Parse(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> long {
      std::string v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0) Usage(a + ": not a whole number: " + v);
      return n;
    };
    if (a == "--port") f.port = static_cast<int>(number());
    else if (a == "--label") f.label = value();
    else if (a == "--not-ready-for-ms") f.not_ready_for_ms = number();
    else if (a == "--exit-after-requests") f.exit_after_requests = number();
    else if (a == "--exit-code") f.exit_code = static_cast<int>(number());
    else if (a == "--ignore-sigterm") f.ignore_sigterm = true;
    else if (a == "--delay-ms") f.delay_ms = number();
    else if (a == "--class") f.predicted_class = value();
    else if (a == "--status") f.status = static_cast<int>(number());
    else Usage("unknown flag " + a);
  }
  if (f.port < 0) {
    const char* env = std::getenv("PORT");
    f.port = env ? std::atoi(env) : 0;
  }
  return f;
}

sluice::server::Response Json(int status, const nlohmann::json& body) {
  sluice::server::Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = Parse(argc, argv);
  const auto started = std::chrono::steady_clock::now();
  std::atomic<long> infers{0};

  nlohmann::json markers = nlohmann::json::object();
  for (const char* name :
       {"SLUICE_HOME", "SLUICE_SERVICE", "SLUICE_SERVICE_VERSION", "SLUICE_REPLICA", "SLUICE_REVISION"})
    if (const char* v = std::getenv(name)) markers[name] = v;

  // Signals are taken by sigwait below, not by whichever thread they hit.
  sigset_t wait_set;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGINT);
  if (flags.ignore_sigterm) signal(SIGTERM, SIG_IGN);
  else sigaddset(&wait_set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &wait_set, nullptr);

  sluice::server::ServerOptions options;
  options.listen = "127.0.0.1";
  options.port = flags.port;
  options.threads = 2;
  options.error_body = [](int, const std::string&, const std::string& message) {
    return nlohmann::json{{"error", message}}.dump();
  };
  auto handler = [&](sluice::server::Request req, sluice::server::Responder responder) {
    const auto& s = req.segments;  // "/v2/health/ready" -> "v2", "health", "ready"
    auto is = [&](std::initializer_list<const char*> want) {
      if (s.size() != want.size()) return false;
      size_t i = 0;
      for (const char* w : want) {
        if (std::strcmp(w, "*") != 0 && s[i] != w) return false;
        ++i;
      }
      return true;
    };
    if (req.method == "GET" && is({"v2", "health", "live"})) return responder.Send(Json(200, {{"live", true}}));
    if (req.method == "GET" && is({"v2", "health", "ready"})) {
      auto age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      bool ready = age.count() >= flags.not_ready_for_ms;
      return responder.Send(Json(ready ? 200 : 503, {{"ready", ready}}));
    }
    if (req.method == "GET" && is({"v2", "models", "*"}))
      return responder.Send(Json(200, {{"name", s[2]},
                                       {"platform", "fake"},
                                       {"versions", {"1"}},
                                       {"inputs", nlohmann::json::array()},
                                       {"outputs", nlohmann::json::array()}}));
    if (req.method == "POST" && (is({"v2", "models", "*", "infer"}) || is({"v2", "models", "*", "versions", "*", "infer"}))) {
      long k = ++infers;
      nlohmann::json body = {
          {"model_name", s[2]},
          {"outputs", {{{"name", "echo"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {req.body}}}}},
          {"fake", {{"pid", static_cast<long>(getpid())}, {"label", flags.label}, {"request", k}, {"markers", markers}}}};
      if (!flags.predicted_class.empty())
        body["outputs"].push_back(
            {{"name", "class"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {flags.predicted_class}}});
      bool last = flags.exit_after_requests > 0 && k == flags.exit_after_requests;
      int code = flags.exit_code;
      long delay = flags.delay_ms;
      int status = flags.status;
      if (status != 200) body["error"] = "fake failure";
      std::thread([responder, body = std::move(body), delay, last, code, status] {
        if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        responder.Send(Json(status, body));
        if (last) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          std::_Exit(code);
        }
      }).detach();
      return;
    }
    responder.Send(Json(404, {{"error", "no route " + req.method + " " + req.target}}));
  };
  sluice::server::HttpServer server(options, sluice::server::AsyncHandler(handler));
  if (auto st = server.Start(); !st.ok()) {
    std::cerr << "fake_oip_server: " << st.message() << "\n";
    return 1;
  }
  std::cout << "listening on " << server.port() << std::endl;
  int sig = 0;
  sigwait(&wait_set, &sig);
  // Requests still sleeping in --delay-ms hold Responders: leave without
  // destroying the server under them.
  std::cout << "stopping on " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << std::endl;
  std::_Exit(0);
}
