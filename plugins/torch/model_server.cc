#include "model_server.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <array>
#include <set>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "infer_request.h"
#include "net.h"
#include "server/http.h"
#include "server/request_guard.h"

using nlohmann::json;

namespace sluice::torchplugin {
namespace {

using server::Guard;
using server::Refused;
using server::Screen;

using Clock = std::chrono::steady_clock;

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

constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxHeaderBytes = 16 << 10;
constexpr int kIoThreads = 2;  // they only route and copy bytes; the model runs on the workers

// Runs infer requests off the server's I/O threads: `threads` workers, and
// at most `max_waiting` requests waiting for one; a request beyond that is
// refused (503) at once, so a burst costs neither memory nor unbounded
// latency. Any thread may submit.
class WorkQueue {
 public:
  WorkQueue(int threads, int max_waiting) : slots_(threads + max_waiting) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~WorkQueue() { Stop(); }

  // Queues `job`; false (and `job` dropped) when `threads` jobs run and
  // `max_waiting` wait, or after Stop().
  bool TrySubmit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || in_system_ >= slots_) return false;
      ++in_system_;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }

  // Drops the waiting jobs (destroying them), lets running ones finish and
  // joins the workers.
  void Stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_all();
    dropped.clear();
    for (auto& t : workers_)
      if (t.joinable()) t.join();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      try {
        job();
      } catch (...) {  // jobs catch their own; nothing crosses the thread
      }
      job = nullptr;
      lock.lock();
      --in_system_;
    }
  }

  const int slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  int in_system_ = 0;                         // GUARDED_BY(mu_): queued or running
  bool stopping_ = false;                     // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;
};

// The input a model file declares: `sluice_input_shape` [C, H, W] or [F],
// and for [F] the optional `sluice_feature_names`; throws naming the file
// and what is wrong.
InputSignature Signature(const torch::jit::Module& model, const std::string& path) {
  InputSignature sig;
  sig.shape = InputShape(model);
  sig.feature_names = FeatureNames(model);
  bool positive = std::all_of(sig.shape.begin(), sig.shape.end(), [](int64_t d) { return d > 0; });
  if ((sig.shape.size() != 3 && sig.shape.size() != 1) || !positive)
    throw std::runtime_error(path + " does not say its input shape: attribute sluice_input_shape must be [C, H, W] "
                                    "(an image model) or [F] (a tabular one)");
  if (!sig.feature_names.empty()) {
    if (!sig.tabular())
      throw std::runtime_error(path + ": sluice_feature_names is for a tabular model (sluice_input_shape [F])");
    if (int64_t(sig.feature_names.size()) != sig.shape[0])
      throw std::runtime_error(path + ": sluice_feature_names has " + std::to_string(sig.feature_names.size()) +
                               " names but sluice_input_shape says " + std::to_string(sig.shape[0]) + " features");
    std::set<std::string> seen;
    for (const std::string& f : sig.feature_names)
      if (f.empty() || !seen.insert(f).second)
        throw std::runtime_error(path + ": sluice_feature_names must be distinct and not empty ('" + f + "')");
  }
  return sig;
}

// Runs the model once on one row of zeros before the port opens: a model
// that cannot take its declared input, returns other than one tensor [1,
// ...], or declares other than as many classes as it has outputs, does not
// start. Returns the output's shape with -1 for N (the metadata's).
std::vector<int64_t> DryRun(torch::jit::Module& model, const InputSignature& sig,
                            const std::vector<std::string>& classes, const std::string& path) {
  std::vector<int64_t> dims = {1};
  dims.insert(dims.end(), sig.shape.begin(), sig.shape.end());
  c10::IValue out;
  try {
    c10::InferenceMode guard;
    model.eval();
    out = model.forward({torch::zeros(dims)});
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw std::runtime_error(path + ": the model fails on its declared input " + c10::str(c10::IntArrayRef(dims)) + ": " +
                             what.substr(0, what.find('\n')));
  }
  if (!out.isTensor() || out.toTensor().dim() < 1 || out.toTensor().size(0) != 1)
    throw std::runtime_error(path + ": the model must return one tensor [N, ...] (it returned " + out.tagKind() + ")");
  std::vector<int64_t> shape = out.toTensor().sizes().vec();
  if (!classes.empty() && (shape.size() != 2 || shape[1] != int64_t(classes.size())))
    throw std::runtime_error(path + ": sluice_classes names " + std::to_string(classes.size()) +
                             " classes but the model's output is " + c10::str(c10::IntArrayRef(shape)));
  shape[0] = -1;
  return shape;
}

