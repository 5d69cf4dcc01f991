// Manual approvals (sluice/approval): the values an approver gives, checked
// like params (spec/params.cc); the loader's checks of the step's `with:`;
// the approvals table (store/approvals.h); and the decision's rules
// (runs/approval.h) on a real store.
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../common/temp_store.h"
#include "exec/builtin.h"
#include "runs/approval.h"
#include "spec/pipeline.h"

namespace sluice {
namespace {

using nlohmann::json;
using testing::OpenStore;
using testing::TempDb;
using Why = runs::DecisionOutcome::Why;

std::vector<spec::ParamSpec> Specs() {
  auto reason = spec::ParamSpecFromJson("reason", json{{"type", "string"}});
  auto replicas = spec::ParamSpecFromJson("replicas", json{{"type", "int"}, {"default", 2}, {"min", 1}, {"max", 10}});
  EXPECT_TRUE(reason.ok() && replicas.ok());
  return {*reason, *replicas};
}

std::string LoadError(const std::string& yaml) {
  auto p = spec::ParsePipeline("p.yaml", yaml);
  EXPECT_FALSE(p.ok()) << "expected an error for:\n" << yaml;
  return p.ok() ? "" : p.status().message();
}

TEST(ApprovalValuesTest, GivenValuesAreTypedAndALeftOutOneTakesItsDefault) {
  auto v = spec::ResolveValues(Specs(), {{"reason", "release 1.2"}}, "with -v");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(spec::ParamsJson(*v), (json{{"reason", "release 1.2"}, {"replicas", 2}}));
}

TEST(ApprovalValuesTest, AValueOfTheWrongTypeIsRefusedNamingIt) {
  auto v = spec::ResolveValues(Specs(), {{"reason", "x"}, {"replicas", "two"}}, "with -v");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "value 'replicas': 'two' is not an int (given with -v)");
}

TEST(ApprovalValuesTest, ValuesAtTheirLimitsPassAndOnePastIsRefused) {
  for (const char* ok : {"1", "10"}) EXPECT_TRUE(spec::ResolveValues(Specs(), {{"reason", "x"}, {"replicas", ok}}, "").ok());
  auto low = spec::ResolveValues(Specs(), {{"reason", "x"}, {"replicas", "0"}}, "in values");
  EXPECT_EQ(low.status().message(), "value 'replicas': 0 is below the minimum 1 (given in values)");
  auto high = spec::ResolveValues(Specs(), {{"reason", "x"}, {"replicas", "11"}}, "in values");
  EXPECT_EQ(high.status().message(), "value 'replicas': 11 is above the maximum 10 (given in values)");
}

TEST(ApprovalValuesTest, ARequiredValueLeftOutAndAnUnknownOneAreEachAnError) {
  auto v = spec::ResolveValues(Specs(), {{"replica", "3"}}, "with -v");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(),
            "unknown value 'replica' given with -v (did you mean 'replicas'?)\n"
            "value 'reason' has no default; give it with -v reason=VALUE");
}

TEST(ApprovalValuesTest, ADeclaredValueSurvivesItsJsonForm) {
  auto ps = spec::ParamSpecFromJson("mode", json{{"type", "string"}, {"default", "fast"}, {"enum", {"fast", "full"}},
                                                  {"description", "how"}});
  ASSERT_TRUE(ps.ok()) << ps.status().message();
  json j = spec::ParamSpecJson(*ps);
  auto back = spec::ParamSpecFromJson(j["name"], j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(spec::ParamSpecJson(*back), j);
  EXPECT_EQ(j, (json{{"name", "mode"}, {"type", "string"}, {"description", "how"}, {"default", "fast"},
                     {"required", false}, {"enum", {"fast", "full"}}}));
}

TEST(ApprovalValuesTest, AJsonDeclarationIsCheckedAsTheLoaderChecksAParam) {
  EXPECT_EQ(spec::ParamSpecFromJson("n", json{{"type", "integer"}}).status().message(),
            "param 'n': unknown type 'integer' (use int, float, string or bool)");
  EXPECT_EQ(spec::ParamSpecFromJson("n", json{{"type", "int"}, {"default", 0}, {"min", 1}}).status().message(),
            "param 'n': default 0 is below the minimum 1");
  EXPECT_EQ(spec::ParamSpecFromJson("s", json{{"type", "string"}, {"min", 1}}).status().message(),
            "param 's': min applies to int and float params only");
}

TEST(ApprovalLoaderTest, ValuesAreCheckedLikeParamsAtTheirPlace) {
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with:\n      values:\n"
                      "        replicas: {type: int, default: 0, min: 1}\n"),
            "p.yaml:7:40: param 'replicas': default 0 is below the minimum 1");
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with:\n      values:\n"
                      "        n: {type: integer}\n"),
            "p.yaml:7:19: param 'n': unknown type 'integer' (use int, float, string or bool)\n"
            "p.yaml:7:9: param 'n' needs a type (int, float, string or bool)");
}

