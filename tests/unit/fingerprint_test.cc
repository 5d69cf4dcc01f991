// A step's identity and fingerprint, over a file system in memory: what
// changes the cache key and what does not.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/fingerprint.h"
#include "../common/fake_files.h"
#include "spec/pipeline.h"
#include "util/hash.h"

using namespace sluice;
using namespace sluice::engine;
using nlohmann::json;
using sluice::testing::FakeFiles;

namespace {

// Params only: enough for the steps these tests render.
class ParamsContext : public spec::EvalContext {
 public:
  explicit ParamsContext(const spec::ParamValues& params) : params_(params) {}
  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override {
    if (path[0] == "params") return params_.at(path[1]);
    return Status::NotFound("not in this test");
  }
  bool StatusFunction(std::string_view) const override { return true; }

 private:
  const spec::ParamValues& params_;
};

constexpr const char* kSpecDir = "/spec";

class FingerprintTest : public ::testing::Test {
 protected:
  // The fingerprint of step `id` of `yaml` (spec folder /spec).
  Result<Fingerprint> Of(const std::string& yaml, const std::string& id = "s",
                         const std::map<std::string, std::string>& pipeline_env = {},
                         const std::vector<LineageEdge>& inputs = {}) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    if (!p.ok()) return p.status();
    pipeline_ = std::move(*p);
    auto params = spec::ResolveParams(pipeline_, {});
    EXPECT_TRUE(params.ok());
    params_ = *params;
    ParamsContext ctx(params_);
    const spec::Step& s = *pipeline_.FindStep(id);
    auto rendered = RenderStep(s, ctx, kSpecDir, nullptr);
    EXPECT_TRUE(rendered.ok()) << rendered.status().message();
    if (!rendered.ok()) return rendered.status();
    IdentityParts parts;
    parts.step = &s;
    parts.rendered = &*rendered;
    parts.pipeline_env = &pipeline_env;
    parts.inputs = inputs;
    parts.spec_dir = kSpecDir;
    return ComputeFingerprint(parts, files_);
  }
  std::string Key(const std::string& yaml) {
    auto f = Of(yaml);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? f->sha256 : "";
  }
  json Identity(const std::string& yaml) {
    auto f = Of(yaml);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? json::parse(f->identity) : json();
  }
  std::string Error(const std::string& yaml) {
    auto f = Of(yaml);
    EXPECT_FALSE(f.ok());
    return f.ok() ? "" : f.status().message();
  }

  FakeFiles files_;
  spec::Pipeline pipeline_;
  spec::ParamValues params_;
};

}  // namespace

TEST_F(FingerprintTest, EditingAFileNamedInTheCommandChangesTheFingerprint) {
  const char* yaml = "name: t\nsteps:\n  s: {run: python3 train.py --epochs 3, cache: true}\n";
  files_.Write("/spec/train.py", "print(1)\n");
  std::string before = Key(yaml);
  EXPECT_EQ(Key(yaml), before);
  files_.Write("/spec/train.py", "print(2)\n");
  EXPECT_NE(Key(yaml), before);
  EXPECT_EQ(Identity(yaml)["files"], json({{"train.py", Sha256Hex("print(2)\n")}}));
}

TEST_F(FingerprintTest, EditingAFileNamedInAnArgvElementOrAfterEqualsChangesTheFingerprint) {
  const char* yaml = "name: t\nsteps:\n  s: {run: [python3, train.py, --config=conf.yaml], cache: true}\n";
  files_.Write("/spec/train.py", "a");
  files_.Write("/spec/conf.yaml", "lr: 1");
  std::string before = Key(yaml);
  files_.Write("/spec/conf.yaml", "lr: 2");
  EXPECT_NE(Key(yaml), before);
  EXPECT_EQ(Identity(yaml)["files"].size(), 2u);
}

TEST_F(FingerprintTest, TheLineOfAShellsDashCIsSearchedForFiles) {
  const char* yaml = "name: t\nsteps:\n  s: {run: [bash, -ec, 'python3 \"my train.py\" | tee log'], cache: true}\n";
  files_.Write("/spec/my train.py", "a");
  std::string before = Key(yaml);
  files_.Write("/spec/my train.py", "b");
  EXPECT_NE(Key(yaml), before);
}

TEST_F(FingerprintTest, AFileTheLineWritesThroughARedirectionIsNotHashedButOneItReadsIs) {
  const char* yaml = "name: t\nsteps:\n  s: {run: ./train.sh < in.txt > out.txt 2>> err.txt, cache: true}\n";
  files_.Write("/spec/train.sh", "x");
  files_.Write("/spec/in.txt", "1");
  files_.Write("/spec/out.txt", "first");
  files_.Write("/spec/err.txt", "first");
  std::string before = Key(yaml);
  files_.Write("/spec/out.txt", "second");
  files_.Write("/spec/err.txt", "second");
  EXPECT_EQ(Key(yaml), before);
  files_.Write("/spec/in.txt", "2");
  EXPECT_NE(Key(yaml), before);
  EXPECT_EQ(Identity(yaml)["files"].size(), 2u);  // train.sh, in.txt
}

