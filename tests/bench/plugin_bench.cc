// plugin_bench, in one run:
// 1. `sluice validate` of a pipeline with one torch/train step, the torch
//    plugin read from its descriptor (LIB.json) and loaded from its library
//    (libtorch with it), beside a pipeline without plugin steps (the floor);
//    the three interleaved, median of --validate-reps (0 skips this part).
// 2. Per-step overhead of 10,000 no-op steps run three ways: plugin
//    in-process (testkit/noop is declared nonblocking, so it runs on the
//    engine's thread), plugin isolated (warm plugin hosts), and a subprocess `true`.
//    Every transition is committed to SQLite in all three. The steps are
//    independent (no needs), run with --jobs 2; --steps 0 skips this part.
//
// 3. The floors under an in-process step, in this process, N times: the
//    store's writes for one step's transitions (its attempt begun and
//    committed before it starts, its end joining the next step's commit, as
//    the engine writes them one step at a time), and a round trip to a
//    worker thread (woken by a condition variable, answering through an
//    eventfd the waiter polls, as the in-process runner does for a step type
//    not declared nonblocking).
//
//   plugin_bench [--sluice PATH] [--plugins DIR] [--steps N] [--reps R] [--validate-reps V]
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "measure.h"
#include "store/open.h"
#include "util/hash.h"

namespace fs = std::filesystem;

namespace {

void WriteSpec(const fs::path& file, int n, const std::string& body) {
  std::ofstream f(file);
  f << "name: bench\nsteps:\n";
  for (int k = 0; k < n; ++k) f << "  s" << k << ": " << body << "\n";
}

// Part 1: what checking a torch step costs with and without its descriptor.
// Skipped when reps is 0.
void BenchValidate(const std::string& sluice, const fs::path& dir, int reps) {
  if (reps <= 0) return;
  fs::path torch = fs::canonical("/proc/self/exe").parent_path().parent_path() / "plugins" / "libsluice-torch.so";
  fs::create_directories(dir / "described");
  fs::create_directories(dir / "loaded");
  fs::copy_file(torch, dir / "described" / torch.filename());
  fs::copy_file(torch.string() + ".json", dir / "described" / (torch.filename().string() + ".json"));
  fs::copy_file(torch, dir / "loaded" / torch.filename());  // no descriptor: the library is loaded
  std::ofstream(dir / "torch.yaml") << "name: bench\nsteps:\n  train:\n    uses: torch/train\n"
                                       "    with: {train: a, validation: b, epochs: 2, batch_size: 64}\n";
  std::ofstream(dir / "floor.yaml") << "name: bench\nsteps:\n  a: {run: [true]}\n";
  struct Case {
    const char* name;
    std::string spec, folder;
    std::vector<double> wall, rss;
  };
  std::vector<Case> cases = {{"descriptor", "torch.yaml", "described", {}, {}},
                             {"library (dlopen)", "torch.yaml", "loaded", {}, {}},
                             {"no plugin step", "floor.yaml", "", {}, {}}};
  for (int r = 0; r < reps; ++r)
    for (Case& c : cases) {
      bench::Measure m = bench::RunOk({sluice, "validate", c.spec}, dir,
                                      {"SLUICE_PLUGIN_PATH=" + (c.folder.empty() ? "" : (dir / c.folder).string()),
                                       "SLUICE_HOME=" + (dir / ".sluice").string()});
      c.wall.push_back(m.seconds);
      c.rss.push_back(static_cast<double>(m.max_rss_kb));
    }
  std::printf("sluice validate, one torch/train step, median of %d (interleaved)\n", reps);
  std::printf("%-22s %10s %12s\n", "", "wall", "peak RSS");
  for (const Case& c : cases)
    std::printf("%-22s %7.1f ms %9.0f MB\n", c.name, bench::Median(c.wall) * 1e3, bench::Median(c.rss) / 1024);
  std::printf("descriptor / library: %.3f; descriptor - no plugin step: %+.1f ms\n\n",
              bench::Median(cases[0].wall) / bench::Median(cases[1].wall), (bench::Median(cases[0].wall) - bench::Median(cases[2].wall)) * 1e3);
}

// Part 3: what the store's writes of n steps' transitions cost, per step.
double StoreFloorUs(const fs::path& dir, int n) {
  namespace en = sluice::engine;
  fs::create_directories(dir / "floor");
  auto opened = sluice::store::Store::Open((dir / "floor" / "sluice.db").string());
  if (!opened.ok()) {
    std::fprintf(stderr, "plugin_bench: %s\n", opened.status().message().c_str());
    std::exit(1);
  }
  sluice::store::RunsStore& runs = (*opened)->runs();
  int64_t run = *runs.CreateRun("bench", "x", "inprocess.yaml", dir.string(), "{}", 2, 0);
  std::vector<en::StepRecord> steps(n);
  std::vector<const en::StepRecord*> all;
  for (int k = 0; k < n; ++k) {
    steps[k].step_id = std::to_string(k);
    all.push_back(&steps[k]);
  }
  auto check = [](const sluice::Status& st) {
    if (!st.ok()) {
      std::fprintf(stderr, "plugin_bench: %s\n", st.message().c_str());
      std::exit(1);
    }
  };
  check(runs.SaveSteps(run, all));
  check(runs.Flush());
  auto t0 = std::chrono::steady_clock::now();
  en::AttemptRecord last;
  for (int k = 0; k <= n; ++k) {
    if (k > 0) {  // the previous step ends, in the batch
      en::StepRecord& done = steps[k - 1];
      done.state = en::StepState::kSucceeded;
      last.state = en::StepState::kSucceeded;
      last.exit_code = 0;
      last.finished_ms = 2;
      last.identity = R"({"params":{},"plugin":{"name":"testkit","step_type":"noop"},"step":")" + done.step_id + "\"}";
      last.fingerprint = sluice::Sha256Hex(last.identity);
      check(runs.FinishAttempt(&last, done));
      check(runs.SaveMetrics(last, {}));
    }
    if (k == n) break;
    en::StepRecord& next = steps[k];
    next.state = en::StepState::kRunning;
    next.tries = next.attempts = 1;
    last = en::AttemptRecord{.run_id = run, .step_id = next.step_id, .number = 1, .started_ms = 1,
                             .log_path = (dir / "logs" / (next.step_id + ".1.log")).string()};
    check(runs.BeginAttempt(&last, next));
    check(runs.Flush());  // on record before it starts
  }
  check(runs.Flush());
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
}

