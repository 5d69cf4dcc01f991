// The data plugins on the real Fashion-MNIST files and on bad inputs.
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

const std::string kMnist = "/usr/share/datasets/fashion-mnist";

class DataPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SLUICE_PLUGIN_PATH");  // the build tree's plugins/ beside sluice
    if (!std::filesystem::exists(kMnist + "/train-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)";
  }
  json Run(const std::string& yaml, int expect_code) {
    box_.Write("p.yaml", yaml);
    Output o = box_.Sluice({"run", "p.yaml"});
    EXPECT_EQ(o.code, expect_code) << o.out << o.err;
    return ShowRun(box_, "latest");
  }
  Sandbox box_;
};

}  // namespace

TEST_F(DataPluginTest, IngestsValidatesAndSplitsFashionMnistReproducibly) {
  std::string yaml = R"(name: mnist
steps:
  ingest:
    uses: data/idx-ingest
    with: {images: )" + kMnist + R"(/t10k-images-idx3-ubyte.gz, labels: )" + kMnist + R"(/t10k-labels-idx1-ubyte.gz}
  check:
    needs: [ingest]
    uses: data/validate
    with:
      dataset: ${{ steps.ingest.outputs.dataset }}
      rows: {min: 10000, max: 10000}
      columns: {image: {dtype: uint8, min: 0, max: 255}}
      label: {values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], max_imbalance: 1.01}
  split:
    needs: [check]
    uses: data/split
    with: {dataset: "${{ steps.ingest.outputs.dataset }}", seed: 11, train: 0.7, validation: 0.1, test: 0.2, stratify: label}
)";
  json run = Run(yaml, 0);
  EXPECT_EQ(StepOf(run, "ingest")["outputs"]["rows"], "10000");
  json split = StepOf(run, "split")["outputs"];
  EXPECT_EQ(split["train_rows"], "7000");
  EXPECT_EQ(split["validation_rows"], "1000");
  EXPECT_EQ(split["test_rows"], "2000");
  json meta = json::parse(std::ifstream(split["train"].get<std::string>() + "/dataset.json"));
  EXPECT_EQ(meta["rows"], 7000);
  EXPECT_EQ(meta["columns"][0]["shape"], json::array({28, 28}));
  // Stratified: each of the 10 classes (1,000 test images each) gives 700.
  std::ifstream labels(split["train"].get<std::string>() + "/label.bin", std::ios::binary);
  std::vector<int> counts(10);
  char c;
  while (labels.get(c)) ++counts[static_cast<unsigned char>(c)];
  EXPECT_EQ(counts, std::vector<int>(10, 700));
  // The same seed gives the same split.
  Output again = box_.Sluice({"retry", "1", "--from", "split"});
  ASSERT_EQ(again.code, 0) << again.err;
  json split2 = StepOf(ShowRun(box_, "1"), "split")["outputs"];
  auto read = [](const std::string& f) {
    std::ifstream in(f, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_NE(split2["train"], split["train"]);
  EXPECT_EQ(read(split2["train"].get<std::string>() + "/image.bin"), read(split["train"].get<std::string>() + "/image.bin"));
}

TEST_F(DataPluginTest, IdxIngestRefusesAWrongMagicNumber) {
  json run = Run("name: bad\nsteps:\n  ingest:\n    uses: data/idx-ingest\n    with: {images: " + kMnist +
                     "/t10k-labels-idx1-ubyte.gz}\n",
                 1);
  EXPECT_EQ(StepOf(run, "ingest")["reason"],
            kMnist + "/t10k-labels-idx1-ubyte.gz: bad magic number 0x00000801; expected 0x00000803 (IDX images)");
}

TEST_F(DataPluginTest, IdxIngestNamesTheMissingFileAndThePackageThatInstallsIt) {
  json run = Run("name: bad\nsteps:\n  ingest:\n    uses: data/idx-ingest\n    with: {images: " + kMnist +
                     "/no-such-idx3-ubyte.gz}\n",
                 1);
  EXPECT_EQ(StepOf(run, "ingest")["reason"],
            kMnist + "/no-such-idx3-ubyte.gz: cannot open: No such file or directory (Debian's dataset-fashion-mnist "
                     "package installs these files: apt-get install dataset-fashion-mnist)");
}

TEST_F(DataPluginTest, IdxIngestRefusesATruncatedFile) {
  std::ifstream in(kMnist + "/t10k-images-idx3-ubyte.gz", std::ios::binary);
  std::string head(100000, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  box_.Write("cut.gz", head);
  std::string path = (box_.dir() / "cut.gz").string();
  json run = Run("name: bad\nsteps:\n  ingest:\n    uses: data/idx-ingest\n    with: {images: " + path + "}\n", 1);
  EXPECT_EQ(StepOf(run, "ingest")["reason"], path + ": unexpected end of file (is the file truncated?)");
}

TEST_F(DataPluginTest, CsvIngestNamesTheRaggedRow) {
  box_.Write("data.csv", "city,temp\nOslo,3\nRome,21\nLima,19,extra\n");
  json run = Run("name: csv\nsteps:\n  ingest: {uses: data/csv-ingest, with: {path: data.csv}}\n", 1);
  EXPECT_EQ(StepOf(run, "ingest")["reason"], "data.csv:4: 3 fields, but the header has 2");
}

TEST_F(DataPluginTest, ValidateListsEveryBrokenRule) {
  box_.Write("data.csv", "age,score,label\n34,0.5,a\n-2,,a\n51,0.9,b\n140,,a\n");
  json run = Run(R"(name: csv
steps:
  ingest: {uses: data/csv-ingest, with: {path: data.csv}}
  check:
    needs: [ingest]
    uses: data/validate
    with:
      dataset: ${{ steps.ingest.outputs.dataset }}
      rows: {min: 10}
      columns:
        age: {dtype: int64, min: 0, max: 120}
        score: {max_null_fraction: 0.25}
        height: {}
      label: {values: [a, b, c], max_imbalance: 2}
)",
                 1);
  EXPECT_EQ(StepOf(run, "check")["reason"],
            "7 rules broken:\n"
            "  rows: 4 is fewer than the minimum 10\n"
            "  column 'age': 1 value below 0 (lowest -2)\n"
            "  column 'age': 1 value above 120 (highest 140)\n"
            "  column 'height' is missing\n"
            "  column 'score': 2 of 4 values missing, more than the fraction 0.25\n"
            "  label 'c' has no rows\n"
            "  labels are imbalanced: 'a' has 3 rows, 'b' 1 (ratio 3, at most 2)");
}

TEST_F(DataPluginTest, TheFashionMnistExampleTrainsAGatedModelAndReRunsFromTheCache) {
  std::filesystem::copy(SLUICE_SOURCE_DIR "/examples/fashion-softmax", box_.dir() / "example",
                        std::filesystem::copy_options::recursive);
  box_.Write("example/.gitignore", "");
  Output o = box_.Sluice({"run", "example/pipeline.yaml", "-p", "epochs=1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json run = ShowRun(box_, "1");
  double accuracy = std::stod(StepOf(run, "evaluate")["outputs"]["accuracy"].get<std::string>());
  EXPECT_GT(accuracy, 0.75);  // chance is 0.10; one epoch of softmax regression gets about 0.8
  EXPECT_EQ(StepOf(run, "register")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "register")["outputs"]["registered"], "fashion-softmax@1");
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion-softmax@1"}).out,
            StepOf(run, "train")["outputs"]["model"].get<std::string>() + "\n");
  o = box_.Sluice({"run", "example/pipeline.yaml", "-p", "epochs=1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  run = ShowRun(box_, "2");
  for (const char* id : {"ingest-train", "ingest-test", "validate", "split", "train", "evaluate"})
    EXPECT_EQ(StepOf(run, id)["state"], "cached") << id;
}
