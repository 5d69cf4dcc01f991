// ParseYaml's fast path against libyaml's events: whatever text the fast
// path accepts, it must give the same tree, positions included.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "spec/yaml_tree.h"

namespace fs = std::filesystem;
using sluice::spec::YamlError;
using sluice::spec::YamlNode;
using sluice::spec::internal::ParseSimpleYaml;
using sluice::spec::internal::ParseYamlEvents;

namespace {

std::string Where(const YamlNode& n) { return std::to_string(n.pos.line) + ":" + std::to_string(n.pos.column); }

// The first difference between two trees, or "" if they are the same.
std::string Difference(const YamlNode& a, const YamlNode& b, const std::string& path) {
  if (a.kind != b.kind) return path + ": kind " + std::to_string(int(a.kind)) + " vs " + std::to_string(int(b.kind));
  if (a.pos != b.pos) return path + ": at " + Where(a) + " vs " + Where(b);
  if (a.scalar != b.scalar) return path + ": '" + a.scalar + "' vs '" + b.scalar + "'";
  if (a.quoted != b.quoted) return path + ": quoted differs";
  if (a.items.size() != b.items.size() || a.entries.size() != b.entries.size()) return path + ": sizes differ";
  for (size_t i = 0; i < a.items.size(); ++i)
    if (auto d = Difference(a.items[i], b.items[i], path + "[" + std::to_string(i) + "]"); !d.empty()) return d;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    std::string at = path + "." + a.entries[i].first.scalar;
    if (auto d = Difference(a.entries[i].first, b.entries[i].first, at + "(key)"); !d.empty()) return d;
    if (auto d = Difference(a.entries[i].second, b.entries[i].second, at); !d.empty()) return d;
  }
  return "";
}

