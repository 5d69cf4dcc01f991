// slurm_bench: per-step overhead of `executor: slurm` against the same jobs
// submitted as a plain `sbatch --dependency=afterok:<previous>` chain from a
// shell script, on a one-node Slurm cluster this program starts (as root;
// Debian's slurm-wlm and munge). Target (issue 8): at most 1.1x.
//
//   slurm_bench [--sluice PATH] [--steps 20] [--rounds 3]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/slurm_cluster.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  int steps = 20, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--rounds") rounds = std::atoi(v.c_str());
  }
  if (std::string why = sluice::testing::SlurmCluster::Missing(); !why.empty()) {
    std::fprintf(stderr, "slurm_bench: %s\n", why.c_str());
    return 1;
  }
  sluice::testing::SlurmCluster cluster;
  if (!cluster.Start()) {
    std::fprintf(stderr, "the cluster did not start:\n%s\n", cluster.Log().c_str());
    cluster.Stop();
    return 1;
  }
  fs::path dir = fs::temp_directory_path() / ("sluice-slurm-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ofstream spec(dir / "chain.yaml");
    spec << "name: chain\ndefaults: {executor: slurm}\nsteps:\n  s0: {run: \"true\"}\n";
    for (int i = 1; i < steps; ++i) spec << "  s" << i << ": {needs: [s" << i - 1 << "], run: \"true\"}\n";
    std::ofstream sh(dir / "chain.sh");
    sh << "#!/bin/sh\n# the same chain with sbatch --dependency=afterok, then wait for its last job\nset -e\ncd " << dir.string()
       << "\nprev=$(sbatch --parsable --output=/dev/null --wrap true)\n"
       << "i=1\nwhile [ $i -lt " << steps << " ]; do\n"
       << "  prev=$(sbatch --parsable --output=/dev/null --dependency=afterok:$prev --wrap true)\n  i=$((i + 1))\ndone\n"
       << "while squeue --noheader --states=PENDING,RUNNING,COMPLETING --jobs=$prev 2>/dev/null | grep -q .; do sleep 0.1; done\n"
       << "state=$(squeue --noheader --states=all --format=%T --jobs=$prev)\n[ \"$state\" = COMPLETED ]\n";
  }
  fs::permissions(dir / "chain.sh", fs::perms::owner_all);
  std::vector<double> ours, theirs;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    int rc = std::system(("cd " + dir.string() + " && SLUICE_HOME=" + (dir / "home").string() + " " + sluice +
                          " run --no-cache chain.yaml > " + (dir / "run.log").string() + " 2>&1")
                             .c_str());
    ours.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (rc != 0) {
      std::fprintf(stderr, "sluice run failed; see %s\n", (dir / "run.log").c_str());
      cluster.Stop();
      return 1;
    }
    t0 = Clock::now();
    rc = std::system((dir / "chain.sh").c_str());
    theirs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (rc != 0) {
      std::fprintf(stderr, "the sbatch chain failed\n");
      cluster.Stop();
      return 1;
    }
  }
  cluster.Stop();
  std::sort(ours.begin(), ours.end());
  std::sort(theirs.begin(), theirs.end());
  double a = ours[ours.size() / 2], b = theirs[theirs.size() / 2];
  std::printf("a chain of %d one-command jobs on a one-node Slurm cluster, median of %d rounds\n\n", steps, rounds);
  std::printf("%-44s %10s %12s\n", "", "total s", "per step ms");
  std::printf("%-44s %10.2f %12.0f\n", "sluice run (executor: slurm)", a, a * 1000 / steps);
  std::printf("%-44s %10.2f %12.0f\n", "sbatch --dependency=afterok chain (shell)", b, b * 1000 / steps);
  std::printf("\nsluice / sbatch chain: %.2fx (target 1.1x: %s)\n", a / b, a / b <= 1.1 ? "met" : "NOT met");
  fs::remove_all(dir);
  return 0;
}
