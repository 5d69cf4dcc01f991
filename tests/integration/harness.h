// Integration test harness: a scratch folder per test, and the real
// `sluice` binary run in it as a child process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::testing {

struct Output {
  int code = -1;       // exit code, or 128 + signal
  std::string out, err;
};

class Sandbox {
 public:
  Sandbox();   // a fresh folder named after the running test
  ~Sandbox();  // removes it

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path home() const { return dir_ / ".sluice"; }
  void Write(const std::string& name, const std::string& text) const;
  std::string Read(const std::string& name) const;
  bool Exists(const std::string& name) const;

  // Runs `sluice args...` in dir() with SLUICE_HOME=home() and waits.
  Output Sluice(const std::vector<std::string>& args) const;
  // Starts it without waiting; stdout and stderr go to `log_name`.
  pid_t Start(const std::vector<std::string>& args, const std::string& log_name) const;
  // Waits for a child started with Start(); returns its exit code (128+sig if killed).
  static int Reap(pid_t pid);

 private:
  std::filesystem::path dir_;
};

// Polls `done` every 20 ms until it is true or `limit` passes.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(20));

// True if a process with this pid exists and is not a zombie.
bool ProcessAlive(pid_t pid);

// How many lines of `text` are exactly `line`.
int CountLines(const std::string& text, const std::string& line);
// `sluice show RUN --format json` in the sandbox (RUN: a number or latest).
nlohmann::json ShowRun(const Sandbox& box, const std::string& run);
// The step `id` of a shown run; a test failure if there is none.
nlohmann::json StepOf(const nlohmann::json& run, const std::string& id);

}  // namespace sluice::testing
