#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "exec/process.h"

extern char** environ;

namespace sluice::testing {

namespace fs = std::filesystem;

Sandbox::Sandbox() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = fs::temp_directory_path() /
         ("sluice-it-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" + std::to_string(::getpid()));
  fs::remove_all(dir_);
  fs::create_directories(dir_);
}

Sandbox::~Sandbox() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void Sandbox::Write(const std::string& name, const std::string& text) const {
  fs::create_directories((dir_ / name).parent_path());
  std::ofstream(dir_ / name, std::ios::binary) << text;
}

std::string Sandbox::Read(const std::string& name) const {
  std::ifstream f(dir_ / name, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Sandbox::Exists(const std::string& name) const { return fs::exists(dir_ / name); }

pid_t Sandbox::Start(const std::vector<std::string>& args, const std::string& log_name) const {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("SLUICE_HOME=", 0) != 0) env_store.emplace_back(*e);
  env_store.push_back("SLUICE_HOME=" + home().string());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store = {SLUICE_BINARY};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string log = (dir_ / log_name).string();
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string err_log = log + ".err";
  posix_spawn_file_actions_addopen(&fa, 2, err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&fa, dir_.c_str());
  pid_t pid = -1;
  int rc = posix_spawn(&pid, SLUICE_BINARY, &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "spawn " << SLUICE_BINARY;
  return pid;
}

int Sandbox::Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

Output Sandbox::Sluice(const std::vector<std::string>& args) const {
  static int n = 0;
  std::string log = ".out" + std::to_string(++n);
  pid_t pid = Start(args, log);
  Output o;
  o.code = Reap(pid);
  o.out = Read(log);
  o.err = Read(log + ".err");
  return o;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

bool ProcessAlive(pid_t pid) { return exec::ProcessStartTime(pid) != 0; }

int CountLines(const std::string& text, const std::string& line) {
  int n = 0;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) n += l == line;
  return n;
}

nlohmann::json ShowRun(const Sandbox& box, const std::string& run) {
  Output o = box.Sluice({"show", run, "--format", "json"});
  EXPECT_EQ(o.code, 0) << o.err;
  return nlohmann::json::parse(o.out, nullptr, false);
}

nlohmann::json StepOf(const nlohmann::json& run, const std::string& id) {
  if (run.is_object() && run.contains("steps"))
    for (const nlohmann::json& s : run["steps"])
      if (s["id"] == id) return s;
  ADD_FAILURE() << "no step " << id << " in " << run.dump();
  return nlohmann::json::object();
}

}  // namespace sluice::testing
