// dag_bench: sluice against make and ninja on the same layered DAG, in one
// run, so the ratios hold on a noisy machine, with sluice's peak RSS at each
// size and how its time per step grows from the smallest size to the largest
// (issue 17: at most 1.0x make, within 10% from 1,000 to 100,000 steps, at
// most 256 MB at 100,000). Also prints the time to load and plan a
// 100,000-step spec (beside `make -n` of the same DAG), the time of `sluice
// show` of a finished 100,000-step run (beside sqlite3 reading its rows), and
// the wall time of a one-step `true` pipeline, and what a step that fails
// before it starts costs beside the same step skipped.
//
//   dag_bench [--sluice PATH] [--sizes 1000,5000,20000] [--reps 3]
//   dag_bench --sizes 1000,5000,20000,100000 --reps 1   (the whole curve: ~15 min)
//
// The DAG: width 10; step k of layer L needs steps k and k+1 (mod 10) of
// layer L-1; every step is `touch out/s<N>`.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "measure.h"
#include "runs/verbs.h"
#include "spec/pipeline.h"
#include "store/open.h"

namespace fs = std::filesystem;

namespace {

struct Dag {
  int n;
  std::vector<std::pair<int, int>> needs;  // -1 for the first layer
};

Dag MakeDag(int n) {
  Dag d{n, {}};
  for (int k = 0; k < n; ++k) {
    int layer = k / 10, i = k % 10;
    if (layer == 0) d.needs.push_back({-1, -1});
    else d.needs.push_back({(layer - 1) * 10 + i, (layer - 1) * 10 + (i + 1) % 10});
  }
  return d;
}

void WriteSpec(const Dag& d, const fs::path& file) {
  std::ofstream f(file);
  f << "name: bench\nsteps:\n";
  for (int k = 0; k < d.n; ++k) {
    f << "  s" << k << ": {";
    if (d.needs[k].first >= 0) f << "needs: [s" << d.needs[k].first << ", s" << d.needs[k].second << "], ";
    f << "run: [touch, out/s" << k << "]}\n";
  }
}

void WriteMakefile(const Dag& d, const fs::path& file) {
  std::ofstream f(file);
  f << "all:";
  for (int k = 0; k < d.n; ++k) f << " out/s" << k;
  f << "\n";
  for (int k = 0; k < d.n; ++k) {
    f << "out/s" << k << ":";
    if (d.needs[k].first >= 0) f << " out/s" << d.needs[k].first << " out/s" << d.needs[k].second;
    f << "\n\ttouch out/s" << k << "\n";
  }
}

void WriteNinja(const Dag& d, const fs::path& file) {
  std::ofstream f(file);
  f << "rule touch\n  command = touch $out\n";
  for (int k = 0; k < d.n; ++k) {
    f << "build out/s" << k << ": touch";
    if (d.needs[k].first >= 0) f << " | out/s" << d.needs[k].first << " out/s" << d.needs[k].second;
    f << "\n";
  }
}

void Fresh(const fs::path& dir) {
  fs::remove_all(dir / "out");
  fs::remove_all(dir / ".sluice");
  fs::remove(dir / ".ninja_log");
  fs::remove(dir / ".ninja_deps");
  fs::create_directories(dir / "out");
}

}  // namespace

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  std::vector<int> sizes = {1000, 5000, 20000};
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else if (k == "--sizes") {
      sizes.clear();
      for (size_t p = 0; p < v.size();) {
        size_t c = v.find(',', p);
        sizes.push_back(std::atoi(v.substr(p, c - p).c_str()));
        p = c == std::string::npos ? v.size() : c + 1;
      }
    }
  }
  fs::path dir = fs::temp_directory_path() / ("sluice-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::vector<std::string> home = {"SLUICE_HOME=" + (dir / ".sluice").string()};

  std::printf("layered DAG, width 10, touch per step, -j2; median of %d runs\n", reps);
  std::printf("%7s %12s %12s %12s %10s %10s %12s\n", "steps", "sluice", "make", "ninja", "sl/make", "sl/ninja",
              "sluice RSS");
  std::vector<double> per_step, over_make, cpu_per_step, make_cpu_per_step;  // by size
  for (int n : sizes) {
    Dag d = MakeDag(n);
    WriteSpec(d, dir / "pipeline.yaml");
    WriteMakefile(d, dir / "Makefile");
    WriteNinja(d, dir / "build.ninja");
    std::vector<double> ts, tm, tn, cs, cm;
    long rss_kb = 0;
    for (int r = 0; r < reps; ++r) {
      Fresh(dir);
      bench::Measure m = bench::RunOk({sluice, "run", "pipeline.yaml", "--jobs", "2"}, dir, home);
      ts.push_back(m.seconds);
      cs.push_back(m.cpu_seconds);
      rss_kb = std::max(rss_kb, m.max_rss_kb);
      Fresh(dir);
      m = bench::RunOk({"make", "-j2", "-f", "Makefile"}, dir);
      tm.push_back(m.seconds);
      cm.push_back(m.cpu_seconds);
      Fresh(dir);
      m = bench::RunOk({"ninja", "-j2"}, dir);
      tn.push_back(m.seconds);
    }
    double s = bench::Median(ts), mk = bench::Median(tm), nj = bench::Median(tn);
    std::printf("%7d %9.3f s  %9.3f s  %9.3f s %9.2fx %9.2fx %9.1f MB\n", n, s, mk, nj, s / mk, s / nj,
                rss_kb / 1024.0);
    std::printf("%7s %9.3f ms %9.3f ms %9.3f ms   per step\n", "", s * 1e3 / n, mk * 1e3 / n, nj * 1e3 / n);
    double cpu = bench::Median(cs), make_cpu = bench::Median(cm);
    std::printf("%7s %9.3f ms %9.3f ms %12s %9.2fx   CPU per step, the steps' own included\n", "", cpu * 1e3 / n,
                make_cpu * 1e3 / n, "", cpu / make_cpu);
    std::printf("%7s %9.3f ms over make's time per step\n", "", (s - mk) * 1e3 / n);
    per_step.push_back(s / n);
    over_make.push_back((s - mk) / n);
    cpu_per_step.push_back(cpu / n);
    make_cpu_per_step.push_back(make_cpu / n);
  }
  if (per_step.size() > 1)
    std::printf("sluice's time per step at %d steps is %.2fx its time at %d, its CPU per step %.2fx (make's %.2fx) "
                "(target: within 10%%)\n",
                sizes.back(), per_step.back() / per_step.front(), sizes.front(), cpu_per_step.back() / cpu_per_step.front(),
                make_cpu_per_step.back() / make_cpu_per_step.front());
  // What make's own time per step does on this machine from the smallest
  // size to the largest (the steps, the folder they write, the page cache)
  // is no cost of sluice's: the time sluice adds per step over make's is.
  if (over_make.size() > 1)
    std::printf("sluice's time per step over make's: %.3f ms at %d steps, %.3f ms at %d (%.2fx)\n",
                over_make.front() * 1e3, sizes.front(), over_make.back() * 1e3, sizes.back(),
                over_make.back() / over_make.front());

  // Load and plan a 100,000-step spec, against make working out what it
  // would do with the same DAG.
  Dag big_dag = MakeDag(100000);
  WriteSpec(big_dag, dir / "big.yaml");
  WriteMakefile(big_dag, dir / "Makefile");
  Fresh(dir);
  std::vector<double> tp, tmn;
  for (int r = 0; r < reps; ++r) {
    tp.push_back(bench::RunOk({sluice, "plan", "big.yaml"}, dir, home).seconds);
    tmn.push_back(bench::RunOk({"make", "-n", "-f", "Makefile"}, dir).seconds);
  }
  std::printf("load, check and plan 100,000 steps (sluice plan): %.3f s (target <= 0.5 s); make -n: %.3f s\n",
              bench::Median(tp), bench::Median(tmn));

  // `sluice show` of a finished 100,000-step run, against sqlite3 printing
  // the same rows. The run is created as `sluice run` creates one, then
  // written with the store's own calls (running it would take many
  // minutes): one succeeded attempt per step.
  {
    fs::create_directories(dir / ".sluice");
    std::string db = (dir / ".sluice" / "sluice.db").string();
    auto t0 = std::chrono::steady_clock::now();
    {
      auto opened = sluice::store::Store::Open(db);
      if (!opened.ok()) {
        std::fprintf(stderr, "open %s: %s\n", db.c_str(), opened.status().message().c_str());
        return 1;
      }
      sluice::store::RunsStore& runs = (*opened)->runs();
      auto pipeline = sluice::spec::LoadPipeline((dir / "big.yaml").string());
      auto created = pipeline.ok() ? sluice::runs::RunVerbs(runs, (dir / ".sluice").string()).Create(*pipeline, {}, 2)
                                   : sluice::Result<int64_t>(pipeline.status());
      if (!created.ok()) {
        std::fprintf(stderr, "create the 100,000-step run: %s\n", created.status().message().c_str());
        return 1;
      }
      int64_t now = 1'700'000'000'000;
      int64_t run = *created;
      std::vector<sluice::engine::StepRecord> steps(big_dag.n);
      std::vector<const sluice::engine::StepRecord*> pointers;
      for (int k = 0; k < big_dag.n; ++k) {
        char id[16];
        std::snprintf(id, sizeof id, "s%d", k);
        steps[k].step_id = id;
        steps[k].state = sluice::engine::StepState::kSucceeded;
        steps[k].tries = steps[k].attempts = 1;
        pointers.push_back(&steps[k]);
      }
      bool ok = runs.SaveSteps(run, pointers).ok();
      for (int k = 0; ok && k < big_dag.n; ++k) {
        sluice::engine::AttemptRecord a{.run_id = run, .step_id = steps[k].step_id, .number = 1,
                                        .log_path = (dir / "logs" / steps[k].step_id).string()};
        a.started_ms = now + k;
        ok = runs.BeginAttempt(&a, steps[k]).ok();
        a.state = sluice::engine::StepState::kSucceeded;
        a.exit_code = 0;
        a.finished_ms = now + k + 5;
        ok = ok && runs.FinishAttempt(&a, steps[k]).ok() && (k % 1000 != 999 || runs.Flush().ok());
      }
      ok = ok && runs.SetRunState(run, sluice::engine::RunState::kSucceeded, now + big_dag.n).ok() && runs.Flush().ok();
      if (!ok) {
        std::fprintf(stderr, "writing the 100,000-step run failed\n");
        return 1;
      }
    }
    double fill = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<double> tsh, tsq;
    for (int r = 0; r < reps; ++r) {
      tsh.push_back(bench::RunOk({sluice, "show", "latest"}, dir, home).seconds);
      tsq.push_back(bench::RunOk({"sqlite3", db, "select * from steps; select * from attempts;"}, dir).seconds);
    }
    std::printf("sluice show of a finished 100,000-step run: %.3f s (target <= 1 s); sqlite3 of its steps and "
                "attempts: %.3f s; writing the run took %.2f s\n",
                bench::Median(tsh), bench::Median(tsq), fill);
  }

  // Steps that fail before they start, 5,000 of each cause, against the
  // same 5,000 steps skipped (issue 17: no dearer than a skipped step). Both
  // pipelines are the same steps needing one root step; the root succeeds in
  // the first, so every step fails before it starts, and fails in the
  // second, so every step is skipped. Both exit 1; the figure is the extra
  // wall time per step over a one-step failing pipeline.
  {
    const int n = 5000;
    auto write = [&](const std::string& file, const std::string& head, const char* root, const std::string& step) {
      std::ofstream f(dir / file);
      f << "name: fails\n" << head << "steps:\n  root: {run: [\"" << root << "\"]}\n";
      for (int k = 0; k < n; ++k) f << "  s" << k << ": {needs: [root], " << step << "}\n";
    };
    struct Cause {
      const char* name;
      const char* head;
      const char* step;
    };
    const Cause causes[] = {
        {"command not found", "", "run: [no-such-command-of-the-bench]"},
        {"missing workdir", "", "run: [\"true\"], workdir: no-such-folder-of-the-bench"},
        {"expression error", "params:\n  j: {type: string, default: not-json}\n",
         "run: [echo, \"${{ fromJSON(params.j) }}\"]"},
    };
    std::ofstream(dir / "root.yaml") << "name: fails\nsteps:\n  root: {run: [\"false\"]}\n";
    auto median_of = [&](const std::string& file) {
      std::vector<double> t;
      for (int r = 0; r < std::max(reps, 3); ++r) {
        Fresh(dir);
        bench::Measure m = bench::Run({sluice, "run", file, "--jobs", "2"}, dir, home);
        if (m.code != 1) {
          std::fprintf(stderr, "sluice run %s exited with %d, not 1\n", file.c_str(), m.code);
          std::exit(1);
        }
        t.push_back(m.seconds);
      }
      return bench::Median(t);
    };
    double root = median_of("root.yaml");
    auto per_step_us = [&](const std::string& file) { return (median_of(file) - root) * 1e6 / n; };
    std::printf("a step failing before it starts, per step over %d, beside the same steps skipped (target: no dearer "
                "than skipped):",
                n);
    for (size_t c = 0; c < std::size(causes); ++c) {
      std::string failing = "fails" + std::to_string(c) + ".yaml", skipped = "skips" + std::to_string(c) + ".yaml";
      write(failing, causes[c].head, "true", causes[c].step);
      write(skipped, causes[c].head, "false", causes[c].step);
      double f = per_step_us(failing), k = per_step_us(skipped);
      std::printf("%s %s %.0f us, skipped %.0f us", c ? ";" : "", causes[c].name, f, k);
    }
    std::printf("\n");
  }

  // One-step `true` pipeline, against a bare `true` for the process floor.
  {
    std::ofstream(dir / "one.yaml") << "name: one\nsteps:\n  t: {run: [true]}\n";
    std::vector<double> t1, t0;
    Fresh(dir);
    bench::RunOk({sluice, "run", "one.yaml"}, dir, home);
    for (int r = 0; r < 20; ++r) {
      bench::Measure m = bench::RunOk({sluice, "run", "one.yaml"}, dir, home);
      t1.push_back(m.seconds);
      t0.push_back(bench::RunOk({"true"}, dir).seconds);
    }
    std::printf("sluice run of a one-step `true` pipeline: %.1f ms (target <= 20 ms); bare `true`: %.1f ms\n",
                bench::Median(t1) * 1e3, bench::Median(t0) * 1e3);
  }
  fs::remove_all(dir);
  return 0;
}
