#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "engine/outputs.h"

using sluice::engine::CheckOutputs;
using sluice::engine::kMaxOutputFile;
using sluice::engine::kMaxOutputValue;
using sluice::engine::ParseOutputs;
using sluice::engine::ReadOutputs;

TEST(OutputsTest, ReadsKeyValueLines) {
  auto o = ParseOutputs("accuracy=0.93\npath=/tmp/a=b\n\n");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->at("accuracy").as_string(), "0.93");
  EXPECT_EQ(o->at("path").as_string(), "/tmp/a=b");
}

TEST(OutputsTest, ReadsMultiLineValuesWithADelimiter) {
  auto o = ParseOutputs("report<<EOF\nline 1\nx=y\nEOF\nnext=1\n");
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->at("report").as_string(), "line 1\nx=y");
  EXPECT_EQ(o->at("next").as_string(), "1");
  EXPECT_EQ(o->size(), 2u);
}

TEST(OutputsTest, AKeySetTwiceFailsSoAValueCannotSmuggleInAnother) {
  // What `echo "result=$UNTRUSTED"` writes when UNTRUSTED holds "x\nresult=evil".
  auto o = ParseOutputs("result=x\nresult=evil\n");
  EXPECT_EQ(o.status().message(), "$SLUICE_OUTPUT line 2: output 'result' is set twice");
}

TEST(OutputsTest, ALineWithoutEqualsFails) {
  auto o = ParseOutputs("ok=1\njust text\n");
  EXPECT_EQ(o.status().message(), "$SLUICE_OUTPUT line 2: 'just text' is not key=value or key<<DELIMITER");
}

TEST(OutputsTest, AnUnclosedDelimiterFails) {
  auto o = ParseOutputs("a<<END\nline\n");
  EXPECT_EQ(o.status().message(), "$SLUICE_OUTPUT line 1: no closing 'END' line");
}

TEST(OutputsTest, AValueExactlyAtTheLimitIsKeptAndOneByteMoreFailsWithTheWayOut) {
  std::string at(kMaxOutputValue, 'x');
  auto ok = ParseOutputs("big=" + at + "\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(CheckOutputs(*ok).ok());
  auto over = ParseOutputs("big=" + at + "y\n");
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(CheckOutputs(*over).message(),
            "output 'big' is 65537 bytes, over the limit of 65536; write it to a file and declare that as an output "
            "(outputs: {big: file})");
}

TEST(OutputsTest, AnOutputFileOverTheLimitIsRefusedBeforeItIsRead) {
  std::string path = ::testing::TempDir() + "/outputs-limit.out";
  std::ofstream(path) << std::string(kMaxOutputFile, '\n');  // exactly at the limit: blank lines
  EXPECT_TRUE(ReadOutputs(path).ok());
  std::ofstream(path, std::ios::app) << "\n";
  auto r = ReadOutputs(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "$SLUICE_OUTPUT is 1048577 bytes, over the limit of 1048576; write large values to "
                                  "files and declare them as outputs (outputs: {name: file})");
  std::remove(path.c_str());
}

TEST(OutputsTest, AValueThatIsNotUtf8FailsWithTheWayOut) {
  auto o = ParseOutputs("x=\xff" "bad\n");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(CheckOutputs(*o).message(),
            "output 'x' is not UTF-8 text; write binary data to a file and declare that as an output (outputs: {x: file})");
  auto fine = ParseOutputs("x=caf\xc3\xa9\n");
  EXPECT_TRUE(CheckOutputs(*fine).ok());
}
