// plugin_bench: per-step overhead of 10,000 no-op steps run three ways in one
// run: plugin in-process, plugin isolated (warm plugin hosts), and a
// subprocess `true`. Every transition is committed to SQLite in all three.
//
//   plugin_bench [--sluice PATH] [--plugins DIR] [--steps N] [--reps R]
//
// The steps are independent (no needs), run with --jobs 2.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "measure.h"

namespace fs = std::filesystem;

namespace {

void WriteSpec(const fs::path& file, int n, const std::string& body) {
  std::ofstream f(file);
  f << "name: bench\nsteps:\n";
  for (int k = 0; k < n; ++k) f << "  s" << k << ": " << body << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  fs::path exe_dir = fs::canonical("/proc/self/exe").parent_path();
  std::string sluice = (exe_dir.parent_path() / "sluice").string();
  std::string plugins = (exe_dir / "plugins" / "testkit").string();
  int n = 10000, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--plugins") plugins = v;
    else if (k == "--steps") n = std::atoi(v.c_str());
    else if (k == "--reps") reps = std::atoi(v.c_str());
  }
  fs::path dir = fs::temp_directory_path() / ("sluice-plugin-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  WriteSpec(dir / "inprocess.yaml", n, "{uses: testkit/noop, isolation: inprocess}");
  WriteSpec(dir / "isolated.yaml", n, "{uses: testkit/noop}");
  WriteSpec(dir / "subprocess.yaml", n, "{run: [true]}");
  std::vector<std::string> env = {"SLUICE_PLUGIN_PATH=" + plugins};
  std::printf("%d independent no-op steps, --jobs 2, median of %d runs\n", n, reps);
  std::printf("%-22s %10s %14s\n", "", "wall", "per step");
  double inproc = 0;
  for (const char* kind : {"inprocess", "isolated", "subprocess"}) {
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      fs::remove_all(dir / ".sluice");
      t.push_back(bench::RunOk({sluice, "run", std::string(kind) + ".yaml", "--jobs", "2"}, dir,
                               {env[0], "SLUICE_HOME=" + (dir / ".sluice").string()})
                      .seconds);
    }
    std::sort(t.begin(), t.end());
    double med = t[t.size() / 2];
    if (std::string(kind) == "inprocess") inproc = med;
    std::printf("%-22s %8.3f s %11.1f us", kind, med, med * 1e6 / n);
    if (std::string(kind) != "inprocess") std::printf("   %.1fx in-process", med / inproc);
    std::printf("\n");
  }
  std::printf("targets: in-process <= 50 us per step; isolated <= 4x in-process; both well under subprocess\n");
  fs::remove_all(dir);
  return 0;
}
