// `sluice services` (apply, list, show, history, delete, promote, abort) end
// to end: the real binary on a store in a scratch folder, with models
// registered by real runs; a rollout put in the store by seed_rollout, as a
// deploy step writes one.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "store/open.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {


const char* kBlueGreen = R"(service: fashion
versions:
  blue: {model: fashion@1, replicas: 2}
  green: {model: fashion@2}
traffic: {blue: 90, green: 10}
)";

std::string LoginActor() {
  const passwd* pw = ::getpwuid(::getuid());
  return "user:" + std::string(pw ? pw->pw_name : "");
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Two registered versions, fashion@1 and fashion@2, each from a run.
class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    box_.Write("p.yaml", R"(name: reg
params:
  n: {type: int, default: 1}
steps:
  train:
    run: echo ${{ params.n }} > "$SLUICE_OUTPUTS_DIR/model"
    outputs: {model: model}
    register: {name: fashion}
)");
    for (const char* n : {"n=1", "n=2"}) ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", n}).code, 0);
  }
  json List() {
    Output o = box_.Sluice({"services", "--json"});
    EXPECT_EQ(o.code, 0) << o.err;
    return json::parse(o.out, nullptr, false);
  }
  Output Apply(const std::string& text) {
    box_.Write("service.yaml", text);
    return box_.Sluice({"services", "apply", "service.yaml", "--no-gateway"});
  }
  // A canary of green over blue at its second step (seed_rollout); its id.
  std::string SeedRollout() {
    std::string command = std::string(SEED_ROLLOUT) + " '" + (box_.home() / "sluice.db").string() +
                          "' fashion blue green 1";
    FILE* p = ::popen(command.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (!p) return "";
    char buf[64] = {};
    std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
    EXPECT_EQ(::pclose(p), 0) << command;
    return out.substr(0, out.find('\n'));
  }
  Sandbox box_;
};

}  // namespace

TEST_F(ServicesTest, ApplyThenListShowsTheServiceItsVersionsWeightsAndReplicas) {
  Output o = Apply(kBlueGreen);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, std::string("service fashion: applied (change 1, generation 1)\n"));
  json j = List();
  ASSERT_EQ(j.size(), 1u) << j.dump();
  EXPECT_EQ(j[0]["name"], "fashion");
  EXPECT_EQ(j[0]["generation"], 1);
  ASSERT_EQ(j[0]["versions"].size(), 2u);
  json blue = j[0]["versions"][0];
  EXPECT_EQ(blue["name"], "blue");
  EXPECT_EQ(blue["model"]["name"], "fashion");
  EXPECT_EQ(blue["model"]["version"], 1);
  EXPECT_EQ(blue["weight"], "90");
  EXPECT_EQ(blue["replicas"], 2);
  EXPECT_EQ(blue["revision"], 1);
  EXPECT_EQ(blue["state"], "active");
  EXPECT_EQ(j[0]["versions"][1]["weight"], "10");
  Output text = box_.Sluice({"services"});
  ASSERT_EQ(text.code, 0) << text.err;
  std::vector<std::string> lines = Lines(text.out);
  ASSERT_EQ(lines.size(), 4u) << text.out;
  EXPECT_EQ(lines[0], "fashion: generation 1");
  EXPECT_EQ(lines[2].substr(0, 60), "  blue             fashion@1                        1       ");
  EXPECT_NE(lines[2].find("90%"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("10%"), std::string::npos) << lines[3];
}

TEST_F(ServicesTest, ApplyingTheSameFileTwiceIsUnchangedWithNoSecondHistoryRow) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output o = Apply(kBlueGreen);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, std::string("service fashion: unchanged\n"));
  Output history = box_.Sluice({"services", "history", "fashion"});
  EXPECT_EQ(Lines(history.out).size(), 2u) << history.out;  // the heading and one apply
  EXPECT_EQ(List()[0]["generation"], 1);
}

TEST_F(ServicesTest, ASpecErrorExitsTwoWithItsFileLineAndColumnAndStoresNothing) {
  Output o = Apply("service: fashion\nversions:\n  blue: {model: fashion@1}\nmirorr: {version: blue}\n");
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "service.yaml:4:1: unknown key 'mirorr' (did you mean 'mirror'?)\n");
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(List(), json::array());
}

TEST_F(ServicesTest, AnUnknownModelVersionIsRefusedAtTheModelScalar) {
  Output o = Apply("service: fashion\nversions:\n  blue: {model: fashion@9}\n");
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "service.yaml:3:17: versions.blue.model: model 'fashion' has no version '9'\n");
  EXPECT_EQ(List(), json::array());
}

