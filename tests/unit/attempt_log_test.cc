// The bounded attempt log: first and last bytes kept, the middle dropped.
#include "exec/attempt_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using sluice::exec::AttemptLog;

namespace {

class AttemptLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("sluice-log-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string Read() const {
    std::ifstream f(path_, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::string path_;
};

}  // namespace

TEST_F(AttemptLogTest, OutputExactlyAtTheHeadLimitIsKeptWhole) {
  AttemptLog log(path_, 10, 4);
  log.Write("01234");
  log.Write("56789");
  log.Close();
  EXPECT_EQ(Read(), "0123456789");
}

TEST_F(AttemptLogTest, OneBytePastTheHeadIsHeldBackAndWrittenAtTheEnd) {
  AttemptLog log(path_, 10, 4);
  log.Write("0123456789X");
  EXPECT_EQ(Read(),
            "0123456789\n[sluice: this log is over 10 bytes; the output from here on is held back, and its last 4 "
            "bytes are written here when the attempt ends]\n");
  log.Close();
  EXPECT_EQ(Read(),
            "0123456789\n[sluice: this log is over 10 bytes; the output from here on is held back, and its last 4 "
            "bytes are written here when the attempt ends]\n"
            "[sluice: 0 bytes of output were dropped here; the last 1 follow]\nX");
}

TEST_F(AttemptLogTest, ARunawayKeepsTheFirstAndLastBytesAndCountsWhatWasDropped) {
  AttemptLog log(path_, 4, 6);
  log.Write("head");
  for (char c = 'a'; c <= 'z'; ++c) log.Write(std::string(1, c));  // one byte at a time, through the ring
  log.Write("0123");                                                 // wraps the ring
  log.Close();
  std::string text = Read();
  EXPECT_EQ(text.substr(0, 4), "head");
  EXPECT_NE(text.find("[sluice: 24 bytes of output were dropped here; the last 6 follow]\nyz0123"), std::string::npos)
      << text;
  EXPECT_EQ(text.substr(text.size() - 6), "yz0123");
}

TEST_F(AttemptLogTest, AWriteLargerThanTheTailKeepsItsLastBytes) {
  AttemptLog log(path_, 2, 3);
  log.Write("ab" + std::string(1000, '.') + "xyz");
  log.Close();
  std::string text = Read();
  EXPECT_EQ(text.substr(0, 2), "ab");
  EXPECT_NE(text.find("[sluice: 1000 bytes of output were dropped here; the last 3 follow]\nxyz"), std::string::npos);
}

TEST_F(AttemptLogTest, NothingWrittenCreatesNoFile) {
  AttemptLog log(path_);
  log.Close();
  EXPECT_FALSE(std::filesystem::exists(path_));
}
