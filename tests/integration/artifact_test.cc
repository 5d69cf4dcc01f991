// Declared outputs, the artifact store, caching and lineage, end to end.
#include <httplib.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "store/artifacts.h"

using namespace sluice::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// raw -> features -> train, each writing a declared output and a line to ran.txt.
const char* kChain = R"(name: chain
params:
  n: {type: int, default: 3}
  unused: {type: int, default: 0}
env: {SCALE: "2"}
steps:
  raw:
    run: echo raw >> ran.txt; seq ${{ params.n }} > "$SLUICE_OUTPUTS_DIR/data"
    outputs: {data: file}
    cache: true
  features:
    needs: [raw]
    run: echo features >> ran.txt; awk -v s="$SCALE" '{print $1 * s}' "${{ steps.raw.outputs.data }}" > "$SLUICE_OUTPUTS_DIR/features"
    outputs: {features: dataset}
    cache: true
  train:
    needs: [features]
    run: |
      echo train >> ran.txt
      mkdir "$SLUICE_OUTPUTS_DIR/model"
      wc -l < "${{ steps.features.outputs.features }}" > "$SLUICE_OUTPUTS_DIR/model/weights"
      echo '{"accuracy": 0.91}' > "$SLUICE_OUTPUTS_DIR/scores"
    outputs: {model: model, scores: metrics}
    cache: true
)";

class ArtifactTest : public ::testing::Test {
 protected:
  json Show(const std::string& run) { return ShowRun(box_, run); }
  Sandbox box_;
};

}  // namespace

TEST_F(ArtifactTest, DeclaredOutputsArePublishedReadOnlyAndStoredOnce) {
  box_.Write("p.yaml", R"(name: twins
steps:
  a: {run: 'echo same > "$SLUICE_OUTPUTS_DIR/out"', outputs: {out: file}}
  b: {run: 'echo same > "$SLUICE_OUTPUTS_DIR/out"', outputs: {out: file}}
  use: {needs: [a, b], run: 'cat "${{ steps.a.outputs.out }}" "${{ steps.b.outputs.out }}" > both.txt'}
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json run = Show("1");
  std::string a = StepOf(run, "a")["outputs"]["out"], b = StepOf(run, "b")["outputs"]["out"];
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, (box_.home() / "artifacts").string() + "/" + fs::path(a).filename().string());
  EXPECT_EQ(box_.Read("both.txt"), "same\nsame\n");
  size_t stored = 0;
  for (const auto& e : fs::directory_iterator(box_.home() / "artifacts")) stored += e.is_regular_file() || e.is_directory();
  EXPECT_EQ(stored, 1u);
  struct stat st;
  ASSERT_EQ(::stat(a.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
}

TEST_F(ArtifactTest, AnOutputTheStepDidNotWriteFailsTheAttempt) {
  box_.Write("p.yaml", "name: x\nsteps:\n  a: {run: 'true', outputs: {model: model}}\n");
  EXPECT_EQ(box_.Sluice({"run", "p.yaml"}).code, 1);
  std::string reason = StepOf(Show("1"), "a")["reason"];
  EXPECT_EQ(reason.rfind("declared output 'model' was not written (expected ", 0), 0u) << reason;
}

TEST_F(ArtifactTest, AnOutputThatIsOrHoldsASymlinkFailsTheAttemptAndTouchesNothingOutside) {
  box_.Write("secret.txt", "keep me writable\n");
  box_.Write("p.yaml", R"(name: links
steps:
  file:
    run: ln -s "$PWD/secret.txt" "$SLUICE_OUTPUTS_DIR/out"
    outputs: {out: file}
  folder:
    run: mkdir "$SLUICE_OUTPUTS_DIR/model" && echo w > "$SLUICE_OUTPUTS_DIR/model/weights" && ln -s "$PWD/secret.txt" "$SLUICE_OUTPUTS_DIR/model/link"
    outputs: {model: model}
  fifo:
    run: mkfifo "$SLUICE_OUTPUTS_DIR/out"
    outputs: {out: file}
)");
  EXPECT_EQ(box_.Sluice({"run", "p.yaml"}).code, 1);
  json run = Show("1");
  EXPECT_EQ(StepOf(run, "file")["state"], "failed");
  std::string reason = StepOf(run, "file")["reason"];
  EXPECT_NE(reason.find("declared output 'out' is not a regular file or folder"), std::string::npos) << reason;
  reason = StepOf(run, "folder")["reason"];
  EXPECT_NE(reason.find("publish output 'model': model/link is a symbolic link: only regular files and folders are published"),
            std::string::npos) << reason;
  reason = StepOf(run, "fifo")["reason"];
  EXPECT_NE(reason.find("declared output 'out' is not a regular file or folder"), std::string::npos) << reason;
  struct stat st;
  ASSERT_EQ(::stat((box_.dir() / "secret.txt").c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 0200, 0u);  // its write bit is intact
  std::error_code ec;
  EXPECT_TRUE(!fs::exists(box_.home() / "artifacts", ec) || fs::is_empty(box_.home() / "artifacts", ec));
}

TEST_F(ArtifactTest, AnUnchangedRunIsServedFromTheCache) {
  box_.Write("p.yaml", kChain);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box_.Read("ran.txt"), "raw\nfeatures\ntrain\n");  // nothing ran the second time
  json run = Show("2");
  for (const char* id : {"raw", "features", "train"}) EXPECT_EQ(StepOf(run, id)["state"], "cached") << id;
  EXPECT_EQ(StepOf(run, "train")["outputs"]["model"], StepOf(Show("1"), "train")["outputs"]["model"]);
  EXPECT_NE(box_.Sluice({"show", "2"}).out.find("train                    cached"), std::string::npos);
  // A param the steps do not use changes nothing.
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "unused=5"}).code, 0);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 1);
  // --no-cache runs everything.
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "--no-cache"}).code, 0);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "train"), 2);
}

