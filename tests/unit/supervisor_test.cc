// The pure parts of serving/supervisor.h: the model server's argv, the
// markers, and the rule that a signal goes only to the same process.
#include <signal.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "exec/process.h"
#include "serving/supervisor.h"

using namespace sluice;

namespace {

store::ServiceVersionState ModelVersion(const std::string& options) {
  store::ServiceVersionState v;
  v.name = "green";
  v.kind = "model";
  v.model_ref = "fashion@2";
  v.model_name = "fashion";
  v.model_version = 2;
  v.uri = "/h/artifacts/ab/abcd/model.pt";
  v.options = options;
  return v;
}

}  // namespace

TEST(SupervisorArgvTest, AModelVersionRunsServeModelOnAFreeLoopbackPortWithItsPortFile) {
  auto argv = serving::ModelServerArgv("/usr/bin/sluice", "fashion", ModelVersion("{}"), "/h/p/green.0.port");
  ASSERT_TRUE(argv.ok()) << argv.status().message();
  EXPECT_EQ(*argv, (std::vector<std::string>{"/usr/bin/sluice", "serve-model", "/h/artifacts/ab/abcd/model.pt",
                                             "--name", "fashion", "--model-version", "2", "--listen", "127.0.0.1",
                                             "--port", "0", "--port-file", "/h/p/green.0.port"}));
}

TEST(SupervisorArgvTest, TheVersionsOptionsBecomeServeModelFlagsAndReadyTimeoutDoesNot) {
  auto argv = serving::ModelServerArgv(
      "sluice", "fashion",
      ModelVersion(R"({"threads": 2, "max_batch": 8, "max_wait_ms": 0, "max_queue": 16, "ready_timeout_ms": 5000})"),
      "f");
  ASSERT_TRUE(argv.ok());
  std::vector<std::string> tail(argv->begin() + 13, argv->end());
  EXPECT_EQ(tail, (std::vector<std::string>{"--threads", "2", "--max-batch", "8", "--max-wait-ms", "0",
                                            "--max-queue", "16"}));
}

TEST(SupervisorArgvTest, AModelFileHasNoModelVersionFlag) {
  store::ServiceVersionState v = ModelVersion("{}");
  v.model_version = 0;
  v.model_name.clear();
  auto argv = serving::ModelServerArgv("sluice", "fashion", v, "f");
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(std::find(argv->begin(), argv->end(), "--model-version"), argv->end());
}

TEST(SupervisorArgvTest, OptionsThatAreNotAnObjectAreRefusedNamingTheVersion) {
  auto argv = serving::ModelServerArgv("sluice", "fashion", ModelVersion("[1]"), "f");
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.status().message(), "version green of service fashion: options are not a JSON object: [1]");
}

TEST(SupervisorArgvTest, TheMarkersNameHomeServiceVersionSlotAndRevision) {
  EXPECT_EQ(serving::ReplicaMarkers("/h", "fashion", "blue", 1, 3),
            (std::vector<std::string>{"SLUICE_HOME=/h", "SLUICE_SERVICE=fashion", "SLUICE_SERVICE_VERSION=blue",
                                      "SLUICE_REPLICA=1", "SLUICE_REVISION=3"}));
}

TEST(SupervisorSignalTest, APidWhoseStartTimeNoLongerMatchesIsNeverSignalled) {
  exec::SpawnRequest r;
  r.program = "/bin/sleep";
  r.argv = {"sleep", "30"};
  r.workdir = std::filesystem::temp_directory_path().string();
  auto pid = exec::Spawn(r);
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  int64_t start = exec::ProcessStartTime(*pid);
  ASSERT_GT(start, 0);
  EXPECT_FALSE(serving::SignalIfSameProcess(*pid, start + 1, SIGKILL)) << "another start time: a reused pid";
  EXPECT_FALSE(serving::SignalIfSameProcess(*pid, 0, SIGKILL)) << "no start time recorded";
  EXPECT_FALSE(exec::ChildEnded(*pid));
  EXPECT_TRUE(serving::SignalIfSameProcess(*pid, start, SIGKILL));
  exec::ChildEnd end = exec::WaitChild(*pid);
  EXPECT_EQ(end.signal, SIGKILL);
}
