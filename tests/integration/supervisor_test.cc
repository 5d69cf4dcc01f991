// Supervisor (serving/supervisor.h): real replica processes of
// fake_oip_server, real readiness polls over loopback, a real store. The
// timing options are shortened; the supervisor decides by the `now` each
// test passes, so what a test asserts about delays is read from that, not
// measured.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "exec/process.h"
#include "harness.h"
#include "serving/supervisor.h"
#include "store/open.h"

using namespace sluice;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

store::ServiceVersionState FakeVersion(const std::string& name, int replicas, int revision,
                                       const std::vector<std::string>& args, const std::string& options = "{}") {
  store::ServiceVersionState v;
  v.name = name;
  v.kind = "command";
  nlohmann::json argv = nlohmann::json::array({FAKE_OIP_SERVER});
  for (const auto& a : args) argv.push_back(a);
  v.command = argv.dump();
  v.port_env = "PORT";
  v.options = options;
  v.replicas = replicas;
  v.revision = revision;
  v.state = "active";
  return v;
}

store::ServiceState Service(std::vector<store::ServiceVersionState> versions) {
  store::ServiceState s;
  s.name = "fashion";
  s.versions = std::move(versions);
  return s;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open((box_.dir() / "sluice.db").string());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    options_.sluice_home = box_.home().string();
    options_.starting_poll_ms = 20;
    options_.health_interval_ms = 50;
    options_.unready_after = 2;
    options_.probe_timeout_ms = 200;
    options_.backoff_initial_ms = 100;
    options_.backoff_max_ms = 400;
    options_.drain_timeout_ms = 5000;
    options_.grace_ms = 5000;
  }
  void TearDown() override {
    if (!sup_) return;
    sup_->StopAll(NowMs());
    Until([&] { return sup_->stopped(); }, 10000);
    sup_.reset();
  }

  serving::Supervisor& Sup() {
    if (!sup_) sup_ = std::make_unique<serving::Supervisor>(options_, store_->services());
    return *sup_;
  }

  // Ticks every 10 ms until `done` holds (true) or `limit_ms` passes (false).
  bool Until(const std::function<bool()>& done, int64_t limit_ms) {
    int64_t end = NowMs() + limit_ms;
    while (NowMs() < end) {
      Sup().Tick(NowMs());
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::shared_ptr<serving::Replica> Slot(const std::string& version, size_t i) {
    auto list = Sup().Replicas("fashion", version);
    return i < list.size() ? list[i] : nullptr;
  }
  bool InRotation(const std::string& version, size_t i) {
    auto r = Slot(version, i);
    return r && r->in_rotation.load();
  }

  // The snapshot of (version, slot) that is not leaving, else any.
  serving::Supervisor::Snapshot Snap(const std::string& version, int slot) {
    serving::Supervisor::Snapshot found;
    for (auto& s : Sup().Snapshots())
      if (s.row.version == version && s.row.slot == slot && (found.row.service.empty() || !s.leaving)) found = s;
    return found;
  }

  std::vector<store::ReplicaRow> Rows() { return *store_->services().Replicas("fashion"); }
  std::vector<store::ServiceChange> History() { return *store_->services().History("fashion", 0, 100); }

  nlohmann::json Infer(int port) {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Post("/v2/models/fashion/infer", R"({"inputs":[]})", "application/json");
    if (!res || res->status != 200) return nullptr;
    return nlohmann::json::parse(res->body);
  }

  sluice::testing::Sandbox box_;
  std::unique_ptr<store::Store> store_;
  serving::SupervisorOptions options_;
  std::unique_ptr<serving::Supervisor> sup_;
};

TEST_F(SupervisorTest, AReplicaBecomesReadyAndInRotationWithItsPortSet) {
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {"--label", "b0"})})}, NowMs());
  ASSERT_EQ(Sup().Replicas("fashion", "blue").size(), 1u);
  EXPECT_FALSE(InRotation("blue", 0)) << "not before its first ready poll";
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  int port = Slot("blue", 0)->port.load();
  ASSERT_GT(port, 0);
  auto answer = Infer(port);
  ASSERT_FALSE(answer.is_null());
  EXPECT_EQ(answer["fake"]["label"], "b0");
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, "ready");
  EXPECT_EQ(rows[0].port, port);
  EXPECT_EQ(rows[0].pid, answer["fake"]["pid"].get<int>());
  EXPECT_EQ(rows[0].start_time, exec::ProcessStartTime(rows[0].pid));
  EXPECT_EQ(rows[0].revision, 1);
  EXPECT_EQ(rows[0].restarts, 0);
  EXPECT_EQ(rows[0].log_path, options_.sluice_home + "/services/fashion/blue.0.log");
  EXPECT_TRUE(std::filesystem::exists(rows[0].log_path));
  EXPECT_GT(rows[0].ready_ms, 0);
}