TEST_F(ArtifactTest, ACacheHitsAttemptRecordsWhatItConsumedAndWhatItReused) {
  box_.Write("p.yaml", kChain);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  json hit = StepOf(Show("2"), "train")["attempts"][0];
  ASSERT_EQ(hit["state"], "cached");
  std::set<std::string> roles;
  for (const char* direction : {"--upstream", "--downstream"}) {
    json g = json::parse(box_.Sluice({"lineage", "2/train", direction, "--format", "json"}).out);
    for (const json& e : g["edges"])
      if (e["attempt"] == hit["id"]) roles.insert(e["name"].get<std::string>() + ":" + e["role"].get<std::string>());
  }
  EXPECT_EQ(roles, (std::set<std::string>{"features.features:consumed", "model:reused", "scores:reused"}));
}

TEST_F(ArtifactTest, EachKindOfChangeIsACacheMiss) {
  box_.Write("p.yaml", kChain);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  // A param a step uses: raw runs again; its output changes, so all do.
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "n=4"}).code, 0);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 2);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "train"), 2);
  // The pipeline's env: features uses $SCALE; raw is unchanged and cached.
  std::string spec = kChain;
  box_.Write("p.yaml", spec.replace(spec.find("SCALE: \"2\""), 10, "SCALE: \"3\""));
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "n=4"}).code, 0);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 3);  // the env is part of every step's fingerprint
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "features"), 3);
  // The command: train's text changes; raw and features are cached.
  std::string changed = spec;
  changed.replace(changed.find("echo train >> ran.txt"), 21, "echo train >> ran.txt; true");
  box_.Write("p.yaml", changed);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "n=4"}).code, 0);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 3);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "features"), 3);
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "train"), 4);
}

TEST_F(ArtifactTest, ADamagedArtifactIsAMissWithAWarning) {
  box_.Write("p.yaml", kChain);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  std::string data = StepOf(Show("1"), "raw")["outputs"]["data"];
  fs::permissions(data, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(data) << "tampered\n";
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("step=raw event=warning reason=\"cache entry of run 1 is damaged (artifact " +
                       fs::path(data).filename().string() + " is missing or changed); running the step\""),
            std::string::npos)
      << o.out;
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 2);
  EXPECT_EQ(StepOf(Show("2"), "features")["state"], "cached");  // raw's content is the same again
}

TEST_F(ArtifactTest, AnArtifactRewrittenWithItsSizeAndModificationTimeSetBackIsStillFoundDamaged) {
  box_.Write("p.yaml", kChain);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  std::string data = StepOf(Show("1"), "raw")["outputs"]["data"];  // "1\n2\n3\n"
  struct stat before;
  ASSERT_EQ(::stat(data.c_str(), &before), 0);
  fs::permissions(data, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(data) << "7\n8\n9\n";
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, data.c_str(), times, 0), 0);
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("step=raw event=warning reason=\"cache entry of run 1 is damaged"), std::string::npos) << o.out;
  EXPECT_EQ(CountLines(box_.Read("ran.txt"), "raw"), 2);
}