TEST_F(FingerprintTest, FilesOutsideTheSpecFolderAndFoldersAreNotHashed) {
  files_.Write("/etc/hosts", "x");
  files_.Write("/up.txt", "x");
  files_.MakeDir("/spec/data");
  json id = Identity("name: t\nsteps:\n  s: {run: cat /etc/hosts ../up.txt data /spec/missing.txt, cache: true}\n");
  EXPECT_FALSE(id.contains("files")) << id.dump();
  files_.Write("/spec/abs.txt", "x");  // an absolute path under the folder counts
  id = Identity("name: t\nsteps:\n  s: {run: cat /spec/abs.txt, cache: true}\n");
  EXPECT_EQ(id["files"], json({{"abs.txt", Sha256Hex("x")}}));
}

TEST_F(FingerprintTest, AnArtifactTheStepReadsAndSluicesOwnFolderAreNotHashedAsFiles) {
  files_.Write("/spec/.sluice/artifacts/abc", "published");
  files_.Write("/spec/store/def/part", "published");
  std::vector<LineageEdge> inputs = {{LineageEdge::Role::kConsumed, "prep.data", {"def", "dir", 9, "/spec/store/def"}}};
  auto f = Of("name: t\nsteps:\n  s: {run: cat .sluice/artifacts/abc /spec/store/def/part, cache: true}\n", "s", {},
              inputs);
  ASSERT_TRUE(f.ok());
  json id = json::parse(f->identity);
  EXPECT_FALSE(id.contains("files")) << f->identity;
  EXPECT_EQ(id["inputs"], json::array({json::array({"prep.data", "def"})}));
}

TEST_F(FingerprintTest, AWordIsAPathFromTheStepsWorkdir) {
  files_.Write("/spec/sub/train.py", "x");
  files_.Write("/spec/train.py", "y");
  json id = Identity("name: t\nsteps:\n  s: {run: python3 train.py, workdir: sub, cache: true}\n");
  EXPECT_EQ(id["files"], json({{"sub/train.py", Sha256Hex("x")}}));
}

TEST_F(FingerprintTest, AValueOfAShellLineThatNamesAFileIsHashed) {
  files_.Write("/spec/data.csv", "1,2");
  const char* yaml = "name: t\nparams:\n  d: {type: string, default: data.csv}\nsteps:\n  s: {run: 'wc -l ${{ params.d }}', cache: true}\n";
  EXPECT_EQ(Identity(yaml)["files"], json({{"data.csv", Sha256Hex("1,2")}}));
}

// Caches made before deps existed stay valid for steps that name no file.
TEST_F(FingerprintTest, AStepThatNamesNoFileKeepsTheIdentityItHadBefore) {
  auto f = Of("name: t\nenv: {A: '1'}\nsteps:\n  s: {run: echo hi, env: {B: '2'}, outputs: {m: model}, cache: true}\n", "s",
              {{"A", "1"}});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->identity,
            R"({"command":["/bin/sh","-c","echo hi"],"env":{"A":"1","B":"2"},"outputs":{"m":"model"},"step":"s","workdir":"."})");
  EXPECT_EQ(f->sha256, Sha256Hex(f->identity));
}

TEST_F(FingerprintTest, TheStepsEnvOverridesThePipelinesInTheIdentityAsInTheStep) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, env: {A: step}, cache: true}\n";
  auto f = Of(yaml, "s", {{"A", "pipeline"}});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(json::parse(f->identity)["env"]["A"], "step");
  auto g = Of(yaml, "s", {{"A", "other"}});
  EXPECT_EQ(f->sha256, g->sha256);  // the step never sees the pipeline's A
}

TEST_F(FingerprintTest, ADepGlobCoversEveryMatchAndNothingElse) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, deps: ['data/*.csv'], cache: true}\n";
  files_.Write("/spec/data/a.csv", "1");
  files_.Write("/spec/data/b.csv", "2");
  files_.Write("/spec/data/notes.txt", "n");
  files_.Write("/spec/data/.hidden.csv", "h");
  std::string before = Key(yaml);
  files_.Write("/spec/data/notes.txt", "changed");
  files_.Write("/spec/data/.hidden.csv", "changed");  // * does not match a leading dot, as in the shell
  EXPECT_EQ(Key(yaml), before);
  files_.Write("/spec/data/b.csv", "3");
  std::string edited = Key(yaml);
  EXPECT_NE(edited, before);
  files_.Write("/spec/data/c.csv", "4");
  EXPECT_NE(Key(yaml), edited);
  EXPECT_TRUE(Identity(yaml)["deps"].contains("data/*.csv"));
}

