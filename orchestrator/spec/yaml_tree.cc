#include "spec/yaml_tree.h"

#include <algorithm>
#include <map>
#include <optional>

#include <yaml.h>

namespace sluice::spec {

namespace {

SourcePos PosOf(const yaml_mark_t& m) { return {static_cast<int>(m.line) + 1, static_cast<int>(m.column) + 1}; }

bool IsNullText(const std::string& s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

// Owns a libyaml parser for one parse.
struct Parser {
  yaml_parser_t p;
  Parser() { yaml_parser_initialize(&p); }
  ~Parser() { yaml_parser_delete(&p); }
};

struct Event {
  yaml_event_t e;
  ~Event() { yaml_event_delete(&e); }
};

// An anchored node with what copying it costs: its height (0 for a scalar,
// 1 for a collection of scalars), its nodes and its bytes of scalar text.
struct Anchor {
  YamlNode node;
  int height = 0;
  size_t nodes = 0;
  size_t bytes = 0;
};

// Recursion is bounded: a node is at most kMaxYamlDepth deep.
void Measure(const YamlNode& n, int* height, size_t* nodes, size_t* bytes) {
  *height = 0;
  ++*nodes;
  *bytes += n.scalar.size();
  auto child = [&](const YamlNode& c) {
    int h = 0;
    Measure(c, &h, nodes, bytes);
    *height = std::max(*height, h + 1);
  };
  if (n.IsSequence() || n.IsMap()) *height = 1;
  for (const YamlNode& c : n.items) child(c);
  for (const auto& [k, v] : n.entries) {
    child(k);
    child(v);
  }
}

YamlError LimitError(const yaml_mark_t& m, std::string message) { return YamlError{PosOf(m), std::move(message), false}; }

// YAML's merge key: `<<: *base` (or `<<: [*a, *b]`) in a map brings in the
// entries of the named maps whose keys the map does not set itself; of two
// merged maps, the earlier wins. The `<<` entry itself goes.
std::optional<YamlError> ApplyMergeKeys(YamlNode* map) {
  auto is_merge = [](const YamlEntry& e) { return e.first.IsScalar() && !e.first.quoted && e.first.scalar == "<<"; };
  if (std::none_of(map->entries.begin(), map->entries.end(), is_merge)) return std::nullopt;
  std::vector<YamlEntry> own, merged;
  for (YamlEntry& e : map->entries) {
    if (!is_merge(e)) {
      own.push_back(std::move(e));
      continue;
    }
    std::vector<const YamlNode*> sources;
    if (e.second.IsMap()) {
      sources.push_back(&e.second);
    } else if (e.second.IsSequence()) {
      for (const YamlNode& item : e.second.items) sources.push_back(&item);
    } else {
      return YamlError{e.second.pos, "a merge key '<<' takes a mapping or a list of mappings (an alias such as *common)",
                       false};
    }
    for (const YamlNode* src : sources) {
      if (!src->IsMap())
        return YamlError{src->pos, "a merge key '<<' takes a mapping or a list of mappings (an alias such as *common)",
                         false};
      for (const YamlEntry& m : src->entries) merged.push_back(m);
    }
  }
  auto has_key = [](const std::vector<YamlEntry>& list, const YamlNode& key) {
    return key.IsScalar() && std::any_of(list.begin(), list.end(), [&](const YamlEntry& e) {
             return e.first.IsScalar() && e.first.scalar == key.scalar;
           });
  };
  for (YamlEntry& m : merged)
    if (!has_key(own, m.first)) own.push_back(std::move(m));
  map->entries = std::move(own);
  return std::nullopt;
}

}  // namespace

std::variant<YamlNode, YamlError> ParseYaml(const std::string& text) {
  if (text.size() > kMaxSpecBytes)
    return YamlError{{1, 1}, "the spec is " + std::to_string(text.size()) + " bytes, over the limit of " +
                                 std::to_string(kMaxSpecBytes) + " bytes (16 MiB)", false};
  if (auto tree = internal::ParseSimpleYaml(text)) return std::move(*tree);
  return internal::ParseYamlEvents(text);
}

namespace internal {

std::variant<YamlNode, YamlError> ParseYamlEvents(const std::string& text) {
  Parser parser;
  yaml_parser_set_input_string(&parser.p, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  // Containers being built, innermost last; the bottom one holds the document.
  std::vector<YamlNode> stack(1);
  std::vector<bool> awaiting_value(1, false);
  std::map<std::string, Anchor> anchors;
  std::vector<std::string> open_anchors(1);
  size_t copied_nodes = 0, copied_bytes = 0;  // what anchors and aliases have copied so far
  int documents = 0;
  bool done = false;

  auto attach = [&](YamlNode node) {
    YamlNode& top = stack.back();
    if (stack.size() == 1) {
      top = std::move(node);
    } else if (top.IsSequence()) {
      top.items.push_back(std::move(node));
    } else if (!awaiting_value.back()) {
      top.entries.push_back({std::move(node), YamlNode{}});
      awaiting_value.back() = true;
    } else {
      top.entries.back().second = std::move(node);
      awaiting_value.back() = false;
    }
  };

  // Counts a copy of `a` against the document's budget; an error at `pos` once it is spent.
  auto charge = [&](const Anchor& a, SourcePos pos) -> std::optional<YamlError> {
    copied_nodes += a.nodes;
    copied_bytes += a.bytes;
    if (copied_nodes > kMaxAliasNodes)
      return YamlError{pos, "the anchors and aliases in this spec copy more than " + std::to_string(kMaxAliasNodes) +
                                " nodes (the limit)", false};
    if (copied_bytes > kMaxAliasBytes)
      return YamlError{pos, "the anchors and aliases in this spec copy more than " + std::to_string(kMaxAliasBytes) +
                                " bytes of text (the limit)", false};
    return std::nullopt;
  };
  // Keeps a copy of `n` for the aliases that name it.
  auto define = [&](const std::string& name, const YamlNode& n) -> std::optional<YamlError> {
    Anchor a;
    Measure(n, &a.height, &a.nodes, &a.bytes);
    if (auto err = charge(a, n.pos)) return err;
    a.node = n;  // copied only once it is paid for
    anchors[name] = std::move(a);
    return std::nullopt;
  };

  while (!done) {
    Event ev;
    if (!yaml_parser_parse(&parser.p, &ev.e)) {
      std::string msg = parser.p.problem ? parser.p.problem : "unknown error";
      if (parser.p.context) msg += std::string(" (") + parser.p.context + ")";
      return YamlError{PosOf(parser.p.problem_mark), msg};
    }
    const yaml_event_t& e = ev.e;
    switch (e.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_DOCUMENT_START_EVENT:
        if (++documents > 1) return YamlError{PosOf(e.start_mark), "a spec holds one YAML document, this is a second"};
        break;
      case YAML_SCALAR_EVENT: {
        YamlNode n;
        n.pos = PosOf(e.start_mark);
        n.scalar.assign(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
        n.quoted = e.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                   e.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        bool plain = e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n.kind = plain && IsNullText(n.scalar) ? YamlNode::Kind::kNull : YamlNode::Kind::kScalar;
        if (e.data.scalar.anchor)
          if (auto err = define(reinterpret_cast<const char*>(e.data.scalar.anchor), n)) return *err;
        attach(std::move(n));
        break;
      }
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char*>(e.data.alias.anchor));
        if (it == anchors.end())
          return YamlError{PosOf(e.start_mark), std::string("unknown anchor '") +
                                                    reinterpret_cast<const char*>(e.data.alias.anchor) + "'"};
        const Anchor& a = it->second;
        // stack.size() - 1 collections are open; the copy goes inside the innermost.
        if (static_cast<int>(stack.size() - 1) + a.height > kMaxYamlDepth)
          return LimitError(e.start_mark, "this alias nests the YAML deeper than " + std::to_string(kMaxYamlDepth) +
                                              " levels (the limit)");
        if (auto err = charge(a, PosOf(e.start_mark))) return *err;
        attach(a.node);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        if (static_cast<int>(stack.size() - 1) >= kMaxYamlDepth)
          return LimitError(e.start_mark, "the YAML nests deeper than " + std::to_string(kMaxYamlDepth) +
                                              " levels (the limit)");
        YamlNode n;
        n.pos = PosOf(e.start_mark);
        n.kind = e.type == YAML_SEQUENCE_START_EVENT ? YamlNode::Kind::kSequence : YamlNode::Kind::kMap;
        const yaml_char_t* anchor =
            e.type == YAML_SEQUENCE_START_EVENT ? e.data.sequence_start.anchor : e.data.mapping_start.anchor;
        stack.push_back(std::move(n));
        awaiting_value.push_back(false);
        open_anchors.push_back(anchor ? reinterpret_cast<const char*>(anchor) : "");
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        YamlNode n = std::move(stack.back());
        if (n.IsMap())
          if (auto err = ApplyMergeKeys(&n)) return *err;
        std::string anchor = std::move(open_anchors.back());
        stack.pop_back();
        awaiting_value.pop_back();
        open_anchors.pop_back();
        if (!anchor.empty())
          if (auto err = define(anchor, n)) return *err;
        attach(std::move(n));
        break;
      }
      default:
        break;
    }
  }
  if (stack.front().pos.line == 0) stack.front().pos = {1, 1};
  return std::move(stack.front());
}

}  // namespace internal

}  // namespace sluice::spec
