// ConcurrencyStore on a real SQLite file: pools and their leases, and
// concurrency groups. Liveness is a set of pids the test says are alive, so
// a "dead driver" needs no process to die (the integration tests kill real ones).
#include <gtest/gtest.h>

#include <set>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;
using sluice::testing::OpenStore;
using sluice::testing::TempDb;
using What = engine::PoolLease::What;
using Turn = store::GroupTurn::What;

namespace {

class ConcurrencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s_ = OpenStore(TempDb(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    ASSERT_TRUE(s_);
    s_->concurrency().SetProcessAlive([this](int64_t pid, int64_t) { return alive_.count(pid) > 0; });
  }
  // A run driven by the process `pid` (alive until the test says otherwise).
  int64_t Run(int64_t pid, const std::string& group = "") {
    int64_t id = *s_->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0, "cli", false, std::nullopt, group);
    EXPECT_TRUE(s_->runs().SetDriver(id, pid, 1000 + pid).ok());
    alive_.insert(pid);
    return id;
  }
  // A run that enters its group as soon as it is created, as `sluice run` does.
  int64_t Enter(int64_t pid, const std::string& group, bool cancel_in_progress = false) {
    int64_t id = Run(pid, group);
    EXPECT_TRUE(s_->concurrency().EnterGroup(id, group, cancel_in_progress, 0).ok());
    return id;
  }
  What Lease(int64_t run, const std::string& step, const std::string& pool, int slots = 1) {
    auto l = s_->runs().LeasePool(run, step, -1, pool, slots);
    EXPECT_TRUE(l.ok()) << l.status().message();
    EXPECT_TRUE(s_->runs().Flush().ok());
    return l.ok() ? l->what : What::kNoPool;
  }
  void Release(int64_t run, const std::string& step) {
    ASSERT_TRUE(s_->runs().ReleasePool(run, step, -1).ok());
    ASSERT_TRUE(s_->runs().Flush().ok());
  }
  std::unique_ptr<store::Store> s_;
  std::set<int64_t> alive_;
};

}  // namespace

TEST_F(ConcurrencyStoreTest, APoolOfOneSlotLeasesItToOneAttemptAtATime) {
  ASSERT_TRUE(s_->concurrency().SetPool("gpu", 1, 0).ok());
  int64_t a = Run(101), b = Run(102);
  EXPECT_EQ(Lease(a, "train", "gpu"), What::kLeased);
  EXPECT_EQ(Lease(b, "train", "gpu"), What::kFull);
  Release(a, "train");
  EXPECT_EQ(Lease(b, "train", "gpu"), What::kLeased);
}

TEST_F(ConcurrencyStoreTest, ASlotCountIsReachedExactlyAndOneMoreWaits) {
  ASSERT_TRUE(s_->concurrency().SetPool("db", 3, 0).ok());
  int64_t a = Run(101);
  EXPECT_EQ(Lease(a, "x", "db", 2), What::kLeased);
  EXPECT_EQ(Lease(a, "y", "db", 1), What::kLeased);  // 3 of 3
  EXPECT_EQ(Lease(a, "z", "db", 1), What::kFull);    // 4 of 3
  auto pool = s_->concurrency().GetPool("db");
  ASSERT_TRUE(pool.ok() && *pool);
  EXPECT_EQ((*pool)->used(), 3);
}

TEST_F(ConcurrencyStoreTest, ALeaseOfADeadDriverIsReclaimedByTheNextLeaseAttempt) {
  ASSERT_TRUE(s_->concurrency().SetPool("gpu", 1, 0).ok());
  int64_t a = Run(101), b = Run(102);
  EXPECT_EQ(Lease(a, "train", "gpu"), What::kLeased);
  alive_.erase(101);  // a's driver died holding the slot
  EXPECT_EQ((*s_->concurrency().GetPool("gpu"))->used(), 0);
  EXPECT_EQ(Lease(b, "train", "gpu"), What::kLeased);
  EXPECT_EQ((*s_->concurrency().GetPool("gpu"))->leases.front().run_id, b);
}

TEST_F(ConcurrencyStoreTest, LeasingAnUnknownPoolSaysItHasNone) {
  EXPECT_EQ(Lease(Run(101), "train", "nope"), What::kNoPool);
}

TEST_F(ConcurrencyStoreTest, APoolHeldByALiveDriverIsNotDeletedAndOneHeldByADeadOneIs) {
  ASSERT_TRUE(s_->concurrency().SetPool("gpu", 1, 0).ok());
  int64_t a = Run(101);
  EXPECT_EQ(Lease(a, "train", "gpu"), What::kLeased);
  Status st = s_->concurrency().DeletePool("gpu");
  EXPECT_EQ(st.code(), Code::kIncompatible);
  EXPECT_EQ(st.message(),
            "pool gpu has 1 leases held by running steps (run 1, step train); delete it when they end");
  alive_.erase(101);
  EXPECT_TRUE(s_->concurrency().DeletePool("gpu").ok());
  EXPECT_EQ(s_->concurrency().DeletePool("gpu").code(), Code::kNotFound);
}