// Part 3: a round trip to a worker thread, per step.
double HandoffFloorUs(int n) {
  std::mutex mu;
  std::condition_variable cv;
  int given = 0;
  bool stop = false;
  int done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::thread worker([&] {
    std::unique_lock<std::mutex> lock(mu);
    int taken = 0;
    while (true) {
      cv.wait(lock, [&] { return stop || given > taken; });
      if (stop) return;
      ++taken;
      uint64_t one = 1;
      ssize_t w = ::write(done_fd, &one, sizeof one);
      (void)w;
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < n; ++k) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++given;
    }
    cv.notify_one();
    pollfd p{done_fd, POLLIN, 0};
    while (::poll(&p, 1, 1000) == 0) {
    }
    uint64_t count;
    ssize_t r = ::read(done_fd, &count, sizeof count);
    (void)r;
  }
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_one();
  worker.join();
  ::close(done_fd);
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path exe_dir = fs::canonical("/proc/self/exe").parent_path();
  std::string sluice = (exe_dir.parent_path() / "sluice").string();
  std::string plugins = (exe_dir / "plugins" / "testkit").string();
  int n = 10000, reps = 3, validate_reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--plugins") plugins = v;
    else if (k == "--steps") n = std::atoi(v.c_str());
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else if (k == "--validate-reps") validate_reps = std::atoi(v.c_str());
  }
  if (reps < 1 || validate_reps < 0 || n < 0) {
    std::fprintf(stderr, "plugin_bench: --reps must be at least 1, --steps and --validate-reps at least 0\n");
    return 2;
  }
  fs::path dir = fs::temp_directory_path() / ("sluice-plugin-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  BenchValidate(sluice, dir, validate_reps);
  if (n <= 0) {
    fs::remove_all(dir);
    return 0;
  }
  WriteSpec(dir / "inprocess.yaml", n, "{uses: testkit/noop, isolation: inprocess}");
  WriteSpec(dir / "isolated.yaml", n, "{uses: testkit/noop}");
  WriteSpec(dir / "subprocess.yaml", n, "{run: [true]}");
  std::vector<std::string> env = {"SLUICE_PLUGIN_PATH=" + plugins};
  std::printf("%d independent no-op steps, --jobs 2, median of %d runs\n", n, reps);
  std::printf("%-22s %10s %14s %14s\n", "", "wall", "per step", "CPU per step");
  double inproc = 0;
  for (const char* kind : {"inprocess", "isolated", "subprocess"}) {
    std::vector<double> t, cpu;
    for (int r = 0; r < reps; ++r) {
      fs::remove_all(dir / ".sluice");
      bench::Measure m = bench::RunOk({sluice, "run", std::string(kind) + ".yaml", "--jobs", "2"}, dir,
                                      {env[0], "SLUICE_HOME=" + (dir / ".sluice").string()});
      t.push_back(m.seconds);
      cpu.push_back(m.cpu_seconds);
    }
    double med = bench::Median(t);
    if (std::string(kind) == "inprocess") inproc = med;
    std::printf("%-22s %8.3f s %11.1f us %11.1f us", kind, med, med * 1e6 / n, bench::Median(cpu) * 1e6 / n);
    if (std::string(kind) != "inprocess") std::printf("   %.1fx in-process", med / inproc);
    std::printf("\n");
  }
  std::printf("targets: in-process <= 50 us per step; isolated <= 4x in-process; both well under subprocess\n");
  std::vector<double> store_us, handoff_us;
  for (int r = 0; r < reps; ++r) {
    fs::remove_all(dir / "floor");
    store_us.push_back(StoreFloorUs(dir, n));
    handoff_us.push_back(HandoffFloorUs(n));
  }
  std::printf("floors per in-process step, median of %d: the store's writes of its transitions one step at a time "
              "%.1f us (a commit before it starts; its end joins the next one; with --jobs 2 two steps share one), "
              "against the %.1f us above; a round trip to a worker thread %.1f us, which a step type not declared "
              "nonblocking adds\n",
              reps, bench::Median(store_us), inproc * 1e6 / n, bench::Median(handoff_us));
  fs::remove_all(dir);
  return 0;
}
