// serving::ResolveService (serving/service_state.h): a parsed service.yaml
// to the store's desired state, with models resolved and pinned against a
// real registry in a temporary SQLite file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "serving/service_state.h"
#include "store/open.h"
#include "util/hash.h"
#include "../common/temp_store.h"

using namespace sluice;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;
using sluice::testing::OpenStore;
using sluice::testing::TempDb;

// Registers versions 1.. of model `name`, one per artifact hash (a run
// produces them first, as the engine's register: does).
void RegisterModels(store::Store& s, const std::string& name, const std::vector<std::string>& hashes) {
  store::RunsStore& runs = s.runs();
  int64_t run = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  engine::StepRecord step{.step_id = "train", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a{.run_id = run, .step_id = "train", .number = 1, .log_path = "/l"};
  ASSERT_TRUE(runs.BeginAttempt(&a, step).ok());
  std::vector<engine::LineageEdge> edges;
  for (const std::string& h : hashes)
    edges.push_back({engine::LineageEdge::Role::kProduced, "model-" + h, {h, "model", 1, "/a/" + h}});
  ASSERT_TRUE(runs.SaveLineage(a, edges).ok());
  ASSERT_TRUE(runs.Flush().ok());
  for (const std::string& h : hashes) ASSERT_TRUE(s.registry().RegisterModel(name, h, run, "train", 0, 1).ok());
  ASSERT_TRUE(s.db().Flush().ok());
}

serving::ServiceSpec Parse(const std::string& text, const std::string& file = "service.yaml") {
  auto spec = serving::ParseServiceSpec(file, text);
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return spec.ok() ? *spec : serving::ServiceSpec{};
}

class ServiceStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    store_ = OpenStore(TempDb("service-state-" + test));
    ASSERT_TRUE(store_);
    RegisterModels(*store_, "fashion", {"aa", "bb"});
  }
  Result<store::ServiceState> Resolve(const std::string& text, const store::ServiceState* live = nullptr) {
    return serving::ResolveService(Parse(text), store_->registry(), live);
  }
  std::string Error(const std::string& text, const store::ServiceState* live = nullptr) {
    auto r = Resolve(text, live);
    EXPECT_FALSE(r.ok());
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), Code::kInvalidSpec);
    return r.status().message();
  }
  std::unique_ptr<store::Store> store_;
};

const char* kTwo =
    "service: fashion\nversions:\n  blue: {model: fashion@1, replicas: 2}\n  green: {model: fashion@2}\n"
    "traffic: {blue: 90, green: 10}\n";

}  // namespace

TEST_F(ServiceStateTest, ANameAtVersionIsPinnedToItsArtifactUriAndNumber) {
  auto s = Resolve(kTwo);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->versions.size(), 2u);
  const store::ServiceVersionState& blue = s->versions[0];
  EXPECT_EQ(blue.name, "blue");
  EXPECT_EQ(blue.kind, "model");
  EXPECT_EQ(blue.model_ref, "fashion@1");
  EXPECT_EQ(blue.model_name, "fashion");
  EXPECT_EQ(blue.model_version, 1);
  EXPECT_EQ(blue.artifact, "aa");
  EXPECT_EQ(blue.uri, "/a/aa");
  EXPECT_EQ(blue.replicas, 2);
  EXPECT_EQ(blue.weight_bp, 9000);
  EXPECT_EQ(s->versions[1].artifact, "bb");
  EXPECT_EQ(s->versions[1].weight_bp, 1000);
  EXPECT_FALSE(s->keep_weights);
}

TEST_F(ServiceStateTest, AnAliasAndLatestResolveToTheNumbersTheyNameNow) {
  ASSERT_TRUE(store_->registry().SetAlias("fashion", 1, "production", "user:test", 5).ok());
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@production}\n"
                   "  green: {model: fashion@latest}\ntraffic: {blue: 100, green: 0}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->versions[0].model_version, 1);
  EXPECT_EQ(s->versions[0].model_ref, "fashion@production");
  EXPECT_EQ(s->versions[1].model_version, 2);
}