TEST(ApprovalLoaderTest, AValueNamedLikeAnOutputTheApprovalSetsIsRefused) {
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with:\n      values:\n"
                      "        approver: {type: string, default: me}\n"),
            "p.yaml:7:9: step 'gate': value name 'approver' is taken by the output the approval sets itself");
}

TEST(ApprovalLoaderTest, ApprovingOnTimeoutNeedsADefaultForEveryValue) {
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with:\n      timeout: 1h\n"
                      "      on_timeout: approve\n      values:\n        reason: {type: string}\n"),
            "p.yaml:9:9: step 'gate': value 'reason' needs a default, since on_timeout approves without an approver");
}

TEST(ApprovalLoaderTest, AZeroTimeoutIsRefusedAndAnyLongerOnePasses) {
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with: {timeout: 0s}\n"),
            "p.yaml:5:21: step 'gate': the approval's timeout must be longer than 0 (leave it out to wait without one)");
  auto p = spec::ParsePipeline("p.yaml", "name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with: {timeout: 1ms}\n");
  EXPECT_TRUE(p.ok()) << p.status().message();
}

TEST(ApprovalLoaderTest, AnApprovalWithForeachIsRefused) {
  EXPECT_EQ(LoadError("name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    foreach: [a, b]\n"),
            "p.yaml:3:3: step 'gate': sluice/approval asks once per step; it takes no foreach");
}

TEST(ApprovalLoaderTest, TheDeclaredValuesAreKeptOnTheStep) {
  auto p = spec::ParsePipeline("p.yaml", "name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with:\n"
                                         "      values: {replicas: {type: int, default: 2}, reason: {type: string}}\n");
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->steps[0].approval_values.size(), 2u);
  EXPECT_EQ(p->steps[0].approval_values[0].name, "replicas");
  EXPECT_EQ(p->steps[0].approval_values[1].name, "reason");
}

class ApprovalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempDb(::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_ = OpenStore(path_);
    ASSERT_TRUE(store_);
    run_ = *store_->runs().CreateRun("p", "name: p", "/p.yaml", "/", "{}", 1, 1);
    ASSERT_TRUE(store_->runs().SetRunState(run_, engine::RunState::kRunning, 2).ok());
    ASSERT_TRUE(store_->runs().Flush().ok());
  }

  store::ApprovalRow Request(int64_t deadline_ms = 0, const std::string& on_timeout = "reject") {
    store::ApprovalRow r;
    r.run_id = run_;
    r.step_id = "gate";
    r.message = "Deploy to prod?";
    json specs = json::array();
    for (const spec::ParamSpec& ps : Specs()) specs.push_back(spec::ParamSpecJson(ps));
    r.value_specs = specs.dump();
    r.requested_ms = 1000;
    r.deadline_ms = deadline_ms;
    r.on_timeout = on_timeout;
    return r;
  }

  runs::ApprovalDecision Approve(std::vector<std::pair<std::string, std::string>> values) {
    return {.approve = true, .values = std::move(values), .comment = "ok", .by = "user:ann", .via = "with -v"};
  }

  std::string path_;
  std::unique_ptr<store::Store> store_;
  int64_t run_ = 0;
};

TEST_F(ApprovalStoreTest, OpeningAgainKeepsTheFirstRequestAndItsDeadline) {
  ASSERT_TRUE(store_->approvals().Open(Request(5000)).ok());
  store::ApprovalRow later = Request(9000);
  later.requested_ms = 4000;
  auto row = store_->approvals().Open(later);
  ASSERT_TRUE(row.ok()) << row.status().message();
  EXPECT_EQ(row->requested_ms, 1000);
  EXPECT_EQ(row->deadline_ms, 5000);
  EXPECT_EQ(row->decision, "");
}

TEST_F(ApprovalStoreTest, AnApprovalWithValuesIsRecordedTypedWithWhoAndWhen) {
  ASSERT_TRUE(store_->approvals().Open(Request()).ok());
  auto o = runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}, {"replicas", "3"}}), 7000);
  ASSERT_TRUE(o.ok()) << o.status().message();
  ASSERT_EQ(o->why, Why::kRecorded) << o->message;
  EXPECT_EQ(o->row.decision, "approve");
  EXPECT_EQ(o->row.decided_by, "user:ann");
  EXPECT_EQ(o->row.decided_ms, 7000);
  EXPECT_EQ(o->row.comment, "ok");
  EXPECT_EQ(json::parse(o->row.decided_values), (json{{"reason", "go"}, {"replicas", 3}}));
}

TEST_F(ApprovalStoreTest, ABadValueIsRefusedAndTheStepKeepsWaiting) {
  ASSERT_TRUE(store_->approvals().Open(Request()).ok());
  auto o = runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}, {"replicas", "0"}}), 7000);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->why, Why::kBadValues);
  EXPECT_EQ(o->message, "value 'replicas': 0 is below the minimum 1 (given with -v)");
  EXPECT_EQ((*store_->approvals().Get(run_, "gate"))->decision, "");
  EXPECT_EQ(runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}}), 7100)->why, Why::kRecorded);
}

