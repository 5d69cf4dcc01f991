// Where something is in a spec file, for FILE:LINE:COL messages.
#pragma once

#include <string>

namespace sluice::spec {

struct SourcePos {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  friend bool operator==(const SourcePos&, const SourcePos&) = default;
};

// "pipeline.yaml:14:7: message"
inline std::string At(const std::string& file, SourcePos p, const std::string& message) {
  return file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": " + message;
}

}  // namespace sluice::spec