TEST_F(ServiceStateTest, AMovedAliasChangesTheHashAndTheSameDocumentDoesNot) {
  const char* text = "service: fashion\nversions:\n  blue: {model: fashion@production}\n";
  ASSERT_TRUE(store_->registry().SetAlias("fashion", 1, "production", "user:test", 5).ok());
  auto first = Resolve(text);
  auto again = Resolve(text);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->spec_hash, again->spec_hash);
  ASSERT_TRUE(store_->registry().SetAlias("fashion", 2, "production", "user:test", 6).ok());
  auto moved = Resolve(text);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->versions[0].model_version, 2);
  EXPECT_EQ(moved->spec, first->spec);  // the same document
  EXPECT_NE(moved->spec_hash, first->spec_hash);
  EXPECT_EQ(first->versions[0].model_version, 1);  // what was resolved stays as it was
}

TEST_F(ServiceStateTest, AnUnknownVersionIsRefusedAtTheModelScalar) {
  EXPECT_EQ(Error("service: fashion\nversions:\n  blue: {model: fashion@9}\n"),
            "service.yaml:3:17: versions.blue.model: model 'fashion' has no version '9'");
}

TEST_F(ServiceStateTest, EveryUnresolvableModelIsReportedEachAtItsScalar) {
  EXPECT_EQ(Error("service: fashion\nversions:\n  blue:\n    model: shoes@1\n  green:\n    model: fashion@staging\n"
                  "traffic: {blue: 50, green: 50}\n"),
            "service.yaml:4:12: versions.blue.model: no model named 'shoes'\n"
            "service.yaml:6:12: versions.green.model: model 'fashion' has no alias 'staging'");
}

TEST_F(ServiceStateTest, AModelFileIsPinnedByItsAbsolutePath) {
  fs::path dir = fs::temp_directory_path() / ("sluice-service-state-" + std::to_string(::getpid()));
  fs::create_directories(dir / "models");
  std::ofstream(dir / "models" / "m.pt") << "model";
  auto spec = serving::ParseServiceSpec((dir / "service.yaml").string(),
                                        "service: s\nversions:\n  blue: {model: models/m.pt}\n");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  auto s = serving::ResolveService(*spec, store_->registry(), nullptr);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->versions[0].uri, (dir / "models" / "m.pt").string());
  EXPECT_EQ(s->versions[0].model_ref, "models/m.pt");
  EXPECT_EQ(s->versions[0].model_name, "");
  EXPECT_EQ(s->versions[0].model_version, 0);
  EXPECT_EQ(s->versions[0].artifact, "");
  EXPECT_EQ(s->versions[0].weight_bp, 10000);
  fs::remove_all(dir);
}

TEST_F(ServiceStateTest, AMissingModelFileIsRefusedAtTheModelScalar) {
  std::string message = Error("service: s\nversions:\n  blue: {model: nowhere.pt}\n");
  std::string want = "service.yaml:3:17: versions.blue.model: no file 'nowhere.pt' (looked for " +
                     (fs::current_path() / "nowhere.pt").string() +
                     "); give a model file or NAME@VERSION, NAME@ALIAS, NAME@latest";
  EXPECT_EQ(message, want);
}

TEST_F(ServiceStateTest, ANewServiceWithTwoVersionsAndNoTrafficIsRefused) {
  EXPECT_EQ(Error("service: fashion\nversions:\n  blue: {model: fashion@1}\n  green: {model: fashion@2}\n"),
            "service.yaml:1:1: traffic: a new service with several versions needs traffic weights (versions: blue, "
            "green), e.g. traffic: {blue: 100, green: 0}");
}

TEST_F(ServiceStateTest, AnExistingServiceWithoutTrafficKeepsItsWeightsAndANewVersionGetsZero) {
  auto live = Resolve(kTwo);
  ASSERT_TRUE(live.ok());
  for (store::ServiceVersionState& v : live->versions) v.state = "active";  // as ServicesStore::Get reads them
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\n  green: {model: fashion@2}\n"
                   "  red: {model: fashion@2}\n",
                   &*live);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->keep_weights);
  EXPECT_EQ(s->versions[0].weight_bp, 9000);
  EXPECT_EQ(s->versions[1].weight_bp, 1000);
  EXPECT_EQ(s->versions[2].weight_bp, 0);
}