TEST_F(SupervisorTest, AReplicaHasTheMarkersInItsEnvironment) {
  Sup().Reconcile({Service({FakeVersion("blue", 2, 3, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 1); }, 5000));
  auto answer = Infer(Slot("blue", 1)->port.load());
  ASSERT_FALSE(answer.is_null());
  nlohmann::json want = {{"SLUICE_HOME", options_.sluice_home},
                         {"SLUICE_SERVICE", "fashion"},
                         {"SLUICE_SERVICE_VERSION", "blue"},
                         {"SLUICE_REPLICA", "1"},
                         {"SLUICE_REVISION", "3"}};
  EXPECT_EQ(answer["fake"]["markers"], want);
  int pid = answer["fake"]["pid"].get<int>();
  EXPECT_TRUE(exec::StartedWithEnvironment(pid, serving::ReplicaMarkers(options_.sluice_home, "fashion", "blue", 1, 3)));
}

TEST_F(SupervisorTest, AnExitingReplicaLeavesRotationAtOnceIsRecordedAndRestartsAfterTheBackoff) {
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {"--exit-after-requests", "1", "--exit-code", "3"})})},
                  NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  int first_pid = Rows()[0].pid;
  ASSERT_FALSE(Infer(Slot("blue", 0)->port.load()).is_null());
  int64_t died_at = 0;
  ASSERT_TRUE(Until(
      [&] {
        if (Snap("blue", 0).row.state != "backoff") return false;
        died_at = NowMs();
        return true;
      },
      5000));
  EXPECT_FALSE(InRotation("blue", 0)) << "out of rotation in the Tick that saw the exit";
  EXPECT_EQ(Slot("blue", 0)->port.load(), 0);
  auto rows = Rows();
  EXPECT_EQ(rows[0].state, "backoff");
  EXPECT_EQ(rows[0].last_exit, "exited with status 3");
  EXPECT_EQ(rows[0].pid, 0);
  auto history = History();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].kind, "replica");
  EXPECT_EQ(history[0].actor, "gateway");
  EXPECT_EQ(history[0].reason, "replica 0 of blue exited with status 3; restarting in 100 ms");
  int64_t restart_at = Snap("blue", 0).restart_at_ms;
  EXPECT_EQ(restart_at - rows[0].updated_ms, 100) << "the backoff runs from the Tick that saw the exit";
  EXPECT_LE(rows[0].updated_ms, died_at);
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  rows = Rows();
  EXPECT_EQ(rows[0].state, "ready");
  EXPECT_EQ(rows[0].restarts, 1);
  EXPECT_NE(rows[0].pid, first_pid);
  EXPECT_GE(rows[0].started_ms, restart_at) << "not started before its backoff was over";
  EXPECT_EQ(rows[0].last_exit, "exited with status 3");
}

TEST_F(SupervisorTest, BackoffDoublesOnRepeatedDeathsAndIsCappedAtItsMaximum) {
  store::ServiceVersionState v = FakeVersion("blue", 1, 1, {});
  v.command = R"(["sh", "-c", "exit 4"])";
  Sup().Reconcile({Service({v})}, NowMs());
  ASSERT_TRUE(Until([&] { return History().size() >= 5; }, 10000));
  auto history = History();  // newest first
  std::vector<std::string> got;
  for (auto it = history.rbegin(); it != history.rend(); ++it) got.push_back(it->reason);
  got.resize(5);
  EXPECT_EQ(got, (std::vector<std::string>{"replica 0 of blue exited with status 4; restarting in 100 ms",
                                           "replica 0 of blue exited with status 4; restarting in 200 ms",
                                           "replica 0 of blue exited with status 4; restarting in 400 ms",
                                           "replica 0 of blue exited with status 4; restarting in 400 ms",
                                           "replica 0 of blue exited with status 4; restarting in 400 ms"}));
}

