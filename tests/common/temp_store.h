// A store in a fresh file under the temporary folder, for tests of the
// store's classes. TempDb names the file (per process and `name`) and removes
// any file, WAL or shared-memory file a crashed earlier run left there;
// OpenStore opens it, failing the test (and returning null) if it cannot.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/open.h"

namespace sluice::testing {

inline std::string TempDb(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("sluice-store-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove(p);
  std::filesystem::remove(p.string() + "-wal");
  std::filesystem::remove(p.string() + "-shm");
  return p.string();
}

inline std::unique_ptr<store::Store> OpenStore(const std::string& path) {
  auto s = store::Store::Open(path);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(s.value()) : nullptr;
}

}  // namespace sluice::testing