TEST_F(ServiceStateTest, KeptWeightsThatNoLongerAddUpTo100AreRefused) {
  auto live = Resolve(kTwo);
  ASSERT_TRUE(live.ok());
  for (store::ServiceVersionState& v : live->versions) v.state = "active";
  EXPECT_EQ(Error("service: fashion\nversions:\n  blue: {model: fashion@1}\n  red: {model: fashion@2}\n", &*live),
            "service.yaml:1:1: traffic: omitted, so the weights in use are kept, but they add up to 90 over blue, red, "
            "not 100; give traffic");
}

TEST_F(ServiceStateTest, OneVersionWithoutTrafficGetsAllOfItEvenOnAnExistingService) {
  auto live = Resolve(kTwo);
  ASSERT_TRUE(live.ok());
  auto s = Resolve("service: fashion\nversions:\n  green: {model: fashion@2}\n", &*live);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(s->keep_weights);
  EXPECT_EQ(s->versions[0].weight_bp, 10000);
}

TEST_F(ServiceStateTest, OptionsHoldTheModelServerOptionsGivenAndTheReadyTimeout) {
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1, threads: 2, max_batch: 8, max_wait_ms: 3, "
                   "max_queue: 16, ready_timeout: 30s}\n  green: {model: fashion@2}\ntraffic: {blue: 100, green: 0}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->versions[0].options,
            R"({"max_batch":8,"max_queue":16,"max_wait_ms":3,"ready_timeout_ms":30000,"threads":2})");
  EXPECT_EQ(s->versions[1].options, R"({"ready_timeout_ms":120000})");
}

TEST_F(ServiceStateTest, ACommandVersionKeepsItsArgvEnvAndAbsoluteWorkdirAsJson) {
  auto s = Resolve("service: mine\nversions:\n  v: {command: [python3, srv.py], env: {MODE: fast}, port_env: P}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  const store::ServiceVersionState& v = s->versions[0];
  EXPECT_EQ(v.kind, "command");
  EXPECT_EQ(v.command, R"(["python3","srv.py"])");
  EXPECT_EQ(v.env, R"({"MODE":"fast"})");
  EXPECT_EQ(v.workdir, fs::current_path().string());
  EXPECT_EQ(v.port_env, "P");
  EXPECT_EQ(v.model_ref, "");
}

TEST_F(ServiceStateTest, StickyAndMirrorAreCopiedAndTheSpecIsCanonicalJson) {
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\n  green: {model: fashion@2}\n"
                   "traffic: {blue: 100, green: 0}\nsticky: {field: parameters.user_id}\n"
                   "mirror: {version: green, percent: 12.5}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->sticky_header, "");
  EXPECT_EQ(s->sticky_field, "parameters.user_id");
  EXPECT_EQ(s->sticky_salt, "fashion");
  EXPECT_EQ(s->mirror_version, "green");
  EXPECT_EQ(s->mirror_bp, 1250);
  EXPECT_EQ(s->spec,
            R"({"max_inflight":64,"mirror":{"percent":12.5,"version":"green"},"service":"fashion",)"
            R"("sticky":{"field":"parameters.user_id","salt":"fashion"},"timeout_ms":30000,)"
            R"("traffic":{"blue":100,"green":0},"versions":{"blue":{"model":"fashion@1","ready_timeout_ms":120000,)"
            R"("replicas":1},"green":{"model":"fashion@2","ready_timeout_ms":120000,"replicas":1}}})");
}

namespace {

const char* kAuthed = "service: fashion\nversions:\n  blue: {model: fashion@1}\nauth: {token_env: SLUICE_TEST_TOKEN}\n";

}  // namespace

TEST_F(ServiceStateTest, TheInferTokenIsStoredAsItsSha256AndTheSpecKeepsOnlyTheVariablesName) {
  ::setenv("SLUICE_TEST_TOKEN", "s3cret-token", 1);
  auto s = Resolve(kAuthed);
  ::unsetenv("SLUICE_TEST_TOKEN");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->infer_token_hash, Sha256Hex("s3cret-token"));
  EXPECT_EQ(json::parse(s->spec)["auth"], json({{"token_env", "SLUICE_TEST_TOKEN"}}));
  EXPECT_EQ(s->spec.find("s3cret"), std::string::npos);
  auto open = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\n");
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->infer_token_hash, "");
}

