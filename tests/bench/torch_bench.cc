// torch_bench: the Fashion-MNIST targets of the torch plugin, in one run.
//
//   torch_bench [--quick] [--sluice PATH] [--requests N]
//
// 1. Runs examples/fashion-mnist with its default settings (--quick: 3,000
//    images, one epoch) and prints training wall time, samples per second and
//    test accuracy (targets: accuracy >= 0.92, training <= 10 minutes).
// 2. Serves the float32 and the int8 model with `sluice serve-model` and
//    measures, on loopback: one-image latency p50/p99 over sequential
//    requests on one connection (target p50 <= 2 ms), and images per second
//    from 8 concurrent clients, without and with micro-batching. Beside them:
//    the model's own forward latency measured in-process by torch/export,
//    the floor that HTTP and JSON add to.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "../common/free_port.h"
#include "measure.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string Capture(const std::vector<std::string>& args, const fs::path& dir) {
  std::string cmd = "cd '" + dir.string() + "' && SLUICE_HOME='" + (dir / "home").string() + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

json Step(const json& run, const std::string& id) {
  for (const auto& s : run["steps"])
    if (s["id"] == id) return s;
  std::fprintf(stderr, "no step %s\n", id.c_str());
  std::exit(1);
}

double Metric(const json& step, const std::string& name) {
  for (const auto& m : step["metrics"])
    if (m["name"] == name) return m["value"].get<double>();
  return 0;
}