TEST_F(ArtifactTest, LineageWalksUpAndDownAFiveStepPipeline) {
  box_.Write("p.yaml", R"(name: five
steps:
  s1: {run: 'echo 1 > "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: file}}
  s2: {needs: [s1], run: 'cat "${{ steps.s1.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/o"; echo 2 >> "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: file}}
  s3: {needs: [s2], run: 'cat "${{ steps.s2.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/o"; echo 3 >> "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: file}}
  s4: {needs: [s3], run: 'cat "${{ steps.s3.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/o"; echo 4 >> "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: file}}
  s5: {needs: [s4], run: 'cat "${{ steps.s4.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/o"; echo 5 >> "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: model}}
)");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  json run = Show("1");
  std::string first = StepOf(run, "s1")["outputs"]["o"], last = StepOf(run, "s5")["outputs"]["o"];
  json up = json::parse(box_.Sluice({"lineage", last, "--upstream", "--format", "json"}).out);
  EXPECT_EQ(up["artifacts"].size(), 5u);
  EXPECT_EQ(up["attempts"].size(), 5u);
  json down = json::parse(box_.Sluice({"lineage", fs::path(first).filename().string(), "--downstream", "--format", "json"}).out);
  EXPECT_EQ(down["artifacts"].size(), 5u);
  EXPECT_EQ(down["attempts"].size(), 4u);  // the consumers s2..s5
  json mid = json::parse(box_.Sluice({"lineage", "1/s3", "--format", "json"}).out);
  EXPECT_EQ(mid["artifacts"].size(), 2u);  // what s3 consumed, and upstream of it
  for (const json& a : up["attempts"]) {
    if (a["step"] == "s2") {
      EXPECT_EQ(a["identity"]["inputs"][0][0], "s1.o");
    }
  }
  std::string dot = box_.Sluice({"lineage", "1/s5", "--format", "dot"}).out;
  EXPECT_EQ(dot.rfind("digraph lineage {", 0), 0u);
  EXPECT_NE(dot.find("[shape=box, label=\"run 1 / s4 #1\\nsucceeded\"]"), std::string::npos) << dot;
  EXPECT_EQ(box_.Sluice({"lineage", "nonsense"}).code, 2);
}

TEST_F(ArtifactTest, RegisteredModelsGetVersionsAndAliases) {
  auto spec = [](int n) {
    return std::string(R"(name: reg
steps:
  train:
    run: echo )") + std::to_string(n) + R"( > "$SLUICE_OUTPUTS_DIR/model"
    outputs: {model: model}
    register: {name: fashion}
)";
  };
  box_.Write("p.yaml", spec(1));
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(Show("1"), "train")["outputs"]["registered"], "fashion@1");
  box_.Write("p.yaml", spec(2));
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(Show("2"), "train")["outputs"]["registered"], "fashion@2");
  box_.Write("p.yaml", spec(1));
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(Show("3"), "train")["outputs"]["registered"], "fashion@1");  // the same content
  Output o = box_.Sluice({"models", "promote", "fashion", "2", "--alias", "production"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "fashion@production is now version 2\n");
  json models = json::parse(box_.Sluice({"models", "--format", "json"}).out);
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[1]["version"], 2);
  EXPECT_EQ(models[1]["aliases"], json::array({"production"}));
  EXPECT_EQ(models[1]["run"], 2);
  EXPECT_EQ(models[1]["step"], "train");
  std::string path = box_.Sluice({"models", "path", "fashion@production"}).out;
  EXPECT_EQ(path, StepOf(Show("2"), "train")["outputs"]["model"].get<std::string>() + "\n");
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion@staging"}).err, "sluice: model 'fashion' has no alias 'staging'\n");
  EXPECT_EQ(box_.Sluice({"models", "promote", "fashion", "7", "--alias", "staging"}).err,
            "sluice: model 'fashion' has no version 7\n");
  // By hand, from an artifact of the store.
  o = box_.Sluice({"models", "register", path.substr(0, path.size() - 1), "--name", "other"});
  EXPECT_EQ(o.out, "other@1\n");
}

TEST_F(ArtifactTest, RegisterNeedsAModelOutput) {
  box_.Write("p.yaml", "name: x\nsteps:\n  a:\n    run: 'true'\n    outputs: {data: file}\n    register: {name: m}\n");
  Output o = box_.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "p.yaml:6:15: step 'a' register: say which output to register (the step declares 0 outputs of kind model)\n");
}

TEST_F(ArtifactTest, GcKeepsRegisteredModelsWhatMadeThemAndRecentRuns) {
  box_.Write("p.yaml", R"(name: gc
params:
  n: {type: int, default: 1}
steps:
  data: {run: 'echo data ${{ params.n }} > "$SLUICE_OUTPUTS_DIR/d"', outputs: {d: file}}
  train:
    needs: [data]
    run: 'cat "${{ steps.data.outputs.d }}" > "$SLUICE_OUTPUTS_DIR/m"; echo m >> "$SLUICE_OUTPUTS_DIR/m"'
    outputs: {m: model}
    register: {name: keep-me}
  scratch: {run: 'echo scratch ${{ params.n }} > "$SLUICE_OUTPUTS_DIR/s"', outputs: {s: file}}
)");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "n=1"}).code, 0);
  json run = Show("1");
  std::string data = StepOf(run, "data")["outputs"]["d"], model = StepOf(run, "train")["outputs"]["m"],
              scratch = StepOf(run, "scratch")["outputs"]["s"];
  // Everything is recent: nothing goes.
  EXPECT_EQ(box_.Sluice({"gc", "--older-than", "1h"}).out, "removed 0 artifacts, 0 B; their lineage stays on record\n");
  // Nothing is recent: only what no registered model depends on goes.
  Output o = box_.Sluice({"gc", "--older-than", "0s", "--dry-run"});
  EXPECT_EQ(o.out, "would remove " + scratch + " (10 B)\nwould remove 1 artifact, 10 B; their lineage stays on record\n");
  EXPECT_TRUE(fs::exists(scratch));
  o = box_.Sluice({"gc", "--older-than", "0s"});
  EXPECT_EQ(o.out, "removed 1 artifact, 10 B; their lineage stays on record\n");
  EXPECT_FALSE(fs::exists(scratch));
  EXPECT_TRUE(fs::exists(data));
  EXPECT_TRUE(fs::exists(model));
  // The lineage of the removed artifact is still on record.
  json up = json::parse(box_.Sluice({"lineage", fs::path(scratch).filename().string(), "--format", "json"}).out);
  EXPECT_EQ(up["attempts"].size(), 1u);
}

TEST_F(ArtifactTest, OpenLineageEventsValidateAgainstTheSpec) {
  // The OpenLineage 2-0-2 JSON Schema as the project's steering repository
  // provides it (shared/openlineage/OpenLineage.json), kept here as test data.
  const std::string schema = SLUICE_SOURCE_DIR "/tests/schema/OpenLineage-2-0-2.json";
  std::string events = (box_.dir() / "events.jsonl").string();
  ::setenv("SLUICE_OPENLINEAGE_FILE", events.c_str(), 1);
  box_.Write("p.yaml", R"(name: ol
steps:
  make: {run: 'echo x > "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: dataset}}
  use: {needs: [make], run: 'cat "${{ steps.make.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/m"', outputs: {m: model}}
  bad: {run: 'exit 1', continue_on_error: true}
)");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  ::unsetenv("SLUICE_OPENLINEAGE_FILE");
  std::vector<json> lines;
  std::ifstream in(events);
  for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
  ASSERT_EQ(lines.size(), 6u);  // START and an end for each attempt
  int complete = 0, fail = 0;
  for (const json& e : lines) {
    complete += e["eventType"] == "COMPLETE";
    fail += e["eventType"] == "FAIL";
    if (e["job"]["name"] == "ol.use" && e["eventType"] == "COMPLETE") {
      EXPECT_EQ(e["inputs"].size(), 1u);
      EXPECT_EQ(e["outputs"].size(), 1u);
      EXPECT_EQ(e["outputs"][0]["namespace"], "file");
    }
  }
  EXPECT_EQ(complete, 2);
  EXPECT_EQ(fail, 1);
  std::string cmd = "/usr/bin/python3 " SLUICE_SOURCE_DIR "/tests/schema/check_openlineage.py '" + schema + "' '" + events +
                    "' > '" + events + ".check' 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << box_.Read("events.jsonl.check");
}

namespace {

// An OpenLineage consumer on a free loopback port that refuses its first
// `refuse` requests with 503 and records the rest.
class LineageReceiver {
 public:
  explicit LineageReceiver(int refuse) : refuse_(refuse) {
    server_.Post("/api/v1/lineage", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      authorization_ = req.get_header_value("Authorization");
      if (refuse_ > 0) {
        --refuse_;
        res.status = 503;
        return;
      }
      bodies_.push_back(json::parse(req.body));
      res.status = 201;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~LineageReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/lineage"; }
  std::vector<json> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }

 private:
  httplib::Server server_;
  int port_ = 0, refuse_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<json> bodies_;
  std::string authorization_;
};

const char* kLineagePipeline = R"(name: ol
steps:
  make: {run: 'echo x > "$SLUICE_OUTPUTS_DIR/o"', outputs: {o: dataset}}
  use: {needs: [make], run: 'cat "${{ steps.make.outputs.o }}" > "$SLUICE_OUTPUTS_DIR/m"', outputs: {m: model}}
)";

}  // namespace

TEST_F(ArtifactTest, OpenLineageEventsArePostedToTheEndpointAndRetriedAfterAServerError) {
  LineageReceiver receiver(/*refuse=*/2);
  std::string events = (box_.dir() / "events.jsonl").string();
  ::setenv("SLUICE_OPENLINEAGE_FILE", events.c_str(), 1);
  ::setenv("SLUICE_OPENLINEAGE_URL", receiver.url().c_str(), 1);
  ::setenv("SLUICE_OUTBOUND_ALLOW", "127.0.0.1", 1);  // the test's receiver is on loopback
  ::setenv("SLUICE_OPENLINEAGE_API_KEY", "k3y", 1);
  box_.Write("p.yaml", kLineagePipeline);
  Output o = box_.Sluice({"run", "p.yaml"});
  ::unsetenv("SLUICE_OPENLINEAGE_FILE");
  ::unsetenv("SLUICE_OPENLINEAGE_URL");
  ::unsetenv("SLUICE_OPENLINEAGE_API_KEY");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.err.find("not delivered"), std::string::npos) << o.err;
  std::vector<json> in_file;
  std::ifstream in(events);
  for (std::string l; std::getline(in, l);) in_file.push_back(json::parse(l));
  ASSERT_EQ(in_file.size(), 4u);
  EXPECT_EQ(receiver.bodies(), in_file);  // every event once, in order, the refused one after its retries
  EXPECT_EQ(receiver.authorization(), "Bearer k3y");
}

TEST_F(ArtifactTest, AnUnreachableOpenLineageEndpointNeitherFailsNorHoldsUpTheRun) {
  ::setenv("SLUICE_OPENLINEAGE_URL", "http://127.0.0.1:9/api/v1/lineage", 1);  // the discard port: refused
  ::setenv("SLUICE_OUTBOUND_ALLOW", "127.0.0.1", 1);
  box_.Write("p.yaml", kLineagePipeline);
  Output o = box_.Sluice({"run", "p.yaml"});
  ::unsetenv("SLUICE_OPENLINEAGE_URL");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("4 OpenLineage events were not delivered to http://127.0.0.1:9/api/v1/lineage"), std::string::npos)
      << o.err;
  json run = ShowRun(box_, "1");
  // The steps did not wait for the endpoint: the run took well under one retry schedule (3 s).
  EXPECT_LT(run["finished_ms"].get<int64_t>() - run["started_ms"].get<int64_t>(), 2000);
}

