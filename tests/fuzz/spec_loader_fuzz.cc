// libFuzzer target: YAML text -> Pipeline (the loader, with libyaml, the
// expression parser and every check). No input may crash it, and every
// error line must be located: "fuzz.yaml:LINE:COL: message" with LINE and
// COL at least 1 (../shared/RELIABILITY.md item 14), and nothing the loader
// calls may throw (Load() turns a throw into an "internal error" line).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spec/pipeline.h"

namespace {

bool Located(std::string_view line) {
  constexpr std::string_view kFile = "fuzz.yaml:";
  if (line.substr(0, kFile.size()) != kFile) return false;
  size_t i = kFile.size();
  for (int field = 0; field < 2; ++field) {
    size_t start = i;
    bool nonzero = false;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') nonzero |= line[i++] != '0';
    if (i == start || !nonzero || i >= line.size() || line[i] != ':') return false;
    ++i;
  }
  return i < line.size() && line[i] == ' ';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto p = sluice::spec::ParsePipeline("fuzz.yaml", text);
  if (p.ok()) {
    (void)sluice::spec::ResolveParams(*p, {});
    return 0;
  }
  // One error per line.
  const std::string& message = p.status().message();
  // Located, but a bug all the same: something the loader calls threw.
  if (message.rfind("fuzz.yaml:1:1: internal error in the loader (a bug", 0) == 0) {
    std::fprintf(stderr, "%.4000s\n", message.c_str());
    std::abort();
  }
  size_t start = 0;
  while (start <= message.size()) {
    size_t nl = message.find('\n', start);
    std::string_view line = std::string_view(message).substr(start, nl == std::string::npos ? nl : nl - start);
    if (!Located(line)) {
      std::fprintf(stderr, "an error that is not FILE:LINE:COL: [%.*s] in:\n%.4000s\n", static_cast<int>(line.size()),
                   line.data(), message.c_str());
      std::abort();
    }
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return 0;
}
