// The event hub (server/events.h) against a real store file written as a
// run's driver writes it (journal batches from another connection), with
// its events read over real HTTP on loopback.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../common/free_port.h"
#include "../common/temp_store.h"
#include "server/events.h"
#include "server/http.h"
#include "store/open.h"

namespace sluice::server {
namespace {

using engine::StepRecord;
using engine::StepState;

// Reads from `fd` until `done(text)` or `ms` passed; everything read.
template <typename F>
std::string ReadUntil(int fd, std::string text, F done, int ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  char buf[4096];
  while (!done(text) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

// The data of every `event: step` in an SSE stream's text.
std::vector<nlohmann::json> StepEvents(const std::string& text) {
  std::vector<nlohmann::json> out;
  const std::string mark = "event: step\ndata: ";
  for (size_t p = 0; (p = text.find(mark, p)) != std::string::npos;) {
    p += mark.size();
    out.push_back(nlohmann::json::parse(text.substr(p, text.find('\n', p) - p)));
  }
  return out;
}

class EventHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDb("event-hub");
    writer_ = testing::OpenStore(path_);
    ASSERT_TRUE(writer_);
    auto id = writer_->runs().CreateRun("p", "name: p\n", "/p.yaml", "/", "{}", 1, 1);
    ASSERT_TRUE(id.ok());
    run_ = *id;
    ASSERT_TRUE(writer_->runs().SetRunState(run_, engine::RunState::kRunning, 2).ok());
    for (const char* s : {"a", "b", "c"}) Save({.step_id = s});
    hub_ = std::make_unique<EventHub>(path_);
    ServerOptions options;
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options, [this](const Request&) {
      Response r;
      r.on_stream = [this](std::shared_ptr<EventStream> s) { hub_->Subscribe(s, 0); };
      return r;
    });
    ASSERT_TRUE(server_->Start().ok());
    fd_ = testing::ConnectLoopback(server_->port());
    ASSERT_GE(fd_, 0);
    std::string req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ASSERT_EQ(::write(fd_, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    stream_ = ReadUntil(fd_, "", [](const std::string& t) { return t.find("event: hello") != std::string::npos; }, 5000);
    ASSERT_NE(stream_.find("event: hello"), std::string::npos) << stream_;
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    if (server_) server_->Stop();
    hub_.reset();
  }

  // One journal batch, as the driver commits it.
  void Save(StepRecord r) {
    ASSERT_TRUE(writer_->runs().SaveSteps(run_, {&r}).ok());
    ASSERT_TRUE(writer_->runs().Flush().ok());
  }

  std::string path_;
  std::unique_ptr<store::Store> writer_;
  int64_t run_ = 0;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<HttpServer> server_;
  int fd_ = -1;
  std::string stream_;
};

TEST_F(EventHubTest, EachCommittedStepChangeIsSentOnceAndARewriteWithTheSameStateAndAttemptsIsNot) {
  Save({.step_id = "c", .state = StepState::kRunning, .tries = 1, .attempts = 1});
  stream_ = ReadUntil(fd_, stream_, [](const std::string& t) { return t.find("\"step\":\"c\"") != std::string::npos; }, 5000);
  // c again with new outputs only; then b starts; then a and b in one batch.
  Save({.step_id = "c", .state = StepState::kRunning, .tries = 1, .attempts = 1, .outputs = {{"x", spec::Value::FromJson(1)}}});
  Save({.step_id = "b", .state = StepState::kRunning, .tries = 1, .attempts = 1});
  // Records written twice between two looks are sent once, as they are then: wait for this one.
  stream_ = ReadUntil(fd_, stream_, [](const std::string& t) { return t.find("\"step\":\"b\"") != std::string::npos; }, 5000);
  StepRecord a{.step_id = "a", .state = StepState::kSucceeded, .tries = 1, .attempts = 1};
  StepRecord b{.step_id = "b", .state = StepState::kFailed, .tries = 1, .attempts = 1, .reason = "exit code 3"};
  ASSERT_TRUE(writer_->runs().SaveSteps(run_, {&a, &b}).ok());
  ASSERT_TRUE(writer_->runs().Flush().ok());
  stream_ = ReadUntil(fd_, stream_, [](const std::string& t) { return t.find("\"state\":\"failed\"") != std::string::npos; }, 5000);
  stream_ = ReadUntil(fd_, stream_, [](const std::string&) { return false; }, 300);  // nothing more comes

  std::vector<std::string> seen;
  for (const auto& e : StepEvents(stream_)) {
    EXPECT_EQ(e["run"], run_);
    EXPECT_EQ(e["item"], -1);
    seen.push_back(e["step"].get<std::string>() + " " + e["state"].get<std::string>() + " " + e["attempts"].dump());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"c running 1", "b running 1", "a succeeded 1", "b failed 1"})) << stream_;
  EXPECT_EQ(stream_.find("event: run"), std::string::npos) << "the run's state did not change";
}

TEST_F(EventHubTest, TheStepRecordsOfARetryAreSentAsTheyAreResetAndTheRunsNewState) {
  ASSERT_TRUE(writer_->runs().SetRunState(run_, engine::RunState::kFailed, 3).ok());
  ASSERT_TRUE(writer_->runs().Flush().ok());
  stream_ = ReadUntil(fd_, stream_, [](const std::string& t) { return t.find("\"state\":\"failed\"") != std::string::npos; }, 5000);
  ASSERT_TRUE(writer_->runs().ResetSteps(run_, {"b"}, {}).ok());
  stream_ = ReadUntil(fd_, stream_, [](const std::string& t) { return t.find("\"step\":\"b\"") != std::string::npos; }, 5000);
  stream_ = ReadUntil(fd_, stream_, [](const std::string&) { return false; }, 300);
  auto steps = StepEvents(stream_);
  ASSERT_EQ(steps.size(), 1u) << stream_;
  EXPECT_EQ(steps[0]["step"], "b");
  EXPECT_EQ(steps[0]["state"], "pending");
  EXPECT_NE(stream_.find("event: run\ndata: {\"pipeline\":\"p\",\"run\":" + std::to_string(run_) + ",\"state\":\"pending\"}"),
            std::string::npos)
      << stream_;
}

}  // namespace
}  // namespace sluice::server
