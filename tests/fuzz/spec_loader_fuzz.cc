// libFuzzer target: YAML text -> Pipeline (the loader, with libyaml, the
// expression parser and every check). No input may crash it, and every
// error line must be located: "fuzz.yaml:LINE:COL: message" with LINE and
// COL at least 1 (../shared/RELIABILITY.md item 14), and nothing the loader
// calls may throw (Load() turns a throw into an "internal error" line).
// Whatever text the YAML fast path takes, libyaml must take too and give
// the same tree, positions included.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spec/pipeline.h"
#include "spec/yaml_tree.h"

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

using sluice::spec::YamlNode;

bool SameTree(const YamlNode& a, const YamlNode& b) {
  if (a.kind != b.kind || !(a.pos == b.pos) || a.scalar != b.scalar || a.quoted != b.quoted ||
      a.items.size() != b.items.size() || a.entries.size() != b.entries.size())
    return false;
  for (size_t i = 0; i < a.items.size(); ++i)
    if (!SameTree(a.items[i], b.items[i])) return false;
  for (size_t i = 0; i < a.entries.size(); ++i)
    if (!SameTree(a.entries[i].first, b.entries[i].first) || !SameTree(a.entries[i].second, b.entries[i].second))
      return false;
  return true;
}

void CheckFastPathAgrees(const std::string& text) {
  std::optional<YamlNode> fast = sluice::spec::internal::ParseSimpleYaml(text);
  if (!fast) return;
  auto events = sluice::spec::internal::ParseYamlEvents(text);
  const YamlNode* slow = std::get_if<YamlNode>(&events);
  if (slow && SameTree(*fast, *slow)) return;
  std::fprintf(stderr, "the YAML fast path and libyaml disagree on:\n%.4000s\n", text.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  CheckFastPathAgrees(text);
  auto p = sluice::spec::ParsePipeline("fuzz.yaml", text, /*read_template_files=*/false);  // no file: the same input, the same answer
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