// True if the fast path took `text`; fails the test if it then disagrees
// with libyaml.
bool Agrees(const std::string& text) {
  std::optional<YamlNode> fast = ParseSimpleYaml(text);
  if (!fast) return false;
  auto events = ParseYamlEvents(text);
  if (auto* err = std::get_if<YamlError>(&events)) {
    ADD_FAILURE() << "the fast path took a text libyaml rejects (" << err->message << "):\n" << text;
    return true;
  }
  std::string d = Difference(*fast, std::get<YamlNode>(events), "root");
  EXPECT_EQ(d, "") << "in:\n" << text;
  return true;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(YamlTreeTest, FastPathReadsAGeneratedSpecAsLibyamlDoes) {
  std::string text = "name: bench\nsteps:\n";
  for (int k = 0; k < 300; ++k) {
    text += "  s" + std::to_string(k) + ": {";
    if (k >= 10) text += "needs: [s" + std::to_string(k - 10) + ", s" + std::to_string(k - 9) + "], ";
    text += "run: [touch, out/s" + std::to_string(k) + "]}\n";
  }
  EXPECT_TRUE(Agrees(text));
}

TEST(YamlTreeTest, FastPathReadsBlockMappingsCommentsAndNullsAsLibyamlDoes) {
  const char* texts[] = {
      "name: x\n",
      "name: x",
      "a:\n",
      "a:\nb: 1\n",
      "a:   \n  \n# note\nb:\n",
      "# head\n\nname: demo\ndescription: a demo, with [brackets] and {braces}\n",
      "steps:\n  prepare:\n    run: ./prepare.sh ${{ params.mode }}\n  train:\n    needs: [prepare]\n",
      "steps:\n    deep:\n        run: echo \"hi\" 'there' && ls | wc -l > out * 2 ! x @ y % z ` ? - , ~\n",
      "a: b   \nc:    d e  f  \n",
      "  indented: root\n  second: key\n",
      "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
      "env: {KEY: value, B: [1, 2, {c: d}], E: {}, F: []}\n",
      "a: [ x ,  y , z ]\nb: {  k:  v  }\n",
      "run: [python3, train.py, --epochs, 3, a b, ./x, $HOME, (y), a=b, ~, null, Null, NULL, ~x]\n",
      "a: null\nb: ~\nc: Null\nnull: 1\n",
      "x-note: 1\nmax_age: 7d\nkey.with.dots: v\nk/slash: v\n",
      "a: .5\nb: /abs\nc: (x)\nd: =\ne: +1\n",
      "s0: {needs: [], run: [touch, out/s0]}\n",
      "a: -1\nb: --flag\nc: [-1, --epochs, -x-]\n",
  };
  for (const char* t : texts) EXPECT_TRUE(Agrees(t)) << "declined:\n" << t;
}

TEST(YamlTreeTest, FastPathDeclinesWhatItDoesNotRead) {
  const char* texts[] = {
      "",
      "\n# only a comment\n",
      "a: 'quoted'\n",
      "a: \"quoted\"\n",
      "a: &x 1\nb: *x\n",
      "a: !tag 1\n",
      "a:\n  - item\n",
      "- item\n",
      "---\na: 1\n",
      "%YAML 1.1\n---\na: 1\n",
      "a: 1 # trailing comment\n",
      "a: b\n  continued\n",
      "a: [1,\n  2]\n",
      "a: [1, 2,]\n",
      "a: [1, , 2]\n",
      "a: [x: y]\n",
      "a: {k:v}\n",
      "a: {k}\n",
      "a: http://x\n",
      "a:\tb\n",
      "a: b\r\n",
      "a: caf\xc3\xa9\n",
      "a: |\n  text\n",
      "a: >\n  text\n",
      "? a\n: b\n",
      "a b: c\n",
      "a: [x] y\n",
      "a: [x]\n  b: c\n",
      "a:\n    b: 1\n  c: 2\n",
      "  a: 1\nb: 2\n",
      "a: [${{ x }}]\n",
      "<<: {a: 1}\n",
      "a: - x\n",
      "a: -\n",
      "a: [-, x]\n",
      "a: ?x\n",
  };
  for (const char* t : texts) EXPECT_FALSE(ParseSimpleYaml(t).has_value()) << "took:\n" << t;
}

TEST(YamlTreeTest, FastPathAgreesWithLibyamlOnTheRepositorysYamlFiles) {
  fs::path root = SLUICE_SOURCE_DIR;
  int files = 0;
  for (const char* dir : {"examples", "specs", "tests/fuzz/corpus/spec_loader_fuzz"})
    for (const auto& e : fs::recursive_directory_iterator(root / dir))
      if (e.path().extension() == ".yaml") {
        ++files;
        Agrees(ReadFile(e.path()));
      }
  EXPECT_GT(files, 5);
}

namespace {

// Random text from the characters that mean something to YAML.
std::string RandomScalar(std::mt19937& rng) {
  static const std::string chars = "ab1_-./$(){}[],:#'\"&*!|>?%@`~=+ \\^;<";
  std::string s;
  for (int n = static_cast<int>(rng() % 6); n >= 0; --n) s += chars[rng() % chars.size()];
  return s;
}

std::string RandomFlow(std::mt19937& rng, int depth) {
  bool map = rng() % 2;
  std::string s = map ? "{" : "[";
  for (int n = static_cast<int>(rng() % 4); n > 0; --n) {
    if (map) s += RandomScalar(rng) + (rng() % 4 ? ": " : ":");
    s += depth < 3 && rng() % 4 == 0 ? RandomFlow(rng, depth + 1) : RandomScalar(rng);
    if (n > 1) s += rng() % 3 ? ", " : ",";
  }
  return s + (map ? "}" : "]") + (rng() % 8 ? "" : " ");
}

// A block mapping at `indent`, of keys, scalars, flow collections, nested
// mappings, blank lines and comments, in mostly well-formed YAML.
std::string RandomBlock(std::mt19937& rng, int indent, int depth) {
  static const char* keys[] = {"a", "b", "steps", "s1", "x-y", "null", "k.v", "run"};
  std::string s;
  for (int n = 1 + static_cast<int>(rng() % 4); n > 0; --n) {
    if (rng() % 8 == 0) s += std::string(rng() % 6, ' ') + (rng() % 2 ? "# c\n" : "\n");
    s += std::string(indent, ' ') + (rng() % 10 ? keys[rng() % 8] : RandomScalar(rng)) + ":";
    switch (rng() % 4) {
      case 0:
        s += std::string(rng() % 3, ' ') + "\n";
        if (depth < 4 && rng() % 2) s += RandomBlock(rng, indent + 1 + static_cast<int>(rng() % 4), depth + 1);
        break;
      case 1: s += " " + RandomFlow(rng, 0) + "\n"; break;
      default: s += " " + RandomScalar(rng) + "\n"; break;
    }
  }
  return s;
}

}  // namespace

// Random mostly-YAML texts, 30,000 of them: every one the fast path takes
// must come out as libyaml reads it.
TEST(YamlTreeTest, FastPathAgreesWithLibyamlOnRandomSpecs) {
  std::mt19937 rng(7);
  int taken = 0;
  for (int n = 0; n < 30000; ++n)
    if (Agrees(RandomBlock(rng, static_cast<int>(rng() % 2), 0))) ++taken;
  EXPECT_GT(taken, 3000);
}

// Random texts from the pieces the fast path looks at, 50,000 of them: every
// one it takes must come out as libyaml reads it.
TEST(YamlTreeTest, FastPathAgreesWithLibyamlOnRandomTexts) {
  const std::vector<std::string> pieces = {
      "a",  "b1", "s_2", "x-y", "null", "~",  "./p", "$H", "(", "=",  ".",  "/",  "-",   ":",  ": ",  " ",  "  ",
      "\n", "\n  ", "\n    ", "#", " #", "[", "]", "{", "}", ",", ", ", "'",  "\"", "&", "*", "!", "|", ">", "?",
      "%",  "@",  "`",  "\t", "---", "...", "${{", "}}", "\\", "+"};
  std::mt19937 rng(20240601);
  int taken = 0;
  for (int n = 0; n < 50000; ++n) {
    std::string text;
    int len = 1 + static_cast<int>(rng() % 30);
    // Most texts start as a key, so that the fast path gets past the first line.
    if (rng() % 4 != 0) text = "k: ";
    for (int i = 0; i < len; ++i) text += pieces[rng() % pieces.size()];
    if (Agrees(text)) ++taken;
  }
  EXPECT_GT(taken, 1000);
}