TEST_F(SupervisorTest, AReplicaNotReadyWithinItsReadyTimeoutIsKilledAndCountsAsACrash) {
  Sup().Reconcile(
      {Service({FakeVersion("blue", 1, 1, {"--not-ready-for-ms", "600000"}, R"({"ready_timeout_ms": 300})")})},
      NowMs());
  ASSERT_TRUE(Until([&] { return Snap("blue", 0).row.pid > 0; }, 5000));
  int pid = Snap("blue", 0).row.pid;
  int64_t start_time = Snap("blue", 0).row.start_time;
  int64_t started_ms = Snap("blue", 0).row.started_ms;
  int64_t seen_at = 0;
  ASSERT_TRUE(Until(
      [&] {
        seen_at = NowMs();
        return !History().empty();
      },
      5000));
  EXPECT_GE(seen_at - started_ms, 300) << "not killed before its ready timeout";
  EXPECT_FALSE(InRotation("blue", 0));
  EXPECT_EQ(History()[0].reason,
            "replica 0 of blue was not ready within 300 ms; killed by signal 9 (SIGKILL); restarting in 100 ms");
  EXPECT_EQ(Rows()[0].last_exit, "killed by signal 9 (SIGKILL)");
  EXPECT_FALSE(exec::SameProcessAlive(pid, start_time));
}

TEST_F(SupervisorTest, LoweringReplicasDrainsTheRemovedSlotAndStopsItOnlyAtZeroOutstanding) {
  Sup().Reconcile({Service({FakeVersion("blue", 2, 1, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0) && InRotation("blue", 1); }, 5000));
  auto leaving = Slot("blue", 1);
  auto row = Snap("blue", 1).row;
  leaving->outstanding.store(1);
  int64_t generation = Sup().replica_set_generation();
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {})})}, NowMs());
  EXPECT_GT(Sup().replica_set_generation(), generation);
  ASSERT_EQ(Sup().Replicas("fashion", "blue").size(), 1u);
  EXPECT_FALSE(leaving->in_rotation.load()) << "out of the table and of rotation at once";
  EXPECT_TRUE(InRotation("blue", 0));
  // Outstanding 1: it stays, draining, however many Ticks go by.
  Until([] { return false; }, 300);
  EXPECT_TRUE(exec::SameProcessAlive(row.pid, row.start_time));
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].state, "draining");
  leaving->outstanding.store(0);
  ASSERT_TRUE(Until([&] { return !Sup().HasReplicas("fashion", "blue") || Sup().Snapshots().size() == 1; }, 5000));
  EXPECT_FALSE(exec::SameProcessAlive(row.pid, row.start_time));
  rows = Rows();
  ASSERT_EQ(rows.size(), 1u) << "the removed slot's row is gone";
  EXPECT_EQ(rows[0].slot, 0);
  EXPECT_TRUE(History().empty()) << "a replica stopped on purpose is no death";
}

TEST_F(SupervisorTest, ADrainingReplicaIsStoppedAfterTheDrainTimeoutWithRequestsStillOutstanding) {
  options_.drain_timeout_ms = 300;
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  auto replica = Slot("blue", 0);
  auto row = Snap("blue", 0).row;
  replica->outstanding.store(5);
  int64_t drain_from = NowMs();
  Sup().Reconcile({}, drain_from);  // the service is gone
  EXPECT_TRUE(Sup().Replicas("fashion", "blue").empty());
  int64_t gone_at = 0;
  ASSERT_TRUE(Until(
      [&] {
        gone_at = NowMs();
        return !Sup().HasReplicas("fashion", "blue");
      },
      5000));
  EXPECT_GE(gone_at - drain_from, 300);
  EXPECT_FALSE(exec::SameProcessAlive(row.pid, row.start_time));
  EXPECT_TRUE(Rows().empty());
}

TEST_F(SupervisorTest, AReplicaIgnoringSigtermIsKilledAfterTheGrace) {
  options_.grace_ms = 400;
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {"--ignore-sigterm"})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  auto row = Snap("blue", 0).row;
  store::ServiceVersionState removing = FakeVersion("blue", 1, 1, {"--ignore-sigterm"});
  removing.state = "removing";
  int64_t term_at = NowMs();
  Sup().Reconcile({Service({removing})}, term_at);  // outstanding 0: SIGTERM at once
  Until([] { return false; }, 200);
  EXPECT_TRUE(exec::SameProcessAlive(row.pid, row.start_time)) << "SIGTERM is ignored; the grace is not over";
  int64_t gone_at = 0;
  ASSERT_TRUE(Until(
      [&] {
        gone_at = NowMs();
        return !Sup().HasReplicas("fashion", "blue");
      },
      5000));
  EXPECT_GE(gone_at - term_at, 400);
  EXPECT_FALSE(exec::SameProcessAlive(row.pid, row.start_time));
}

