#include "spec/yaml_tree.h"

#include <map>

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

}  // namespace

std::variant<YamlNode, YamlError> ParseYaml(const std::string& text) {
  Parser parser;
  yaml_parser_set_input_string(&parser.p, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  // Containers being built, innermost last; the bottom one holds the document.
  std::vector<YamlNode> stack(1);
  std::vector<bool> awaiting_value(1, false);
  std::map<std::string, YamlNode> anchors;
  std::vector<std::string> open_anchors(1);
  int documents = 0;
  bool done = false;

  auto attach = [&](YamlNode node) {
    YamlNode& top = stack.back();
    if (stack.size() == 1) {
      top = std::move(node);
    } else if (top.IsSequence()) {
      top.items.push_back(std::move(node));
    } else if (!awaiting_value.back()) {
      top.entries.emplace_back(std::move(node), YamlNode{});
      awaiting_value.back() = true;
    } else {
      top.entries.back().second = std::move(node);
      awaiting_value.back() = false;
    }
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
        if (e.data.scalar.anchor) anchors[reinterpret_cast<const char*>(e.data.scalar.anchor)] = n;
        attach(std::move(n));
        break;
      }
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char*>(e.data.alias.anchor));
        if (it == anchors.end())
          return YamlError{PosOf(e.start_mark), std::string("unknown anchor '") +
                                                    reinterpret_cast<const char*>(e.data.alias.anchor) + "'"};
        attach(it->second);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
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
        std::string anchor = std::move(open_anchors.back());
        stack.pop_back();
        awaiting_value.pop_back();
        open_anchors.pop_back();
        if (!anchor.empty()) anchors[anchor] = n;
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

}  // namespace sluice::spec