TEST_F(FingerprintTest, ADepFolderCoversItsFilesAtAnyDepthButNotBytecodeOrGit) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, deps: [src/], cache: true}\n";
  files_.Write("/spec/src/a.py", "1");
  files_.Write("/spec/src/pkg/deep/b.py", "2");
  files_.Write("/spec/src/__pycache__/a.cpython-311.pyc", "x");
  files_.Write("/spec/src/.git/HEAD", "x");
  std::string before = Key(yaml);
  files_.Write("/spec/src/__pycache__/a.cpython-311.pyc", "y");
  files_.Write("/spec/src/.git/HEAD", "y");
  EXPECT_EQ(Key(yaml), before);
  files_.Write("/spec/src/pkg/deep/b.py", "3");
  EXPECT_NE(Key(yaml), before);
  files_.Remove("/spec/src/pkg/deep/b.py");
  EXPECT_NE(Key(yaml), before);
}

TEST_F(FingerprintTest, DoubleStarMatchesAnyNumberOfFoldersButNotHiddenOnes) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, deps: ['src/**/*.py'], cache: true}\n";
  files_.Write("/spec/src/a.py", "1");
  files_.Write("/spec/src/x/y/b.py", "2");
  files_.Write("/spec/src/x/notes.md", "n");
  files_.Write("/spec/src/.venv/c.py", "h");
  std::string before = Key(yaml);
  files_.Write("/spec/src/x/notes.md", "m");
  files_.Write("/spec/src/.venv/c.py", "i");
  EXPECT_EQ(Key(yaml), before);
  files_.Write("/spec/src/a.py", "3");  // ** matches no folder at all, too
  std::string edited = Key(yaml);
  EXPECT_NE(edited, before);
  files_.Write("/spec/src/x/y/b.py", "4");
  EXPECT_NE(Key(yaml), edited);
}

TEST_F(FingerprintTest, TheSameDepWrittenTwoWaysIsTheSameDep) {
  files_.Write("/spec/data/a.csv", "1");
  EXPECT_EQ(Key("name: t\nsteps:\n  s: {run: echo, deps: [./data/], cache: true}\n"),
            Key("name: t\nsteps:\n  s: {run: echo, deps: [data], cache: true}\n"));
}

TEST_F(FingerprintTest, ADepThatMatchesNothingFailsNamingTheStepAndTheDep) {
  files_.Write("/spec/train.py", "x");
  files_.Write("/spec/data/a.txt", "1");
  auto f = Of("name: t\nsteps:\n  train: {run: echo, deps: [train.py, 'data/*.csv'], cache: true}\n", "train");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "deps: 'data/*.csv' of step 'train' matches no file or folder in /spec");
}

TEST_F(FingerprintTest, DepsOverTheFileCapAreRefusedWithTheWayOut) {
  for (size_t i = 0; i <= kMaxDepFiles; ++i) files_.Write("/spec/data/f" + std::to_string(i), "x");
  EXPECT_EQ(Error("name: t\nsteps:\n  s: {run: echo, deps: [data], cache: true}\n"),
            "deps: step 's' names more than 10,000 files (at 'data'); a step hashes at most 10,000: depend on an "
            "archive of them, or make them an upstream step's declared output");
}

TEST_F(FingerprintTest, AStepWithoutCacheHashesNoFileButStillChecksItsDeps) {
  files_.Write("/spec/train.py", "x");
  files_.Write("/spec/data/a.csv", "1");
  json id = Identity("name: t\nsteps:\n  s: {run: python3 train.py, deps: [data]}\n");
  EXPECT_FALSE(id.contains("files"));
  EXPECT_FALSE(id.contains("deps"));
  EXPECT_EQ(files_.hashes, 0);
  EXPECT_EQ(Error("name: t\nsteps:\n  s: {run: echo, deps: [model.pt]}\n"),
            "deps: 'model.pt' of step 's' matches no file or folder in /spec");
}

TEST_F(FingerprintTest, APluginStepHashesItsDepsButNoWordOfItsWith) {
  files_.Write("/spec/train.py", "x");
  files_.Write("/spec/conf.yaml", "y");
  json id = Identity("name: t\nsteps:\n  s: {uses: torch/train, with: {script: train.py}, deps: [conf.yaml], cache: true}\n");
  EXPECT_FALSE(id.contains("files"));
  EXPECT_TRUE(id["deps"].contains("conf.yaml"));
}