TEST_F(SupervisorTest, ARevisionChangeStartsTheNewSetBesideTheOldAndTheOldLeavesAsTheNewBecomesReady) {
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {"--label", "old"})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  auto old_replica = Slot("blue", 0);
  auto old_row = Snap("blue", 0).row;
  Sup().Reconcile({Service({FakeVersion("blue", 1, 2, {"--label", "new", "--not-ready-for-ms", "400"})})}, NowMs());
  auto both = Sup().Replicas("fashion", "blue");
  ASSERT_EQ(both.size(), 2u) << "the new set starts beside the old";
  EXPECT_EQ(both[0], old_replica);
  // While the new one is not ready, the old one serves.
  Until([] { return false; }, 150);
  EXPECT_TRUE(old_replica->in_rotation.load());
  EXPECT_FALSE(both[1]->in_rotation.load());
  ASSERT_TRUE(Until([&] { return both[1]->in_rotation.load(); }, 5000));
  EXPECT_FALSE(old_replica->in_rotation.load()) << "the old one left in the Tick the new one became ready";
  auto now = Sup().Replicas("fashion", "blue");
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0], both[1]);
  EXPECT_EQ(Infer(now[0]->port.load())["fake"]["label"], "new");
  ASSERT_TRUE(Until([&] { return Sup().Snapshots().size() == 1; }, 5000));
  EXPECT_FALSE(exec::SameProcessAlive(old_row.pid, old_row.start_time));
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].revision, 2);
  EXPECT_EQ(rows[0].state, "ready");
}

TEST_F(SupervisorTest, StopAllStopsEveryReplicaAndLeavesStoppedRows) {
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {}), FakeVersion("green", 1, 1, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0) && InRotation("green", 0); }, 5000));
  auto blue = Snap("blue", 0).row, green = Snap("green", 0).row;
  Sup().StopAll(NowMs());
  EXPECT_FALSE(Sup().stopped());
  ASSERT_TRUE(Until([&] { return Sup().stopped(); }, 5000));
  EXPECT_FALSE(exec::SameProcessAlive(blue.pid, blue.start_time));
  EXPECT_FALSE(exec::SameProcessAlive(green.pid, green.start_time));
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].state, "stopped");
  EXPECT_EQ(rows[1].state, "stopped");
  EXPECT_EQ(rows[0].pid, 0);
  EXPECT_TRUE(History().empty());
}

TEST_F(SupervisorTest, AReplicaThatStopsAnsweringLeavesRotationAfterUnreadyAfterFailedPolls) {
  // A replica that is alive but stopped (SIGSTOP) answers no poll.
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  auto row = Snap("blue", 0).row;
  ASSERT_EQ(::kill(row.pid, SIGSTOP), 0);
  ASSERT_TRUE(Until([&] { return !InRotation("blue", 0); }, 5000));
  EXPECT_EQ(Rows()[0].state, "unready");
  ASSERT_EQ(::kill(row.pid, SIGCONT), 0);
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000)) << "one good poll brings it back";
  EXPECT_EQ(Rows()[0].state, "ready");
}

// A probe whose answers the test sets (the replica process is real).
class ScriptedProbe : public serving::ReadinessProbe {
 public:
  explicit ScriptedProbe(std::shared_ptr<std::atomic<bool>> ready) : ready_(std::move(ready)) {}
  std::vector<bool> Probe(const std::vector<int>& ports, int64_t) override {
    ++*polls;
    return std::vector<bool>(ports.size(), ready_->load());
  }
  std::shared_ptr<std::atomic<int>> polls = std::make_shared<std::atomic<int>>(0);

 private:
  std::shared_ptr<std::atomic<bool>> ready_;
};

TEST_F(SupervisorTest, OneFailedPollBelowUnreadyAfterKeepsAReplicaInRotationAndTheNextTakesItOut) {
  options_.health_interval_ms = 0;  // a poll every Tick
  auto ready = std::make_shared<std::atomic<bool>>(true);
  auto probe = std::make_unique<ScriptedProbe>(ready);
  auto polls = probe->polls;
  sup_ = std::make_unique<serving::Supervisor>(options_, store_->services(), std::move(probe));
  Sup().Reconcile({Service({FakeVersion("blue", 1, 1, {})})}, NowMs());
  ASSERT_TRUE(Until([&] { return InRotation("blue", 0); }, 5000));
  ready->store(false);
  int before = polls->load();
  Sup().Tick(NowMs());
  ASSERT_EQ(polls->load(), before + 1);
  EXPECT_TRUE(InRotation("blue", 0)) << "1 failed poll, unready_after 2";
  Sup().Tick(NowMs());
  ASSERT_EQ(polls->load(), before + 2);
  EXPECT_FALSE(InRotation("blue", 0)) << "2 failed polls in a row";
  EXPECT_EQ(Rows()[0].state, "unready");
  ready->store(true);
  Sup().Tick(NowMs());
  EXPECT_TRUE(InRotation("blue", 0)) << "one good poll brings it back";
}

}  // namespace