// The OIP outputs for the model's output `y` ([N, ...]): with classes,
// softmax probabilities, the argmax label and its class name; without,
// `y` itself as FP32.
json Answer(const torch::Tensor& y, const std::vector<std::string>& classes) {
  if (classes.empty()) {
    torch::Tensor t = y.to(torch::kFloat32).contiguous();
    std::vector<float> data(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    return {{{"name", "output"}, {"datatype", "FP32"}, {"shape", t.sizes().vec()}, {"data", data}}};
  }
  torch::Tensor p = torch::softmax(y, 1).contiguous();
  torch::Tensor label = p.argmax(1).contiguous();
  int64_t n = p.size(0), k = p.size(1);
  std::vector<float> probabilities(p.data_ptr<float>(), p.data_ptr<float>() + n * k);
  std::vector<int64_t> labels(label.data_ptr<int64_t>(), label.data_ptr<int64_t>() + n);
  json names = json::array();
  for (int64_t l : labels) names.push_back(size_t(l) < classes.size() ? classes[size_t(l)] : std::to_string(l));
  return {{{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {n, k}}, {"data", probabilities}},
          {{"name", "label"}, {"datatype", "INT64"}, {"shape", {n}}, {"data", labels}},
          {{"name", "class"}, {"datatype", "BYTES"}, {"shape", {n}}, {"data", names}}};
}

server::Response Reply(int status, const json& body) {
  server::Response res;
  res.status = status;
  res.body = body.dump(-1, ' ', false, json::error_handler_t::replace);  // class names come from the model file
  return res;
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
  int connections = ctx.param<int>("connections", 1024);
  int64_t read_timeout_ms = ctx.param<int64_t>("read_timeout_ms", 10000);
  int max_queue = ctx.param<int>("max_queue", 64);
  std::string token_env = ctx.param<std::string>("token_env", "");
  Guard guard;
  for (std::string host : ctx.param<std::vector<std::string>>("allowed_hosts", {})) {
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    guard.allowed_hosts.push_back(host);
  }
  guard.max_header_fields = kMaxHeaders;
  if (!token_env.empty()) {
    const char* t = std::getenv(token_env.c_str());
    if (!t || !*t) throw std::runtime_error("token_env names " + token_env + ", which is not set");
    guard.token = t;
  }
  int max_batch = ctx.param<int>("max_batch", 1);
  double max_wait_ms = ctx.param<double>("max_wait_ms", 2.0);
  auto max_body = ctx.param<size_t>("max_body_bytes", 16u << 20);
  int64_t max_images = ctx.param<int64_t>("max_images", 256);

  torch::jit::Module model = LoadModel(path);
  InputSignature signature = Signature(model, path);
  signature.max_rows = max_images;
  std::vector<std::string> classes = Classes(model);
  at::set_num_threads(1);  // one image is fastest on one thread; requests run in parallel instead
  std::vector<int64_t> output_shape = DryRun(model, signature, classes, path);

  Metrics metrics;
  Runner runner(std::move(model), max_batch, max_wait_ms, &metrics);
  json outputs = json::array();
  if (classes.empty()) {
    outputs.push_back({{"name", "output"}, {"datatype", "FP32"}, {"shape", output_shape}});
  } else {
    outputs = {{{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, int64_t(classes.size())}}},
               {{"name", "label"}, {"datatype", "INT64"}, {"shape", {-1}}},
               {{"name", "class"}, {"datatype", "BYTES"}, {"shape", {-1}}}};
  }
  json metadata = {{"name", name},
                   {"versions", {version}},
                   {"platform", "pytorch_torchscript"},
                   {"inputs", InputMetadata(signature)},
                   {"outputs", outputs}};

  // One infer request, on a worker: parse, run (alone or in a micro-batch), answer.
  auto infer = [&](const std::string& body) {
    try {
      InferInput input = ParseInferRequest(body, signature);
      torch::Tensor x = torch::from_blob(input.values.data(), input.dims, torch::kFloat32);
      json out = {{"model_name", name}, {"model_version", version}, {"outputs", Answer(runner.Logits(x), classes)}};
      if (!input.id.is_null()) out["id"] = input.id;
      return Reply(200, out);
    } catch (const Refused& r) {
      return Reply(r.status, {{"error", r.message}});
    } catch (const std::exception& e) {
      return Reply(500, {{"error", std::string("inference failed: ") + e.what()}});
    }
  };

  // The HTTP server's I/O threads only route: requests that run the model go
  // to `threads` workers (and at most `max_queue` wait for one), and each is
  // answered from its worker when done.
  WorkQueue work(threads, max_queue);
  auto handle = [&](server::Request req, server::Responder respond) {
    const std::vector<std::string>& s = req.segments;
    auto is = [&](std::initializer_list<const char*> want) {
      return s.size() == want.size() && std::equal(want.begin(), want.end(), s.begin());
    };
    bool get = req.method == "GET", post = req.method == "POST";
    bool model_route = s.size() >= 3 && s.size() <= 4 && s[0] == "v2" && s[1] == "models";
    auto unknown = [&] {
      return Reply(404, {{"error", "unknown model '" + s[2] + "'; this server serves '" + name + "'"}});
    };
    if (post && model_route && s.size() == 4 && s[3] == "infer") {
      Clock::time_point began = Clock::now();
      auto answer = [&metrics, began](const server::Responder& r, server::Response res) {
        metrics.Request(res.status, std::chrono::duration<double>(Clock::now() - began).count());
        r.Send(std::move(res));
      };
      if (s[2] != name) return answer(respond, unknown());
      bool queued = work.TrySubmit([&infer, answer, respond, body = std::move(req.body)] { answer(respond, infer(body)); });
      if (queued) return;
      server::Response busy = Reply(503, {{"error", "the server is busy: " + std::to_string(max_queue) + " requests are waiting"}});
      busy.headers.emplace_back("Retry-After", "1");
      return answer(respond, std::move(busy));
    }
    if (get && is({"v2", "health", "live"})) return respond.Send(Reply(200, {{"live", true}}));
    if (get && is({"v2", "health", "ready"})) return respond.Send(Reply(200, {{"ready", true}}));
    if (get && is({"v2"}))
      return respond.Send(Reply(200, {{"name", "sluice-model-server"}, {"version", "1.0.0"}, {"extensions", json::array()}}));
    if (get && model_route && s.size() == 3) return respond.Send(s[2] == name ? Reply(200, metadata) : unknown());
    if (get && model_route && s[3] == "ready")
      return respond.Send(s[2] == name ? Reply(200, {{"name", name}, {"ready", true}}) : unknown());
    if (get && is({"metrics"})) {
      server::Response res;
      res.content_type = "text/plain; version=0.0.4";
      res.body = metrics.Text(name);
      return respond.Send(std::move(res));
    }
    respond.Send(Reply(404, {{"error", "no such route"}}));
  };

  server::ServerOptions options;
  options.listen = listen;
  options.port = port;
  options.threads = kIoThreads;
  options.max_body = max_body;
  options.max_header = kMaxHeaderBytes;
  options.read_timeout = std::chrono::milliseconds(read_timeout_ms);
  options.max_connections = connections;
  options.screen = [&guard](const server::Request& req) -> std::optional<server::Response> {
    if (auto refused = Screen(req, guard)) return Reply(refused->status, {{"error", refused->message}});
    return std::nullopt;
  };
  options.error_body = [](int, const std::string&, const std::string& message) { return json{{"error", message}}.dump(); };
  server::HttpServer http(options, server::AsyncHandler(handle));
  // On every way out, in this order: no new request, then no job holding a
  // Responder, before `http` is destroyed (server/http.h asks for that).
  struct StopInOrder {
    server::HttpServer& http;
    WorkQueue& work;
    ~StopInOrder() {
      http.Stop();
      work.Stop();
    }
  } stop_in_order{http, work};
  if (Status started = http.Start(); !started.ok())
    throw std::runtime_error("cannot serve: " + started.message());
  std::string url = "http://" + listen + ":" + std::to_string(http.port());
  ctx.log() << "serving " << path << " as model '" << name << "' version " << version << " on " << url << " ("
            << threads << " threads, micro-batch " << max_batch << (max_batch > 1 ? " within " + std::to_string(max_wait_ms) + " ms" : "")
            << ")";
  ctx.output("url", url);
  while (!ctx.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  http.Stop();
  work.Stop();
  ctx.log() << "stopped serving " << url;
  throw sluice::Cancelled{};
}

}  // namespace sluice::torchplugin