TEST_F(ConcurrencyStoreTest, ANewRunInAGroupCancelsTheRunThatWaitedInIt) {
  int64_t holder = Enter(101, "g");
  EXPECT_EQ(s_->concurrency().TryAdmit(holder, 0)->what, Turn::kAdmitted);
  int64_t waiter = Enter(102, "g");
  auto turn = s_->concurrency().TryAdmit(waiter, 0);
  EXPECT_EQ(turn->what, Turn::kWaiting);
  EXPECT_EQ(turn->holder, holder);
  int64_t newer = Run(103, "g");
  auto entry = s_->concurrency().EnterGroup(newer, "g", false, 5);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->replaced, std::vector<int64_t>{waiter});
  EXPECT_TRUE(entry->cancelling.empty());
  EXPECT_EQ(s_->runs().GetRun(waiter)->state, engine::RunState::kCancelled);
  EXPECT_EQ(s_->concurrency().TryAdmit(waiter, 0)->what, Turn::kCancelled);
  EXPECT_EQ(s_->concurrency().TryAdmit(newer, 0)->what, Turn::kWaiting);
}

TEST_F(ConcurrencyStoreTest, AnOlderRunEnteringAfterANewerOneWaitsIsTheOneCancelled) {
  int64_t holder = Enter(101, "g");
  EXPECT_EQ(s_->concurrency().TryAdmit(holder, 0)->what, Turn::kAdmitted);
  int64_t older = Run(102, "g"), newer = Enter(103, "g");  // created in this order, entered the other way round
  auto entry = s_->concurrency().EnterGroup(older, "g", false, 0);
  EXPECT_EQ(entry->replaced_by, newer);
  EXPECT_TRUE(entry->replaced.empty());
  EXPECT_EQ(s_->concurrency().TryAdmit(older, 0)->what, Turn::kCancelled);
  EXPECT_EQ(s_->runs().GetRun(newer)->state, engine::RunState::kPending);
}

TEST_F(ConcurrencyStoreTest, CancelInProgressAsksTheRunHoldingTheGroupToCancel) {
  int64_t holder = Enter(101, "g", true);
  EXPECT_EQ(s_->concurrency().TryAdmit(holder, 0)->what, Turn::kAdmitted);
  int64_t newer = Run(102, "g");
  auto entry = s_->concurrency().EnterGroup(newer, "g", true, 0);
  EXPECT_EQ(entry->cancelling, std::vector<int64_t>{holder});
  EXPECT_TRUE(s_->runs().GetRun(holder)->cancel_requested);
}

TEST_F(ConcurrencyStoreTest, ARunWhoseDriverDiedDoesNotHoldItsGroup) {
  int64_t holder = Enter(101, "g");
  EXPECT_EQ(s_->concurrency().TryAdmit(holder, 0)->what, Turn::kAdmitted);
  int64_t next = Enter(102, "g");
  EXPECT_EQ(s_->concurrency().TryAdmit(next, 0)->what, Turn::kWaiting);
  alive_.erase(101);
  EXPECT_EQ(*s_->concurrency().GroupHolder("g"), 0);
  EXPECT_EQ(s_->concurrency().TryAdmit(next, 0)->what, Turn::kAdmitted);
}

TEST_F(ConcurrencyStoreTest, AWaitingRunAskedToCancelIsCancelledByItsNextLook) {
  int64_t holder = Enter(101, "g");
  EXPECT_EQ(s_->concurrency().TryAdmit(holder, 0)->what, Turn::kAdmitted);
  int64_t waiter = Enter(102, "g");
  ASSERT_TRUE(s_->runs().RequestCancel(waiter).ok());
  EXPECT_EQ(s_->concurrency().TryAdmit(waiter, 7)->what, Turn::kCancelled);
  EXPECT_EQ(s_->runs().GetRun(waiter)->state, engine::RunState::kCancelled);
  EXPECT_EQ(s_->runs().GetRun(waiter)->finished_ms, 7);
}

TEST_F(ConcurrencyStoreTest, RunsOfOtherGroupsDoNotWaitForEachOther) {
  int64_t a = Enter(101, "g1", true);
  EXPECT_EQ(s_->concurrency().TryAdmit(a, 0)->what, Turn::kAdmitted);
  int64_t b = Run(102, "g2");
  auto entry = s_->concurrency().EnterGroup(b, "g2", true, 0);
  EXPECT_TRUE(entry->replaced.empty() && entry->cancelling.empty());
  EXPECT_EQ(s_->concurrency().TryAdmit(b, 0)->what, Turn::kAdmitted);
}
