#include <gtest/gtest.h>

#include "engine/outputs.h"

using sluice::engine::ParseOutputs;

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
