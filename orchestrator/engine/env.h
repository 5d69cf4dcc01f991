// Env: what the engine reads from and writes to the world besides its store
// and its executor (leveldb's Env): the process environment, and files. It
// extends FileSystem (fingerprint.h: the reads a fingerprint needs) with the
// rest: an environment variable (`${{ env.NAME }}`), the folders of a run's
// logs and of an attempt's outputs, $SLUICE_OUTPUT and declared metrics
// files, a line appended to an attempt's log, a file rewritten with its
// secrets masked. RealEnv is the real one; tests give an in-memory fake
// (tests/common/fake_files.h), so an engine test needs no temp folder.
//
// Like FileSystem, not thread-safe: the engine's thread uses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/fingerprint.h"
#include "util/status.h"

namespace sluice::engine {

class Env : public FileSystem {
 public:
  // The value of environment variable `name`, if it is set.
  virtual std::optional<std::string> GetVar(const std::string& name) = 0;
  // What `path` itself is, not following a symbolic link (a link is kOther).
  virtual Kind LinkStat(const std::string& path) = 0;
  // Creates folder `path` and its parents. IoError "create PATH: why".
  virtual Status CreateDirs(const std::string& path) = 0;
  // Reads file `path` whole and sets *size to its size. A file over `limit`
  // bytes is not read (the text is empty; *size says how big it is).
  // NotFound if there is no such file; IoError "read PATH: why".
  virtual Result<std::string> ReadFile(const std::string& path, size_t limit, int64_t* size) = 0;
  // Replaces file `path`'s content. IoError "write PATH: why".
  virtual Status WriteFile(const std::string& path, const std::string& text) = 0;
  // Appends to file `path`, creating it. IoError "write PATH: why".
  virtual Status AppendFile(const std::string& path, const std::string& text) = 0;
};

// The process's environment and the real file system. Fingerprint reads are
// RealFileSystem's (hashes remembered for the RealEnv's lifetime).
class RealEnv : public Env {
 public:
  Kind Stat(const std::string& path) override { return files_.Stat(path); }
  Result<std::vector<Entry>> List(const std::string& path) override { return files_.List(path); }
  Result<std::string> HashFile(const std::string& path) override { return files_.HashFile(path); }

  std::optional<std::string> GetVar(const std::string& name) override;
  Kind LinkStat(const std::string& path) override;
  Status CreateDirs(const std::string& path) override;
  Result<std::string> ReadFile(const std::string& path, size_t limit, int64_t* size) override;
  Status WriteFile(const std::string& path, const std::string& text) override;
  Status AppendFile(const std::string& path, const std::string& text) override;

 private:
  RealFileSystem files_;
};

}  // namespace sluice::engine