TEST(ShellWordsTest, KeepsLiteralWordsUnquotedAndLeavesOutExpansionsTargetsAndComments) {
  EXPECT_EQ(ShellWords(R"(python3 'a b.py' "c.py" d\ e.py $X "$Y" `f` *.csv ~/g > out.txt 2>err.log # x.py)"),
            (std::vector<std::string>{"python3", "a b.py", "c.py", "d e.py"}));
  EXPECT_EQ(ShellWords("cat <<EOF\nin.txt\nEOF\nsort < in.txt && echo done >> log; ./next.sh|tee t"),
            (std::vector<std::string>{"cat", "in.txt", "EOF", "sort", "in.txt", "echo", "done", "./next.sh", "tee", "t"}));
  EXPECT_EQ(ShellWords("a&>b c >|d e"), (std::vector<std::string>{"a", "c", "e"}));
  // A rendered line's ${{ }} values are in place: "${SLUICE_EXPR_1}".csv is a.csv.
  EXPECT_EQ(ShellWords(R"(wc -l "${SLUICE_EXPR_1}".csv ${SLUICE_EXPR_2}/x "$HOME")", {{"SLUICE_EXPR_1", "a"}, {"SLUICE_EXPR_2", "d"}}),
            (std::vector<std::string>{"wc", "-l", "a.csv", "d/x"}));
}

TEST(CommandWordsTest, AddsThePartAfterEqualsAndTheWordsOfAShellsDashC) {
  EXPECT_EQ(CommandWords({"/bin/sh", "-c", "X=a.txt ./run.sh --in=b.txt"}, {{"SLUICE_EXPR_1", "c.txt"}}),
            (std::vector<std::string>{"/bin/sh", "-c", "X=a.txt ./run.sh --in=b.txt", "X=a.txt", "a.txt", "./run.sh",
                                      "--in=b.txt", "b.txt", "c.txt"}));
  EXPECT_EQ(CommandWords({"python3", "-c", "x y", "a b=c", "=d"}, {}),
            (std::vector<std::string>{"python3", "-c", "x y", "a b=c", "=d"}));
}

TEST(DescribeChangeTest, NamesEachInputThatChanged) {
  json before = {{"step", "s"},
                 {"command", {"a"}},
                 {"env", {{"A", "1"}, {"B", "1"}}},
                 {"deps", {{"data", "x"}}},
                 {"files", {{"train.py", "1"}}},
                 {"inputs", json::array({json::array({"prep.out", "h1"})})}};
  json after = before;
  EXPECT_EQ(DescribeChange(before.dump(), after.dump()), "");
  after["files"]["train.py"] = "2";
  after["deps"]["data"] = "y";
  after["env"]["B"] = "2";
  after["command"] = {"b"};
  after["inputs"] = json::array({json::array({"prep.out", "h2"})});
  EXPECT_EQ(DescribeChange(before.dump(), after.dump()),
            "deps changed: data, train.py; command changed; env changed: B; inputs changed: prep.out");
  after = before;
  after["files"]["new.py"] = "1";
  after["files"].erase("train.py");
  EXPECT_EQ(DescribeChange(before.dump(), after.dump()), "deps changed: new.py, train.py");
  after = before;
  after["plugin"] = {{"version", "0.3.2"}};
  before["plugin"] = {{"version", "0.3.1"}};
  EXPECT_EQ(DescribeChange(before.dump(), after.dump()), "plugin changed: 0.3.1 -> 0.3.2");
}

TEST(DescribeChangeTest, WithDepsOnlyComparesDepsAndTheFilesTheNewIdentityNames) {
  json before = {{"command", {"a", "x.py"}}, {"deps", {{"data", "x"}}}, {"files", {{"x.py", "1"}, {"y.py", "1"}}}};
  json after = {{"command", {"a", ""}}, {"deps", {{"data", "x"}}}, {"files", {{"y.py", "1"}}}};
  EXPECT_EQ(DescribeChange(before.dump(), after.dump(), /*deps_only=*/true), "");
  after["files"]["y.py"] = "2";
  EXPECT_EQ(DescribeChange(before.dump(), after.dump(), /*deps_only=*/true), "deps changed: y.py");
}

TEST(FormatAgeTest, ShowsEveryUnitDownToTheLastThatIsNotZero) {
  EXPECT_EQ(FormatAge(Millis(40'000)), "40s");
  EXPECT_EQ(FormatAge(Millis(12 * 60'000)), "12m");
  EXPECT_EQ(FormatAge(Millis(3 * 3600'000 + 5 * 60'000)), "3h05m");
  EXPECT_EQ(FormatAge(Millis(7 * 86400'000LL)), "7d");
  EXPECT_EQ(FormatAge(Millis(8 * 86400'000LL + 2 * 3600'000)), "8d02h");
  EXPECT_EQ(FormatAge(Millis(3600'000 + 1'000)), "1h00m01s");
}
