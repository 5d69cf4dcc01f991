// The JSON view of runs, step records, attempts and metrics that `sluice
// show`/`sluice runs` and the HTTP API share (store/run_json.h).
#include "store/run_json.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sluice::store {
namespace {

using json = nlohmann::json;

std::set<std::string> Keys(const json& j) {
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  return keys;
}

RunRow FinishedRun() {
  RunRow r;
  r.id = 7;
  r.pipeline = "train";
  r.params_json = R"({"epochs":3})";
  r.state = engine::RunState::kSucceeded;
  r.trigger = "api";
  r.created_ms = 1700000000000;
  r.started_ms = 1700000001000;
  r.finished_ms = 1700000004500;
  return r;
}

TEST(RunJsonTest, ARunHasTheDocumentedFieldsWithTimesInBothForms) {
  json j = RunJson(FinishedRun(), /*interrupted=*/false, /*now_ms=*/1800000000000);
  EXPECT_EQ(Keys(j), (std::set<std::string>{"id", "pipeline", "state", "trigger", "params", "created", "started",
                                            "finished", "created_ms", "started_ms", "finished_ms", "duration_ms",
                                            "interrupted", "cancel_requested", "scheduled", "interval_start",
                                            "concurrency_group", "holds_group"}));
  EXPECT_EQ(j["id"], 7);
  EXPECT_TRUE(j["scheduled"].is_null());  // started by hand, not by a schedule
  EXPECT_TRUE(j["interval_start"].is_null());
  EXPECT_EQ(j["state"], "succeeded");
  EXPECT_EQ(j["params"], (json{{"epochs", 3}}));
  EXPECT_EQ(j["started"], "2023-11-14T22:13:21.000Z");
  EXPECT_EQ(j["started_ms"], 1700000001000);
  EXPECT_EQ(j["duration_ms"], 3500);
  EXPECT_EQ(j["interrupted"], false);
}

TEST(RunJsonTest, ARunInNoConcurrencyGroupHasANullGroupAndOneInAGroupSaysWhetherItHoldsIt) {
  RunRow r = FinishedRun();
  json none = RunJson(r, false, 1800000000000);
  EXPECT_TRUE(none["concurrency_group"].is_null());
  EXPECT_EQ(none["holds_group"], false);
  r.group = "deploy-prod";
  r.group_admitted = true;
  json held = RunJson(r, false, 1800000000000);
  EXPECT_EQ(held["concurrency_group"], "deploy-prod");
  EXPECT_EQ(held["holds_group"], true);
}

TEST(RunJsonTest, ARunNotStartedHasNullTimesAndNoDuration) {
  RunRow r = FinishedRun();
  r.state = engine::RunState::kQueued;
  r.started_ms = r.finished_ms = 0;
  json j = RunJson(r, false, 1800000000000);
  EXPECT_TRUE(j["started"].is_null());
  EXPECT_TRUE(j["finished"].is_null());
  EXPECT_EQ(j["started_ms"], 0);
  EXPECT_TRUE(j["duration_ms"].is_null());
}

TEST(RunJsonTest, AnInterruptedRunKeepsItsStoredStateAndSaysSo) {
  RunRow r = FinishedRun();
  r.state = engine::RunState::kRunning;
  r.finished_ms = 0;
  json j = RunJson(r, /*interrupted=*/true, r.started_ms + 2000);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["duration_ms"], 2000);  // up to now
}

TEST(RunJsonTest, TheTextAndTheObjectAreTheSameView) {
  RunRow r = FinishedRun();
  r.pipeline = "quote\"and\\slash";
  EXPECT_EQ(json::parse(RunJsonText(r, false, 0)), RunJson(r, false, 0));
}