struct Server {
  pid_t pid = -1;
  int port = 0;
  Server(const std::string& sluice, const fs::path& dir, const std::string& model, const std::vector<std::string>& extra) {
    port = sluice::testing::FreePort();
    std::vector<std::string> args = {sluice, "serve-model", model, "--name", "m", "--port", std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = fork();
    if (pid == 0) {
      if (chdir(dir.c_str()) != 0) _exit(127);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      freopen("/dev/null", "w", stderr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    httplib::Client c("127.0.0.1", port);
    for (int i = 0; i < 500; ++i) {
      auto r = c.Get("/v2/health/ready");
      if (r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::fprintf(stderr, "the model server did not start\n");
    std::exit(1);
  }
  ~Server() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
};

std::string OneImage(const std::string& images, size_t i) {
  json data = json::array();
  for (size_t k = i * 784; k < (i + 1) * 784; ++k) data.push_back(uint8_t(images[k]) / 255.0f);
  return json{{"inputs", {{{"name", "input"}, {"shape", {1, 1, 28, 28}}, {"datatype", "FP32"}, {"data", data}}}}}.dump();
}

struct Latency {
  double p50 = 0, p99 = 0;
};

Latency Sequential(int port, const std::vector<std::string>& bodies, int requests) {
  httplib::Client c("127.0.0.1", port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  std::vector<double> ms;
  for (int i = 0; i < requests + 20; ++i) {
    auto t0 = Clock::now();
    auto r = c.Post("/v2/models/m/infer", bodies[size_t(i) % bodies.size()], "application/json");
    double t = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r || r->status != 200) {
      std::fprintf(stderr, "request %d failed: %s\n", i,
                   r ? (std::to_string(r->status) + " " + r->body).c_str() : httplib::to_string(r.error()).c_str());
      std::exit(1);
    }
    if (i >= 20) ms.push_back(t);  // after a warm-up
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

// Images per second from `clients` connections sending one image each.
double Throughput(int port, const std::vector<std::string>& bodies, int requests, int clients) {
  std::atomic<int> next{0}, failed{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      for (int i; (i = next++) < requests;) {
        auto r = c.Post("/v2/models/m/infer", bodies[size_t(i) % bodies.size()], "application/json");
        if (!r || r->status != 200) {
          if (failed++ == 0)
            std::fprintf(stderr, "request failed: %s\n",
                         r ? (std::to_string(r->status) + " " + r->body).c_str() : httplib::to_string(r.error()).c_str());
        }
      }
    });
  for (auto& t : threads) t.join();
  if (failed) std::fprintf(stderr, "%d requests failed\n", failed.load());
  return requests / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  fs::path build = fs::canonical("/proc/self/exe").parent_path().parent_path();
  std::string sluice = (build / "sluice").string();
  fs::path source = SLUICE_SOURCE_DIR;
  bool quick = false;
  int requests = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--quick") quick = true;
    else if (k == "--sluice" && i + 1 < argc) sluice = argv[++i];
    else if (k == "--requests" && i + 1 < argc) requests = std::atoi(argv[++i]);
  }
  fs::path dir = fs::temp_directory_path() / ("sluice-torch-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy(source / "examples/fashion-mnist", dir / "example", fs::copy_options::recursive);

  // 1. Training and accuracy with the demo's defaults.
  std::vector<std::string> args = {sluice, "run", "example/pipeline.yaml"};
  if (quick) args.insert(args.end(), {"-p", "epochs=1", "-p", "train_limit=3000", "-p", "min_accuracy=0"});
  bench::Measure whole = bench::RunOk(args, dir, {"SLUICE_HOME=" + (dir / "home").string()});  // as Capture
  json run = json::parse(Capture({sluice, "show", "latest", "--format", "json"}, dir), nullptr, false);
  if (run.is_discarded()) {
    std::fprintf(stderr, "cannot read the run\n");
    return 1;
  }
  json train = Step(run, "train"), evaluate = Step(run, "evaluate"), exported = Step(run, "export");
  const json& attempt = train["attempts"].back();
  double train_s = (attempt["finished_ms"].get<double>() - attempt["started_ms"].get<double>()) / 1000;
  std::printf("pipeline %s: %.1f s in all; train step %.1f s (%.0f samples/s); target <= 600 s\n",
              quick ? "--quick (3,000 images, 1 epoch)" : "with default settings", whole.seconds, train_s,
              Metric(train, "samples_per_second"));
  std::printf("test accuracy on the 10,000 test images: float32 %.4f, int8 %.4f (they agree on %.2f%%); target >= 0.92\n",
              Metric(exported, "accuracy"), Metric(exported, "int8_accuracy"), 100 * Metric(exported, "int8_agreement"));
  std::printf("model size: float32 %.0f KB, int8 %.0f KB\n", Metric(exported, "size_bytes") / 1024,
              Metric(exported, "int8_size_bytes") / 1024);

  // 2. Serving, float32 against int8.
  std::ifstream f(fs::path(Step(run, "ingest-test")["outputs"]["dataset"].get<std::string>()) / "image.bin",
                  std::ios::binary);
  std::string images(std::istreambuf_iterator<char>(f), {});
  std::vector<std::string> bodies;
  for (size_t i = 0; i < 256; ++i) bodies.push_back(OneImage(images, i));
  std::printf("\nserving on loopback, %d requests of one image each:\n", requests);
  std::printf("%-8s %12s %12s %16s %18s %22s\n", "model", "p50 ms", "p99 ms", "in-process p50", "8 clients img/s",
              "micro-batch 16 img/s");
  for (const char* variant : {"model", "model_int8"}) {
    std::string model = exported["outputs"][variant].get<std::string>();
    Latency l;
    double plain, batched;
    {
      Server s(sluice, dir, model, {"--threads", "8"});
      l = Sequential(s.port, bodies, requests);
      plain = Throughput(s.port, bodies, requests, 8);
    }
    {
      Server s(sluice, dir, model, {"--threads", "16", "--max-batch", "16", "--max-wait-ms", "2"});
      batched = Throughput(s.port, bodies, requests, 16);
    }
    bool int8 = std::string(variant) == "model_int8";
    std::printf("%-8s %12.3f %12.3f %13.3f ms %18.0f %22.0f\n", int8 ? "int8" : "float32", l.p50, l.p99,
                Metric(exported, int8 ? "int8_latency_ms_p50" : "latency_ms_p50"), plain, batched);
  }
  std::printf("target: one-image p50 <= 2 ms\n");
  fs::remove_all(dir);
  return 0;
}
