#include "model_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <array>
#include <cmath>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "bounded_json.h"
#include "net.h"

using nlohmann::json;

namespace sluice::torchplugin {
namespace {

using Clock = std::chrono::steady_clock;

// A request the server refuses: its status and the reason.
struct Refused {
  int status;
  std::string message;
};

// Prometheus counters for the infer route.
class Metrics {
 public:
  static constexpr std::array<double, 12> kBuckets{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                   0.05,   0.1,   0.25,  0.5,   1,    2.5};
  void Request(int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++by_status_[status];
    if (status >= 400) ++errors_;
    for (size_t i = 0; i < kBuckets.size(); ++i)
      if (seconds <= kBuckets[i]) ++buckets_[i];
    sum_ += seconds;
    ++count_;
  }
  void Batch(int64_t images) {
    std::lock_guard<std::mutex> lock(mu_);
    ++batches_;
    images_ += images;
  }
  std::string Text(const std::string& model) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string l = "model=\"" + model + "\"";
    std::string s;
    s += "# HELP sluice_model_requests_total Inference requests answered, by HTTP status.\n";
    s += "# TYPE sluice_model_requests_total counter\n";
    for (const auto& [status, n] : by_status_)
      s += "sluice_model_requests_total{" + l + ",code=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    s += "# HELP sluice_model_request_errors_total Inference requests answered with an error.\n";
    s += "# TYPE sluice_model_request_errors_total counter\n";
    s += "sluice_model_request_errors_total{" + l + "} " + std::to_string(errors_) + "\n";
    s += "# HELP sluice_model_request_duration_seconds Time from request to answer.\n";
    s += "# TYPE sluice_model_request_duration_seconds histogram\n";
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "%g", kBuckets[i]);
      s += "sluice_model_request_duration_seconds_bucket{" + l + ",le=\"" + le + "\"} " + std::to_string(buckets_[i]) + "\n";
    }
    s += "sluice_model_request_duration_seconds_bucket{" + l + ",le=\"+Inf\"} " + std::to_string(count_) + "\n";
    s += "sluice_model_request_duration_seconds_sum{" + l + "} " + std::to_string(sum_) + "\n";
    s += "sluice_model_request_duration_seconds_count{" + l + "} " + std::to_string(count_) + "\n";
    s += "# HELP sluice_model_batches_total Forward passes of the model.\n";
    s += "# TYPE sluice_model_batches_total counter\n";
    s += "sluice_model_batches_total{" + l + "} " + std::to_string(batches_) + "\n";
    s += "# HELP sluice_model_images_total Images classified.\n";
    s += "# TYPE sluice_model_images_total counter\n";
    s += "sluice_model_images_total{" + l + "} " + std::to_string(images_) + "\n";
    return s;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, int64_t> by_status_;
  std::array<int64_t, kBuckets.size()> buckets_{};
  int64_t errors_ = 0, count_ = 0, batches_ = 0, images_ = 0;
  double sum_ = 0;
};