TEST_F(ArtifactTest, AnOpenLineageUrlThatIsNotHttpIsAUsageError) {
  ::setenv("SLUICE_OPENLINEAGE_URL", "ftp://example/lineage", 1);
  box_.Write("p.yaml", kLineagePipeline);
  Output o = box_.Sluice({"run", "p.yaml"});
  ::unsetenv("SLUICE_OPENLINEAGE_URL");
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "sluice: SLUICE_OPENLINEAGE_URL: 'ftp://example/lineage' is not an http:// or https:// URL\n");
}

// Every entry of the artifact store holds exactly the content its name says.
void ExpectNoHalfArtifacts(const std::filesystem::path& root) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root / "artifacts", ec)) {
    int64_t size = 0;
    auto hash = sluice::store::HashPath(e.path().string(), &size);
    ASSERT_TRUE(hash.ok()) << e.path();
    EXPECT_EQ(*hash, e.path().filename().string()) << "a half-published artifact";
  }
}

TEST_F(ArtifactTest, AnOpenLineageUrlOnLoopbackLinkLocalOrMetadataIsRefusedUnlessAllowListed) {
  box_.Write("p.yaml", kLineagePipeline);
  ::unsetenv("SLUICE_OUTBOUND_ALLOW");
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"http://127.0.0.1:8080/api", "'127.0.0.1' resolves to 127.0.0.1, loopback"},
      {"http://localhost/api", "'localhost' resolves to "},
      {"http://169.254.169.254/latest/meta-data", "'169.254.169.254' resolves to 169.254.169.254, a cloud metadata address"},
      {"http://169.254.1.1/x", "'169.254.1.1' resolves to 169.254.1.1, link-local"},
      {"http://[::1]:9/x", "'::1' resolves to ::1, loopback"},
      {"http://[::ffff:127.0.0.1]/x", "resolves to ::ffff:127.0.0.1, loopback"},
      {"http://0.0.0.0/x", "'0.0.0.0' resolves to 0.0.0.0, unspecified"},
      {"http://user@127.0.0.2/x", "'127.0.0.2' resolves to 127.0.0.2, loopback"}};
  for (const auto& [url, why] : refused) {
    ::setenv("SLUICE_OPENLINEAGE_URL", url.c_str(), 1);
    Output o = box_.Sluice({"run", "p.yaml"});
    EXPECT_EQ(o.code, 2) << url;
    EXPECT_EQ(o.err.rfind("sluice: SLUICE_OPENLINEAGE_URL: ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find(why), std::string::npos) << url << ": " << o.err;
    EXPECT_NE(o.err.find("unless SLUICE_OUTBOUND_ALLOW names the host"), std::string::npos) << o.err;
  }
  // Allow-listed, the run goes on (the endpoint refuses connections: a warning, not a failure).
  ::setenv("SLUICE_OPENLINEAGE_URL", "http://127.0.0.1:9/api/v1/lineage", 1);
  ::setenv("SLUICE_OUTBOUND_ALLOW", "example.invalid, 127.0.0.1", 1);
  Output o = box_.Sluice({"run", "p.yaml"});
  ::unsetenv("SLUICE_OPENLINEAGE_URL");
  ::unsetenv("SLUICE_OUTBOUND_ALLOW");
  EXPECT_EQ(o.code, 0) << o.err;
}

TEST_F(ArtifactTest, AKillDuringPublishLeavesNoHalfArtifactAndResumePublishesIt) {
  // 256 MB take a few hundred ms to hash: kill -9 lands while sluice hashes
  // or moves the output, at a different moment each round.
  box_.Write("p.yaml", R"(name: big
params:
  k: {type: int, default: 0}
steps:
  big:
    run: 'head -c 268435456 /dev/zero > "$SLUICE_OUTPUTS_DIR/o" && echo "$K" >> "$SLUICE_OUTPUTS_DIR/o" && touch written.$K'
    env: {K: "${{ params.k }}"}
    outputs: {o: file}
    retry: {limit: 2}
)");
  int run = 0;
  for (int delay_ms : {0, 60, 150, 300}) {
    SCOPED_TRACE(delay_ms);
    std::string k = std::to_string(delay_ms);
    pid_t sluice = box_.Start({"run", "p.yaml", "-p", "k=" + k}, "run.log");
    ++run;
    ASSERT_TRUE(WaitFor([&] { return box_.Exists("written." + k); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(sluice, SIGKILL);
    Sandbox::Reap(sluice);
    ExpectNoHalfArtifacts(box_.home());
    if (ShowRun(box_, std::to_string(run))["interrupted"] == true) {  // else it ended before the kill
      Output o = box_.Sluice({"resume", std::to_string(run)});
      EXPECT_EQ(o.code, 0) << o.out << o.err;
      ExpectNoHalfArtifacts(box_.home());
    }
    json big = StepOf(ShowRun(box_, std::to_string(run)), "big");
    EXPECT_EQ(big["state"], "succeeded");
    std::string published = big["outputs"]["o"].get<std::string>();
    EXPECT_EQ(std::filesystem::file_size(published), 268435456u + k.size() + 1);
  }
}
