// YamlNode: a YAML document as a small tree that keeps every node's place in
// the file, built from libyaml's event parser. Just what the loader needs:
// maps keep their keys in file order (and repeated keys, so the loader can
// report them), scalars keep whether they were quoted. Anchors and aliases
// are resolved by copying.
//
// The text may be hostile (POST /api/validate takes a read-scope token), so
// the parse is bounded: the text's size, the tree's nesting depth and what
// aliases may copy (a few hundred bytes of nested aliases, "billion laughs",
// would otherwise expand to gigabytes). Every limit is an error with the
// place where it is crossed. The limits are documented in specs/pipeline.md.
//
// Why not yaml-cpp: on a 100,000-step spec it took 1.7 s and 490 MB; this
// takes a small fraction of both (tests/bench/dag_bench prints the load time).
// Texts in the plain subset generated specs use skip libyaml too (see
// internal::ParseSimpleYaml): its events alone took 0.25 s on that spec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "spec/source.h"

namespace sluice::spec {

struct YamlEntry;

class YamlNode {
 public:
  enum class Kind : uint8_t { kNull, kScalar, kSequence, kMap };

  // Ordered largest first: a spec of 100,000 steps is a million nodes.
  std::string scalar;      // kScalar: the value as written (unquoted, unescaped)
  std::vector<YamlNode> items;                           // kSequence
  std::vector<YamlEntry> entries;    // kMap, in file order
  SourcePos pos;           // where the node starts
  Kind kind = Kind::kNull;
  bool quoted = false;     // kScalar: '...' or "..." (columns start after the quote)

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsSequence() const { return kind == Kind::kSequence; }
  bool IsMap() const { return kind == Kind::kMap; }
  const std::string& Scalar() const { return scalar; }
  size_t size() const;
};

// A key and its value. (A struct, not std::pair: a pair of an incomplete
// type in a member of that type does not compile with clang and libstdc++.)
struct YamlEntry {
  YamlNode first;
  YamlNode second;
};

inline size_t YamlNode::size() const { return IsMap() ? entries.size() : items.size(); }

// The largest spec text, in bytes.
constexpr size_t kMaxSpecBytes = 16 << 20;
// The deepest nesting of sequences and maps: the document's top-level map is
// depth 1, a step's `with:` map depth 4. Aliases count where they are copied to.
constexpr int kMaxYamlDepth = 64;
// What aliases may add to one document, all aliases together: nodes (every
// scalar, null, sequence and map copied, keys included) and bytes of scalar text.
constexpr size_t kMaxAliasNodes = 100'000;
constexpr size_t kMaxAliasBytes = 16 << 20;

struct YamlError {
  SourcePos pos;
  std::string message;   // "did not find expected ',' or ']' (while parsing a flow sequence)"
  bool malformed = true;  // false: well-formed YAML over one of the limits above
};

// Parses the one document in `text`. An empty text is a null node.
std::variant<YamlNode, YamlError> ParseYaml(const std::string& text);

namespace internal {

// ParseYaml's two ways, apart so that tests can check they agree.
// The fast one (yaml_simple.cc): the subset of YAML that generated specs are
// written in (block mappings of words, one-line flow collections and plain
// scalars), read directly into the tree; nullopt for any text outside it,
// errors included. About ten times faster than libyaml's events.
std::optional<YamlNode> ParseSimpleYaml(std::string_view text);
// Every text, through libyaml's event parser: every error, every limit.
std::variant<YamlNode, YamlError> ParseYamlEvents(const std::string& text);

}  // namespace internal

}  // namespace sluice::spec