// Runs the model, alone per request or in micro-batches.
class Runner {
 public:
  Runner(torch::jit::Module model, int max_batch, double max_wait_ms, Metrics* metrics)
      : model_(std::move(model)), max_batch_(max_batch), max_wait_(std::chrono::microseconds(int64_t(max_wait_ms * 1000))),
        metrics_(metrics) {
    model_.eval();
    if (max_batch_ > 1) worker_ = std::thread([this] { Work(); });
  }
  ~Runner() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // Logits for `x` ([N, C, H, W]).
  torch::Tensor Logits(torch::Tensor x) {
    if (max_batch_ <= 1 || x.size(0) >= max_batch_) return Forward(x);
    auto p = std::make_shared<Pending>();
    p->x = std::move(x);
    std::future<torch::Tensor> result = p->result.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(p);
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  struct Pending {
    torch::Tensor x;
    std::promise<torch::Tensor> result;
  };

  torch::Tensor Forward(const torch::Tensor& x) {
    c10::InferenceMode guard;
    torch::Tensor out = model_.forward({x}).toTensor();
    metrics_->Batch(x.size(0));
    return out;
  }

  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_ && queue_.empty()) return;
      // Wait until the batch is full or the first request has waited max_wait.
      Clock::time_point deadline = Clock::now() + max_wait_;
      auto images = [&] {
        int64_t n = 0;
        for (const auto& p : queue_) n += p->x.size(0);
        return n;
      };
      cv_.wait_until(lock, deadline, [&] { return stopping_ || images() >= max_batch_; });
      std::vector<std::shared_ptr<Pending>> batch;
      int64_t n = 0;
      while (!queue_.empty() && (batch.empty() || n + queue_.front()->x.size(0) <= max_batch_)) {
        n += queue_.front()->x.size(0);
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      lock.unlock();
      try {
        std::vector<torch::Tensor> xs;
        for (const auto& p : batch) xs.push_back(p->x);
        torch::Tensor out = Forward(torch::cat(xs));
        int64_t at = 0;
        for (const auto& p : batch) {
          int64_t k = p->x.size(0);
          p->result.set_value(out.slice(0, at, at + k));
          at += k;
        }
      } catch (...) {
        for (const auto& p : batch) p->result.set_exception(std::current_exception());
      }
      lock.lock();
    }
  }

  torch::jit::Module model_;
  int max_batch_;
  std::chrono::microseconds max_wait_;
  Metrics* metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                       // GUARDED_BY(mu_)
  std::thread worker_;
};

constexpr size_t kMaxDepth = 16;
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxHeaderBytes = 16 << 10;

// Appends the numbers of a JSON array nested at most kMaxDepth deep (the
// parser saw to that) to `out`, as finite floats.
void Flatten(const json& v, std::vector<float>* out) {
  if (v.is_array()) {
    for (const json& e : v) Flatten(e, out);
  } else if (v.is_number()) {
    float f = v.get<float>();
    if (!std::isfinite(f)) throw Refused{400, "input data holds " + v.dump() + ", which is out of FP32's range"};
    out->push_back(f);
  } else {
    throw Refused{400, "input data holds " + std::string(v.type_name()) + " values; FP32 data must be numbers"};
  }
}

// The images of an infer request, checked against the model's [C, H, W].
torch::Tensor ParseInfer(const std::string& body, const std::vector<int64_t>& chw, int64_t max_images, json* id) {
  // Every value the largest request allowed can hold, and some room for names.
  size_t max_values = size_t(max_images) * size_t(chw[0] * chw[1] * chw[2]) + 4096;
  json req;
  std::string why = ParseBounded(body, kMaxDepth, max_values, &req);
  if (!why.empty()) throw Refused{400, why};
  if (!req.is_object()) throw Refused{400, "the request body must be a JSON object with \"inputs\""};
  if (req.contains("id")) *id = req["id"];
  const json* inputs = req.contains("inputs") ? &req["inputs"] : nullptr;
  if (!inputs || !inputs->is_array() || inputs->size() != 1)
    throw Refused{400, "\"inputs\" must be an array of exactly one input tensor"};
  const json& in = (*inputs)[0];
  if (!in.is_object()) throw Refused{400, "inputs[0] must be an object with name, shape, datatype and data"};
  if (!in.contains("datatype") || !in["datatype"].is_string() || in["datatype"].get<std::string>() != "FP32")
    throw Refused{400, "inputs[0].datatype must be \"FP32\", not " + (in.contains("datatype") ? in["datatype"].dump() : "missing")};
  std::string want = "[N";
  for (int64_t d : chw) want += ", " + std::to_string(d);
  want += "]";
  const json* shape = in.contains("shape") ? &in["shape"] : nullptr;
  if (!shape || !shape->is_array() || shape->size() != chw.size() + 1)
    throw Refused{400, "inputs[0].shape must be " + want + (shape ? ", not " + shape->dump() : "")};
  std::vector<int64_t> dims;
  for (const json& d : *shape) {
    if (!d.is_number_integer()) throw Refused{400, "inputs[0].shape must be " + want + ", not " + shape->dump()};
    dims.push_back(d.get<int64_t>());
  }
  for (size_t i = 0; i < chw.size(); ++i)
    if (dims[i + 1] != chw[i]) throw Refused{400, "inputs[0].shape must be " + want + ", not " + shape->dump()};
  if (dims[0] < 1 || dims[0] > max_images)
    throw Refused{400, "inputs[0].shape asks for " + std::to_string(dims[0]) + " images; 1 to " +
                           std::to_string(max_images) + " are allowed per request"};
  if (!in.contains("data") || !in["data"].is_array()) throw Refused{400, "inputs[0].data must be an array of numbers"};
  std::vector<float> values;
  values.reserve(size_t(dims[0] * chw[0] * chw[1] * chw[2]));
  Flatten(in["data"], &values);
  int64_t expected = 1;
  for (int64_t d : dims) expected *= d;
  if (int64_t(values.size()) != expected)
    throw Refused{400, "inputs[0].data holds " + std::to_string(values.size()) + " numbers; shape " + shape->dump() +
                           " needs " + std::to_string(expected)};
  return torch::from_blob(values.data(), dims, torch::kFloat32).clone();
}

