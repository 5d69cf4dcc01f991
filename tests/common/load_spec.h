// Loading a spec from text in a test: Load(yaml) expects it to load, and
// Error(yaml) expects it to be refused and gives the message, word for word
// with its FILE:LINE:COL. `file` is the name messages use.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "spec/pipeline.h"

namespace sluice::testing::load_spec {

inline std::string Error(const std::string& yaml, const std::string& file = "p.yaml") {
  auto p = spec::ParsePipeline(file, yaml);
  EXPECT_FALSE(p.ok()) << "expected an error for:\n" << yaml;
  return p.ok() ? "" : p.status().message();
}

inline spec::Pipeline Load(const std::string& yaml, const std::string& file = "p.yaml") {
  auto p = spec::ParsePipeline(file, yaml);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? std::move(p.value()) : spec::Pipeline{};
}

}  // namespace sluice::testing::load_spec