TEST_F(ServiceStateTest, AnUnsetOrEmptyTokenVariableIsRefusedAtItsName) {
  ::unsetenv("SLUICE_TEST_TOKEN");
  EXPECT_EQ(Error(kAuthed), "service.yaml:4:19: auth.token_env: SLUICE_TEST_TOKEN is not set in this environment");
  ::setenv("SLUICE_TEST_TOKEN", "", 1);
  EXPECT_EQ(Error(kAuthed), "service.yaml:4:19: auth.token_env: SLUICE_TEST_TOKEN is empty");
  ::unsetenv("SLUICE_TEST_TOKEN");
}

TEST_F(ServiceStateTest, ANewTokenIsAChangeThatReplacesNoReplica) {
  ::setenv("SLUICE_TEST_TOKEN", "one", 1);
  auto first = Resolve(kAuthed);
  ::setenv("SLUICE_TEST_TOKEN", "two", 1);
  auto second = Resolve(kAuthed);
  ::unsetenv("SLUICE_TEST_TOKEN");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->spec, second->spec);
  EXPECT_NE(first->spec_hash, second->spec_hash);
  auto a = store_->services().Apply(*first, "user:a", "", 1);
  auto b = store_->services().Apply(*second, "user:a", "", 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(b->changed);
  auto live = store_->services().Get("fashion");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->infer_token_hash, Sha256Hex("two"));
  EXPECT_EQ(live->versions[0].revision, 1);  // the same replicas serve on
}

TEST_F(ServiceStateTest, TheCacheIsInTheSpecAsEntriesAndTtlMsAndReadBackFromIt) {
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\ncache: {entries: 200, ttl: 2s}\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(json::parse(s->spec)["cache"], json({{"entries", 200}, {"ttl_ms", 2000}}));
  auto cache = serving::RouteSettingsOfSpecJson(s->spec).cache;
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->entries, 200);
  EXPECT_EQ(cache->ttl, Millis(2000));
  EXPECT_FALSE(serving::RouteSettingsOfSpecJson(Resolve(kTwo)->spec).cache);
}

TEST_F(ServiceStateTest, TheTimeoutAndMaxInflightOfTheDocumentReachTheRoutesThroughTheSpecJson) {
  // The gateway reads them back from the store's canonical JSON: they once
  // never arrived (it parsed that JSON as a service.yaml, which failed).
  auto s = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\ntimeout: 250ms\nmax_inflight: 4096\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  serving::RouteSettings r = serving::RouteSettingsOfSpecJson(s->spec);
  EXPECT_EQ(r.timeout, Millis(250));
  EXPECT_EQ(r.max_inflight, 4096);
  serving::RouteSettings defaults = serving::RouteSettingsOfSpecJson(Resolve(kTwo)->spec);
  EXPECT_EQ(defaults.timeout, Millis(30'000));
  EXPECT_EQ(defaults.max_inflight, 64);
  EXPECT_EQ(serving::RouteSettingsOfSpecJson("not json").max_inflight, 64);
  auto sampled = Resolve("service: fashion\nversions:\n  blue: {model: fashion@1}\nstats: {sample: 0.25}\n");
  ASSERT_TRUE(sampled.ok()) << sampled.status().message();
  EXPECT_EQ(serving::RouteSettingsOfSpecJson(sampled->spec).stats_sample, 0.25);
  EXPECT_EQ(defaults.stats_sample, 1.0);
  EXPECT_EQ(json::parse(Resolve(kTwo)->spec).count("stats"), 0u);  // the default keeps old documents' hashes
}