// Bounds inference: at most `slots` requests run the model at once and at
// most `max_waiting` wait for a slot; a request beyond that is refused (503)
// at once, so a burst costs neither memory nor unbounded latency.
class Admission {
 public:
  Admission(int slots, int max_waiting) : free_(slots), max_waiting_(max_waiting) {}

  class Ticket {
   public:
    Ticket() = default;
    explicit Ticket(Admission* a) : a_(a) {}
    Ticket(Ticket&& o) noexcept : a_(std::exchange(o.a_, nullptr)), running_(o.running_) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket() {
      if (a_) a_->Leave(running_);
    }
    explicit operator bool() const { return a_ != nullptr; }
    // Blocks until a slot is free.
    void Wait() {
      if (!a_ || running_) return;
      a_->Take();
      running_ = true;
    }

   private:
    Admission* a_ = nullptr;
    bool running_ = false;
  };

  // A ticket, or an empty one when the queue is full.
  Ticket Enter() {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiting_ >= max_waiting_ + free_) return Ticket();
    ++waiting_;
    return Ticket(this);
  }

 private:
  void Take() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
    --waiting_;
  }
  void Leave(bool running) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (running) ++free_;
      else --waiting_;
    }
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int free_;           // GUARDED_BY(mu_)
  int waiting_ = 0;    // GUARDED_BY(mu_): admitted, not yet running
  int max_waiting_;
};

// Compares in time that depends on the lengths only.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Why a request's Host is not one this server answers for, if it is not: a
// web page can reach a loopback server through DNS rebinding (its own name
// resolving to 127.0.0.1), but its requests then carry that name as Host.
// Accepted: IP literals, localhost, and `allowed` names.
std::optional<std::string> ForeignHost(const std::string& host_header, const std::vector<std::string>& allowed) {
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
  return "Host " + host_header.substr(0, 100) + " is not served here (allowed_hosts names the hosts besides IP addresses and localhost)";
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

}  // namespace