TEST_F(ApprovalStoreTest, ADecisionOnAStepThatIsNotWaitingIsRefusedSayingWhy) {
  EXPECT_EQ(runs::Decide(*store_, run_, "gate", Approve({}), 7000)->message,
            "run " + std::to_string(run_) + " step 'gate' is not waiting for approval");
  EXPECT_EQ(runs::Decide(*store_, run_ + 1, "gate", Approve({}), 7000)->why, Why::kNoRun);
  ASSERT_TRUE(store_->approvals().Open(Request()).ok());
  runs::ApprovalDecision reject{.approve = false, .comment = "not today", .by = "token:ci"};
  ASSERT_EQ(runs::Decide(*store_, run_, "gate", reject, 7000)->why, Why::kRecorded);
  auto again = runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}}), 7100);
  EXPECT_EQ(again->why, Why::kNotWaiting);
  EXPECT_EQ(again->message, "run " + std::to_string(run_) + " step 'gate' is not waiting for approval: rejected by token:ci");
}

TEST_F(ApprovalStoreTest, AStepOfAFinishedRunIsNotWaiting) {
  ASSERT_TRUE(store_->approvals().Open(Request()).ok());
  ASSERT_TRUE(store_->runs().SetRunState(run_, engine::RunState::kCancelled, 3).ok());
  ASSERT_TRUE(store_->runs().Flush().ok());
  auto o = runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}}), 7000);
  EXPECT_EQ(o->why, Why::kNotWaiting);
  EXPECT_EQ(o->message, "run " + std::to_string(run_) + " step 'gate' is not waiting for approval: the run cancelled");
}

TEST_F(ApprovalStoreTest, AtTheDeadlineTheTimeoutDecidesAndOneMillisecondBeforeAPersonStill) {
  ASSERT_TRUE(store_->approvals().Open(Request(5000, "approve")).ok());
  auto before = runs::Decide(*store_, run_, "gate", Approve({{"replicas", "3"}}), 4999);
  EXPECT_EQ(before->why, Why::kBadValues) << "one millisecond before the deadline the values are still checked";
  auto at = runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}}), 5000);
  ASSERT_EQ(at->why, Why::kNotWaiting);
  auto row = **store_->approvals().Get(run_, "gate");
  EXPECT_EQ(row.decided_by, "timeout");
  EXPECT_EQ(row.decision, "reject") << "'reason' has no default, so the timeout cannot approve";
}

TEST_F(ApprovalStoreTest, OfConcurrentDecisionsExactlyOneIsRecorded) {
  for (int deciders : {2, 4, 8}) {
    SCOPED_TRACE(std::to_string(deciders) + " deciders");
    store::ApprovalRow r = Request();
    r.step_id = "gate" + std::to_string(deciders);
    ASSERT_TRUE(store_->approvals().Open(r).ok());
    std::vector<std::thread> threads;
    std::vector<int> recorded(deciders, 0);
    for (int i = 0; i < deciders; ++i)
      threads.emplace_back([&, i] {
        auto own = store::Store::Open(path_);  // a store per thread, as per process
        if (!own.ok()) return;
        runs::ApprovalDecision d{.approve = i % 2 == 0, .values = {{"reason", "r"}}, .by = "user:" + std::to_string(i)};
        if (!d.approve) d.values.clear();
        auto o = runs::Decide(**own, run_, r.step_id, d, 6000 + i);
        recorded[i] = o.ok() && o->why == Why::kRecorded;
      });
    for (auto& t : threads) t.join();
    int total = 0;
    for (int x : recorded) total += x;
    EXPECT_EQ(total, 1);
  }
}

TEST_F(ApprovalStoreTest, TheDeskFindsADecisionMadeWhileNoAttemptWaited) {
  ASSERT_TRUE(store_->approvals().Open(Request()).ok());
  ASSERT_EQ(runs::Decide(*store_, run_, "gate", Approve({{"reason", "go"}, {"replicas", "4"}}), 7000)->why, Why::kRecorded);
  // The desk opens home + "/sluice.db": point it at this test's file through a link.
  std::string link_home = path_ + "-home";
  std::filesystem::remove_all(link_home);
  std::filesystem::create_directories(link_home);
  std::filesystem::create_symlink(path_, link_home + "/sluice.db");
  exec::BuiltinAttemptScope scope(exec::BuiltinAttempt{.home = link_home, .run_id = run_, .step_id = "gate", .attempt = 2});
  runs::StoreApprovalDesk desk;
  auto state = desk.Open(json{{"message", "Deploy to prod?"}, {"timeout", "1h"}});
  ASSERT_TRUE(state.ok()) << state.status().message();
  EXPECT_TRUE(state->decided);
  EXPECT_TRUE(state->approved);
  EXPECT_EQ(state->by, "user:ann");
  EXPECT_EQ(state->deadline_ms, 0) << "the first request's (none), not the resumed attempt's";
  EXPECT_EQ(state->values, (std::vector<std::pair<std::string, std::string>>{{"reason", "go"}, {"replicas", "4"}}));
  std::filesystem::remove_all(link_home);
}

}  // namespace
}  // namespace sluice
