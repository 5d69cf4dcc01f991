// ParseYaml's fast path (spec/yaml_tree.h): the subset of YAML that big
// generated specs are written in, read straight into the tree.
//
// The subset: printable ASCII and newlines only; block mappings whose keys
// are words (`s12`, `max_age`, `x-note`) followed by `: ` or a line end;
// values that are plain scalars on one line, flow sequences and flow
// mappings of such scalars closed on the line they open, or a more indented
// block mapping; blank lines and lines holding only a comment. Anything else
// (quotes, anchors, tags, block sequences, `-` and `?` entries, multi-line
// scalars, `#` after content, tabs, document markers, ':' inside a scalar,
// nesting deeper than kMaxSimpleDepth, every error) is declined, and libyaml
// reads the whole text: this parser never produces a message, so every
// FILE:LINE:COL error stays libyaml's.
//
// Each accepted text gives the very tree libyaml's events give, down to the
// positions (YamlTreeTest and the spec loader's fuzz target compare them).
#include <optional>
#include <string_view>

#include "spec/yaml_tree.h"

namespace sluice::spec::internal {

namespace {

// Nesting past this goes to libyaml, which reports kMaxYamlDepth.
constexpr int kMaxSimpleDepth = 32;
// libyaml refuses an implicit key longer than 1024 characters.
constexpr size_t kMaxKeyBytes = 1000;

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool IsNullText(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

enum class Context { kBlockKey, kBlockValue, kFlowKey, kFlowValue };


// What may follow inside it. In block context only ": " and " #" end a
// plain scalar, so everything printable but ':' and '#' is text; flow
// context is held to characters that mean nothing there.
bool ContinuesScalar(Context c, char ch) {
  if (IsAlnum(ch) || ch == '_' || ch == '-' || ch == '.' || ch == '/') return true;
  switch (c) {
    case Context::kBlockKey:
    case Context::kFlowKey: return false;
    case Context::kBlockValue: return ch != ':' && ch != '#';
    case Context::kFlowValue:
      return ch == '=' || ch == '+' || ch == '$' || ch == '(' || ch == ')' || ch == '~' || ch == '@' || ch == '%' ||
             ch == '^';
  }
  return false;
}

// What may start a plain scalar here: no YAML indicator (a quote, an
// anchor, a tag, a comment, a flow bracket). A '-' starts one
// when more of the scalar follows (`--epochs`; "- " is a sequence entry).
bool StartsScalar(Context c, char ch, char next) {
  if (IsAlnum(ch) || ch == '_') return true;
  if (c == Context::kBlockKey || c == Context::kFlowKey) return false;
  if (ch == '-') return next != ' ' && next != '\n' && ContinuesScalar(c, next);
  return ch == '.' || ch == '/' || ch == '$' || ch == '(' || ch == ')' || ch == '=' || ch == '+' || ch == '~';
}

class SimpleParser {
 public:
  explicit SimpleParser(std::string_view text) : t_(text) {}

  std::optional<YamlNode> Parse() {
    for (char c : t_)
      if ((c < 0x20 && c != '\n') || c == 0x7F || static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
    NextContentLine();
    if (indent_ < 0) return std::nullopt;  // no content: libyaml's null document
    YamlNode root;
    if (!BlockMap(indent_, 1, &root) || indent_ >= 0) return std::nullopt;
    return root;
  }

 private:
  SourcePos Here() const { return {line_, static_cast<int>(i_ - line_start_) + 1}; }
  char Peek(size_t ahead = 0) const { return i_ + ahead < t_.size() ? t_[i_ + ahead] : '\n'; }
  bool AtLineEnd() const { return Peek() == '\n'; }
  void SkipSpaces() {
    while (i_ < t_.size() && t_[i_] == ' ') ++i_;
  }

  // From a line end, to the first byte of the next line that holds more
  // than spaces and a comment; indent_ is its column - 1, or -1 at the end.
  void NextLine() {
    if (i_ < t_.size()) ++i_;
    ++line_;
    line_start_ = i_;
    NextContentLine();
  }
  void NextContentLine() {
    while (true) {
      SkipSpaces();
      if (i_ >= t_.size()) {
        indent_ = -1;
        return;
      }
      if (t_[i_] != '\n' && t_[i_] != '#') break;
      while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      if (i_ >= t_.size()) {
        indent_ = -1;
        return;
      }
      ++i_;
      ++line_;
      line_start_ = i_;
    }
    indent_ = static_cast<int>(i_ - line_start_);
  }

  // The keys at column `indent` + 1, from the cursor (the first of them)
  // to the first line indented less.
  bool BlockMap(int indent, int depth, YamlNode* out) {
    if (depth > kMaxSimpleDepth) return false;
    out->kind = YamlNode::Kind::kMap;
    out->pos = Here();
    while (indent_ == indent) {
      YamlEntry& e = out->entries.emplace_back();
      if (!Scalar(Context::kBlockKey, &e.first)) return false;
      ++i_;  // the ':'
      SourcePos after_colon = Here();
      SkipSpaces();
      bool empty = AtLineEnd();
      if (empty) {
        e.second.pos = after_colon;  // a null, where libyaml puts it
      } else if (Peek() == '[' || Peek() == '{') {
        if (!Flow(depth + 1, &e.second)) return false;
        SkipSpaces();
        if (!AtLineEnd()) return false;
      } else if (!Scalar(Context::kBlockValue, &e.second)) {
        return false;
      }
      NextLine();
      if (indent_ > indent) {
        if (!empty || !BlockMap(indent_, depth + 1, &e.second)) return false;
      }
    }
    return indent_ < indent;
  }

  // A flow sequence or mapping, from its bracket to the one that closes it
  // on the same line.
  bool Flow(int depth, YamlNode* out) {
    if (depth > kMaxSimpleDepth) return false;
    bool map = Peek() == '{';
    char close = map ? '}' : ']';
    out->kind = map ? YamlNode::Kind::kMap : YamlNode::Kind::kSequence;
    out->pos = Here();
    ++i_;
    SkipSpaces();
    if (Peek() == close) {
      ++i_;
      return true;
    }
    if (map) out->entries.reserve(Count());
    else out->items.reserve(Count());
    while (true) {
      YamlNode* value;
      if (map) {
        YamlEntry& e = out->entries.emplace_back();
        if (!Scalar(Context::kFlowKey, &e.first)) return false;
        ++i_;  // the ':'
        SkipSpaces();
        value = &e.second;
      } else {
        value = &out->items.emplace_back();
      }
      if (Peek() == '[' || Peek() == '{') {
        if (!Flow(depth + 1, value)) return false;
      } else if (!Scalar(Context::kFlowValue, value)) {
        return false;
      }
      SkipSpaces();
      if (Peek() == close) {
        ++i_;
        return true;
      }
      if (Peek() != ',') return false;
      ++i_;
      SkipSpaces();
      if (Peek() == ']' || Peek() == '}' || AtLineEnd()) return false;
    }
  }

  // How many entries the flow collection whose bracket the cursor just
  // passed has, to allocate them at once: its commas outside nested
  // collections, plus one. (Only a reservation: the line may not parse.)
  size_t Count() const {
    size_t n = 1;
    int depth = 0;
    for (size_t j = i_; j < t_.size() && t_[j] != '\n'; ++j) {
      char c = t_[j];
      if (c == '[' || c == '{') ++depth;
      else if ((c == ']' || c == '}') && depth-- == 0) break;
      else if (c == ',' && depth == 0) ++n;
    }
    return n;
  }

  // A plain scalar on one line. A key ends at a ':' followed by a space or
  // the line's end (the cursor stays on the ':'); a value at the line's end,
  // or in flow context at ',', ']' or '}'; trailing spaces are not part of it.
  bool Scalar(Context c, YamlNode* out) {
    bool key = c == Context::kBlockKey || c == Context::kFlowKey;
    bool flow = c == Context::kFlowKey || c == Context::kFlowValue;
    if (!StartsScalar(c, Peek(), Peek(1))) return false;
    out->pos = Here();
    size_t start = i_, end = i_;
    while (!AtLineEnd()) {
      char ch = Peek();
      if (ch == ':') {
        if (!key || (Peek(1) != ' ' && Peek(1) != '\n') || (flow && Peek(1) == '\n')) return false;
        break;
      }
      if (ch == ' ' && !key) {
        ++i_;
        continue;
      }
      if (flow && (ch == ',' || ch == ']' || ch == '}')) break;
      if (!ContinuesScalar(c, ch)) return false;
      end = ++i_;
    }
    if (key && (Peek() != ':' || end - start > kMaxKeyBytes)) return false;
    std::string_view text = t_.substr(start, end - start);
    out->scalar.assign(text);
    out->kind = IsNullText(text) ? YamlNode::Kind::kNull : YamlNode::Kind::kScalar;
    return true;
  }

  std::string_view t_;
  size_t i_ = 0;           // the cursor
  size_t line_start_ = 0;  // where the cursor's line starts
  int line_ = 1;
  int indent_ = 0;         // of the line with content the cursor is on; -1 past the last
};

}  // namespace

std::optional<YamlNode> ParseSimpleYaml(std::string_view text) { return SimpleParser(text).Parse(); }

}  // namespace sluice::spec::internal