TEST_F(ServicesTest, AnAliasIsPinnedAtApplyToTheNumberItNamesAndStaysThereWhenTheAliasMoves) {
  ASSERT_EQ(box_.Sluice({"models", "promote", "fashion", "1", "--alias", "production"}).code, 0);
  const char* spec = "service: fashion\nversions:\n  live: {model: fashion@production}\n";
  ASSERT_EQ(Apply(spec).code, 0);
  EXPECT_EQ(List()[0]["versions"][0]["model"]["version"], 1);
  ASSERT_EQ(box_.Sluice({"models", "promote", "fashion", "2", "--alias", "production"}).code, 0);
  json live = List()[0]["versions"][0];
  EXPECT_EQ(live["model"]["version"], 1);
  EXPECT_EQ(live["model"]["ref"], "fashion@production");
  // Applying the same file again follows the alias: what runs changes.
  Output o = Apply(spec);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, std::string("service fashion: applied (change 2, generation 2)\n"));
  live = List()[0]["versions"][0];
  EXPECT_EQ(live["model"]["version"], 2);
  EXPECT_EQ(live["revision"], 2);
}

TEST_F(ServicesTest, HistoryListsApplyAndDeleteNewestFirstWithTheActorAndReason) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output d = box_.Sluice({"services", "delete", "fashion", "--reason", "retired"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, "service fashion: deleted (its history stays: sluice services history fashion)\n");
  Output o = box_.Sluice({"services", "history", "fashion"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> lines = Lines(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  EXPECT_EQ(lines[0].substr(0, 40), "CHANGE   TIME                     KIND  ");
  std::string actor = LoginActor();
  EXPECT_EQ(lines[1].substr(0, 9), "2        ");
  EXPECT_NE(lines[1].find(" delete   " + actor), std::string::npos) << lines[1];
  EXPECT_EQ(lines[1].substr(lines[1].size() - 8), " retired");
  EXPECT_EQ(lines[2].substr(0, 9), "1        ");
  EXPECT_NE(lines[2].find(" apply    " + actor), std::string::npos) << lines[2];
  EXPECT_EQ(lines[2].substr(lines[2].size() - 19), " apply service.yaml");
  EXPECT_EQ(lines[2][9 + 4], '-');  // an ISO time: 2026-...
  EXPECT_EQ(Lines(box_.Sluice({"services", "history", "fashion", "--limit", "1"}).out).size(), 2u);
}

TEST_F(ServicesTest, ADeletedServiceIsNoLongerListedAndShowSaysThereIsNoSuchService) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output typo = box_.Sluice({"services", "show", "fasion"});
  EXPECT_EQ(typo.code, 1);
  EXPECT_EQ(typo.err, "sluice: no service named 'fasion' (services: fashion) (did you mean 'fashion'?)\n");
  ASSERT_EQ(box_.Sluice({"services", "delete", "fashion"}).code, 0);
  EXPECT_EQ(List(), json::array());
  Output o = box_.Sluice({"services", "show", "fashion"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "sluice: no service named 'fashion' (there are none; sluice services apply FILE makes one)\n");
  EXPECT_EQ(box_.Sluice({"services", "delete", "fashion"}).code, 1);
}

TEST_F(ServicesTest, ShowPrintsTheVersionsAndTheAppliedSpec) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output o = box_.Sluice({"services", "show", "fashion", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  EXPECT_EQ(j["spec"]["traffic"], (json{{"blue", 90}, {"green", 10}}));
  EXPECT_EQ(j["versions"][1]["model"]["artifact"].get<std::string>().size(), 64u);
  Output text = box_.Sluice({"services", "show", "fashion"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("fashion: generation 1\n", 0), 0u) << text.out;
  EXPECT_NE(text.out.find("\"model\": \"fashion@1\""), std::string::npos) << text.out;
}

TEST_F(ServicesTest, ANewTwoVersionServiceWithoutTrafficIsRefused) {
  Output o = Apply("service: fashion\nversions:\n  blue: {model: fashion@1}\n  green: {model: fashion@2}\n");
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "service.yaml:1:1: traffic: a new service with several versions needs traffic weights (versions: "
                   "blue, green), e.g. traffic: {blue: 100, green: 0}\n");
  EXPECT_EQ(List(), json::array());
}

TEST_F(ServicesTest, ShowPrintsTheActiveRolloutWithItsStepWeightReasonAndEvents) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  ASSERT_EQ(SeedRollout(), "1");
  Output o = box_.Sluice({"services", "show", "fashion"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("\nrollout 1: canary of green over blue (run 7, step deploy), progressing\n"
                       "  step 2, candidate weight 50%, started "),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("  reason: step 2: green at 50%\n  events:\n"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("requested:"), std::string::npos) << o.out;
  std::vector<std::string> kinds;
  for (const std::string& line : Lines(o.out))
    if (line.rfind("    20", 0) == 0) kinds.push_back(line.substr(30, line.find(' ', 30) - 30));
  EXPECT_EQ(kinds, (std::vector<std::string>{"start", "shift", "analysis", "shift"})) << o.out;
  EXPECT_NE(o.out.find("passed: error rate 0.0049 <= 0.01, p99 40 ms <= 50 ms over 412 requests  {"), std::string::npos);
  json j = json::parse(box_.Sluice({"services", "show", "fashion", "--json"}).out);
  EXPECT_EQ(j["rollout"]["state"], "progressing");
  EXPECT_EQ(j["rollout"]["candidate_bp"], 5000);
  ASSERT_EQ(j["rollout"]["events"].size(), 4u);
  EXPECT_EQ(j["rollout"]["events"][2]["data"]["requests"], 412);
}

TEST_F(ServicesTest, ShowWithoutARolloutPrintsNoneAndItsJsonSaysNull) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output o = box_.Sluice({"services", "show", "fashion"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out.find("rollout"), std::string::npos) << o.out;
  EXPECT_TRUE(json::parse(box_.Sluice({"services", "show", "fashion", "--json"}).out)["rollout"].is_null());
}

TEST_F(ServicesTest, ShowPrintsTheLastTenEventsOfARolloutWithElevenAndAllOfOneWithTen) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  ASSERT_EQ(SeedRollout(), "1");
  auto st = sluice::store::Store::Open((box_.home() / "sluice.db").string());
  ASSERT_TRUE(st.ok());
  for (int i = 0; i < 6; ++i)  // 4 + 6 = 10
    ASSERT_TRUE((*st)->rollouts().Record(1, "analysis", "check " + std::to_string(i), "", 4'000'000'000'000 + i).ok());
  Output ten = box_.Sluice({"services", "show", "fashion"});
  EXPECT_NE(ten.out.find("  events:\n"), std::string::npos) << ten.out;
  EXPECT_NE(ten.out.find(" start "), std::string::npos) << ten.out;
  ASSERT_TRUE((*st)->rollouts().Record(1, "analysis", "check 6", "", 4'000'000'000'006).ok());
  Output eleven = box_.Sluice({"services", "show", "fashion"});
  EXPECT_NE(eleven.out.find("  events (last 10 of 11):\n"), std::string::npos) << eleven.out;
  EXPECT_EQ(eleven.out.find(" start "), std::string::npos) << "the oldest is left out:\n" << eleven.out;
  EXPECT_NE(eleven.out.find("check 6"), std::string::npos);
  EXPECT_EQ(json::parse(box_.Sluice({"services", "show", "fashion", "--json"}).out)["rollout"]["events"].size(), 10u);
}

TEST_F(ServicesTest, AbortAndPromoteAskTheActiveRolloutAsTheLoginUserAndShowSaysSo) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  ASSERT_EQ(SeedRollout(), "1");
  Output abort = box_.Sluice({"services", "abort", "fashion"});
  ASSERT_EQ(abort.code, 0) << abort.err;
  EXPECT_EQ(abort.out, "service fashion: abort requested of rollout 1 (its deploy step takes it on its next look)\n");
  EXPECT_NE(box_.Sluice({"services", "show", "fashion"}).out.find("  requested: abort by " + LoginActor() + " (pending)\n"),
            std::string::npos);
  ASSERT_EQ(box_.Sluice({"services", "promote", "fashion"}).code, 0);
  json j = json::parse(box_.Sluice({"services", "show", "fashion", "--json"}).out);
  EXPECT_EQ(j["rollout"]["request"], "promote");
  EXPECT_EQ(j["rollout"]["request_actor"], LoginActor());
}

TEST_F(ServicesTest, AbortWithoutAnActiveRolloutOrServiceExitsOneSayingWhy) {
  ASSERT_EQ(Apply(kBlueGreen).code, 0);
  Output none = box_.Sluice({"services", "abort", "fashion"});
  EXPECT_EQ(none.code, 1);
  EXPECT_EQ(none.err,
            "sluice: service 'fashion' has no rollout in progress (sluice services show fashion shows its last)\n");
  Output typo = box_.Sluice({"services", "promote", "fasion"});
  EXPECT_EQ(typo.code, 1);
  EXPECT_EQ(typo.err, "sluice: no service named 'fasion' (services: fashion) (did you mean 'fashion'?)\n");
}