TEST(RunJsonTest, AnAttemptHasTheDocumentedFields) {
  engine::AttemptRecord a;
  a.id = 12;
  a.step_id = "fit";
  a.item = 2;
  a.number = 1;
  a.state = engine::StepState::kFailed;
  a.reason = "exit code 3";
  a.exit_code = 3;
  a.pid = 4242;
  a.job_id = "slurm:9";
  a.started_ms = 1700000001000;
  a.finished_ms = 0;
  a.log_path = "/tmp/x.log";
  json j = AttemptJson(a);
  EXPECT_EQ(Keys(j), (std::set<std::string>{"id", "step", "item", "number", "state", "reason", "exit_code", "pid",
                                            "job_id", "started", "finished", "started_ms", "finished_ms", "log"}));
  EXPECT_EQ(j["step"], "fit");
  EXPECT_EQ(j["item"], 2);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["started"], "2023-11-14T22:13:21.000Z");
  EXPECT_TRUE(j["finished"].is_null());
  EXPECT_EQ(j["finished_ms"], 0);
}

TEST(RunJsonTest, AMetricNamesItsStepAndTheIndexItWasMeasuredAt) {
  MetricRow m;
  m.step_id = "fit";
  m.item = -1;
  m.attempt = 2;
  m.name = "loss";
  m.value = 0.25;
  m.index = 5;
  json j = MetricJson(m);
  EXPECT_EQ(Keys(j), (std::set<std::string>{"step", "item", "attempt", "name", "value", "index"}));
  EXPECT_EQ(j["step"], "fit");
  EXPECT_EQ(j["index"], 5);
}

TEST(RunJsonTest, AStepRecordHasItsFieldsAndAnItemItsIndexAndValue) {
  engine::StepRecord s;
  s.step_id = "sweep";
  s.state = engine::StepState::kSucceeded;
  s.outputs["n"] = spec::Value::Int(3);
  json step = StepRecordJson(s, 1500);
  EXPECT_EQ(Keys(step), (std::set<std::string>{"id", "state", "reason", "outputs", "duration_ms"}));
  EXPECT_EQ(step["outputs"]["n"], 3);
  EXPECT_EQ(step["duration_ms"], 1500);
  s.item = 1;
  s.item_value = spec::Value::Str("0.1");
  json item = StepRecordJson(s, std::nullopt);
  EXPECT_EQ(Keys(item), (std::set<std::string>{"id", "item", "item_value", "state", "reason", "outputs", "duration_ms"}));
  EXPECT_EQ(item["item_value"], "0.1");
  EXPECT_TRUE(item["duration_ms"].is_null());
}

TEST(RunJsonTest, AUnitTakesItsLastAttemptsTimeAndAForeachStepSpansItsItems) {
  auto attempt = [](std::string step, int item, int64_t start, int64_t end) {
    engine::AttemptRecord a;
    a.step_id = std::move(step);
    a.item = item;
    a.started_ms = start;
    a.finished_ms = end;
    return a;
  };
  std::vector<engine::AttemptRecord> attempts = {
      attempt("a", -1, 100, 200), attempt("a", -1, 1000, 1300),  // retried: the last one counts
      attempt("s", 0, 100, 400),  attempt("s", 1, 150, 0),       // item 1 still runs
  };
  UnitDurations d(attempts, /*now_ms=*/900);
  EXPECT_EQ(d.Of("a", -1), 300);
  EXPECT_EQ(d.Of("s", 0), 300);
  EXPECT_EQ(d.Of("s", 1), 750);
  EXPECT_EQ(d.Of("s", -1), 800);  // 100 to now
  EXPECT_EQ(d.Of("b", -1), std::nullopt);
}

TEST(RunJsonTest, RunOutputsAreAListInOrderWithAnAbsentOnesValueNullAndItsReason) {
  json j = RunOutputsJson({{"zeta", "<b>1</b>", ""}, {"alpha", std::nullopt, "it failed"}});
  EXPECT_EQ(j, json::parse(R"([{"name":"zeta","value":"<b>1</b>","reason":""},{"name":"alpha","value":null,"reason":"it failed"}])"));
  EXPECT_EQ(RunOutputsJson({}), json::array());
}

}  // namespace
}  // namespace sluice::store