void Serve::run(sluice::Context& ctx) {
  std::string path = ctx.param<std::string>("model");
  std::string name = ctx.param<std::string>("name", "model");
  if (name.empty() || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                          std::string::npos)
    throw std::runtime_error("name '" + name + "' must be letters, digits, '.', '_' or '-'");
  std::string version = ctx.param<std::string>("version", "1");
  std::string listen = ctx.param<std::string>("listen", "127.0.0.1");
  int port = ctx.param<int>("port", 8081);
  int threads = ctx.param<int>("threads", std::max(2, ctx.cpu() * 2));
  int connections = ctx.param<int>("connections", 512);
  int max_queue = ctx.param<int>("max_queue", 64);
  std::string token_env = ctx.param<std::string>("token_env", "");
  std::vector<std::string> allowed_hosts = ctx.param<std::vector<std::string>>("allowed_hosts", {});
  std::string token;
  if (!token_env.empty()) {
    const char* t = std::getenv(token_env.c_str());
    if (!t || !*t) throw std::runtime_error("token_env names " + token_env + ", which is not set");
    token = t;
  }
  int max_batch = ctx.param<int>("max_batch", 1);
  double max_wait_ms = ctx.param<double>("max_wait_ms", 2.0);
  auto max_body = ctx.param<size_t>("max_body_bytes", 16u << 20);
  int64_t max_images = ctx.param<int64_t>("max_images", 256);

  torch::jit::Module model = LoadModel(path);
  std::vector<int64_t> chw = InputShape(model);
  if (chw.size() != 3) throw std::runtime_error(path + " does not say its input shape (was it made by torch/train?)");
  std::vector<std::string> classes = Classes(model);
  at::set_num_threads(1);  // one image is fastest on one thread; requests run in parallel instead

  Metrics metrics;
  Runner runner(std::move(model), max_batch, max_wait_ms, &metrics);
  json input_meta = {{"name", "input"}, {"datatype", "FP32"}, {"shape", json::array({-1})}};
  for (int64_t d : chw) input_meta["shape"].push_back(d);
  json metadata = {{"name", name},
                   {"versions", {version}},
                   {"platform", "pytorch_torchscript"},
                   {"inputs", {input_meta}},
                   {"outputs",
                    {{{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, int64_t(classes.size())}}},
                     {{"name", "label"}, {"datatype", "INT64"}, {"shape", {-1}}},
                     {{"name", "class"}, {"datatype", "BYTES"}, {"shape", {-1}}}}}};

  // A thread per connection (cpp-httplib's model): many, so that idle and
  // slow clients cannot take every thread; inference itself is bounded by
  // `threads` slots and a queue of `max_queue` waiting requests.
  httplib::Server server;
  server.new_task_queue = [connections] { return new httplib::ThreadPool(size_t(connections)); };
  server.set_payload_max_length(max_body);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_tcp_nodelay(true);  // headers and body go out at once, not after a delayed ACK
  server.set_keep_alive_max_count(100000);  // clients that keep a connection open keep it
  server.set_keep_alive_timeout(5);
  Admission admission(threads, max_queue);
  server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    auto refuse = [&](int status, const std::string& why) {
      Reply(res, status, {{"error", why}});
      res.set_header("Connection", "close");  // the rest of what it sent is not read
      return httplib::Server::HandlerResponse::Handled;
    };
    if (auto why = ForeignHost(req.get_header_value("Host"), allowed_hosts))
      return refuse(403, *why);
    if (!token.empty() && req.path != "/v2/health/live" && req.path != "/v2/health/ready") {
      std::string auth = req.get_header_value("Authorization");
      std::string want = "Bearer " + token;
      if (!SameSecret(auth, want))
        return refuse(401, "this server needs Authorization: Bearer <token>");
    }
    // cpp-httplib has read them already (bounded only by its read timeout);
    // refuse a request that sent more than a header block should hold.
    size_t header_bytes = 0;
    for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size() + 4;
    if (req.headers.size() > kMaxHeaders || header_bytes > kMaxHeaderBytes)
      return refuse(431, "request header fields too large (at most " + std::to_string(kMaxHeaders) + " fields, " +
                             std::to_string(kMaxHeaderBytes / 1024) + " KiB)");
    // cpp-httplib 0.11 does not bound chunked bodies (CVE-2025-46728):
    // a body must say its length, and a length over the limit is refused
    // before any of it is read.
    if (req.has_header("Transfer-Encoding"))
      return refuse(411, "chunked request bodies are not accepted; send Content-Length");
    std::string length = req.get_header_value("Content-Length");
    if (!length.empty()) {
      if (length.size() > 18 || length.find_first_not_of("0123456789") != std::string::npos)
        return refuse(400, "bad Content-Length");
      if (std::stoull(length) > max_body)
        return refuse(413, "the request body is larger than the server's limit of " + std::to_string(max_body) + " bytes");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      std::string reason = "HTTP status " + std::to_string(res.status);
      if (res.status == 404) reason = "no such route";
      if (res.status == 413) reason = "the request body is larger than the server's limit";
      res.set_content(json{{"error", reason}}.dump(), "application/json");
    }
  });
  auto known = [&](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] == name) return true;
    Reply(res, 404, {{"error", "unknown model '" + std::string(req.matches[1]) + "'; this server serves '" + name + "'"}});
    return false;
  };
  server.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) { Reply(res, 200, {{"live", true}}); });
  server.Get("/v2/health/ready", [](const httplib::Request&, httplib::Response& res) { Reply(res, 200, {{"ready", true}}); });
  server.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, {{"name", "sluice-model-server"}, {"version", "1.0.0"}, {"extensions", json::array()}});
  });
  server.Get(R"(/v2/models/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
    if (known(req, res)) Reply(res, 200, metadata);
  });
  server.Get(R"(/v2/models/([^/]+)/ready)", [&](const httplib::Request& req, httplib::Response& res) {
    if (known(req, res)) Reply(res, 200, {{"name", name}, {"ready", true}});
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.Text(name), "text/plain; version=0.0.4");
  });
  server.Post(R"(/v2/models/([^/]+)/infer)", [&](const httplib::Request& req, httplib::Response& res) {
    Clock::time_point began = Clock::now();
    Admission::Ticket ticket = admission.Enter();
    if (!ticket) {
      Reply(res, 503, {{"error", "the server is busy: " + std::to_string(max_queue) + " requests are waiting"}});
      res.set_header("Retry-After", "1");
    } else if (known(req, res)) {
      try {
        json id;
        torch::Tensor x = ParseInfer(req.body, chw, max_images, &id);
        ticket.Wait();
        torch::Tensor p = torch::softmax(runner.Logits(x), 1).contiguous();
        torch::Tensor label = p.argmax(1).contiguous();
        int64_t n = p.size(0), k = p.size(1);
        std::vector<float> probabilities(p.data_ptr<float>(), p.data_ptr<float>() + n * k);
        std::vector<int64_t> labels(label.data_ptr<int64_t>(), label.data_ptr<int64_t>() + n);
        json names = json::array();
        for (int64_t l : labels) names.push_back(size_t(l) < classes.size() ? classes[size_t(l)] : std::to_string(l));
        json out = {{"model_name", name},
                    {"model_version", version},
                    {"outputs",
                     {{{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {n, k}}, {"data", probabilities}},
                      {{"name", "label"}, {"datatype", "INT64"}, {"shape", {n}}, {"data", labels}},
                      {{"name", "class"}, {"datatype", "BYTES"}, {"shape", {n}}, {"data", names}}}}};
        if (!id.is_null()) out["id"] = id;
        Reply(res, 200, out);
      } catch (const Refused& r) {
        Reply(res, r.status, {{"error", r.message}});
      } catch (const std::exception& e) {
        Reply(res, 500, {{"error", std::string("inference failed: ") + e.what()}});
      }
    }
    metrics.Request(res.status, std::chrono::duration<double>(Clock::now() - began).count());
  });

  int bound = port == 0 ? server.bind_to_any_port(listen) : (server.bind_to_port(listen, port) ? port : -1);
  if (bound <= 0) throw std::runtime_error("cannot listen on " + listen + ":" + std::to_string(port) + " (in use?)");
  std::string url = "http://" + listen + ":" + std::to_string(bound);
  std::atomic<bool> http_ended{false};
  std::thread http([&] {
    server.listen_after_bind();
    http_ended = true;
  });
  ctx.log() << "serving " << path << " as model '" << name << "' version " << version << " on " << url << " ("
            << threads << " threads, micro-batch " << max_batch << (max_batch > 1 ? " within " + std::to_string(max_wait_ms) + " ms" : "")
            << ")";
  ctx.output("url", url);
  while (!ctx.cancelled() && !http_ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool stopped_by_cancel = ctx.cancelled();
  server.stop();
  http.join();
  ctx.log() << "stopped serving " << url;
  if (!stopped_by_cancel) throw std::runtime_error("the HTTP server on " + url + " stopped by itself");
  throw sluice::Cancelled{};
}

}  // namespace sluice::torchplugin
