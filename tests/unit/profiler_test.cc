// The payload profile (serving/profiler.h): the bounded queue exactly at its
// capacity and one past, class counts and their cap, input and prediction
// statistics, the fixed bins, windows, and junk bodies that must never crash.
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "serving/profiler.h"

using namespace sluice;
using namespace sluice::serving;
using json = nlohmann::json;

namespace {

ProfileSample Sample(const std::string& request, const std::string& answer, int64_t at_ms = 12'345,
                     Role role = Role::kLive) {
  return {"fashion", "blue", role, at_ms, std::make_shared<const std::string>(request),
          std::make_shared<const std::string>(answer)};
}

std::string ClassAnswer(const std::vector<std::string>& classes) {
  return json{{"outputs", {{{"name", "class"}, {"datatype", "BYTES"}, {"shape", {classes.size()}}, {"data", classes}}}}}
      .dump();
}

const char* kNoInputs = R"({"inputs":[]})";

// The one window the accumulator holds, taken.
WindowProfile Only(ProfileAccumulator& acc) {
  auto all = acc.TakeAll();
  EXPECT_EQ(all.size(), 1u);
  return all.empty() ? WindowProfile{} : all[0];
}

}  // namespace

TEST(ProfilerTest, TheQueueTakes1024SamplesAndDropsAndCountsThe1025th) {
  ProfileQueue queue;
  for (size_t i = 0; i < kProfileQueueCapacity; ++i) ASSERT_TRUE(queue.Offer(Sample("{}", "{}"))) << i;
  EXPECT_EQ(queue.size(), 1024u);
  EXPECT_EQ(queue.dropped(), 0);
  EXPECT_FALSE(queue.Offer(Sample("{}", "{}")));
  EXPECT_EQ(queue.dropped(), 1);
  ProfileSample s;
  ASSERT_TRUE(queue.Pop(&s));
  EXPECT_TRUE(queue.Offer(Sample("{}", "{}")));  // room again
  EXPECT_EQ(queue.dropped(), 1);
}

TEST(ProfilerTest, AClosedQueueHandsOutWhatItHeldThenStopsAndDropsNewSamples) {
  ProfileQueue queue;
  ASSERT_TRUE(queue.Offer(Sample("{}", "{}")));
  queue.Close();
  EXPECT_FALSE(queue.Offer(Sample("{}", "{}")));
  EXPECT_EQ(queue.dropped(), 1);
  ProfileSample s;
  EXPECT_TRUE(queue.Pop(&s));
  EXPECT_FALSE(queue.Pop(&s));
}

TEST(ProfilerTest, ClassesCountTheClassOutputElseTheLabelIntegersAsText) {
  ProfileAccumulator acc;
  acc.Add(Sample(kNoInputs, ClassAnswer({"cat", "dog", "cat"})));
  EXPECT_EQ(Only(acc).classes, R"({"cat":2,"dog":1})");
  acc.Add(Sample(kNoInputs, R"({"outputs":[{"name":"label","datatype":"INT64","shape":[3],"data":[7,7,2]}]})"));
  EXPECT_EQ(Only(acc).classes, R"({"2":1,"7":2})");
  // Both: the class names win.
  acc.Add(Sample(kNoInputs, R"({"outputs":[{"name":"label","data":[1]},{"name":"class","data":["one"]}]})"));
  EXPECT_EQ(Only(acc).classes, R"({"one":1})");
}

TEST(ProfilerTest, AWindowKeeps1000ClassNamesAndCountsTheRestAsOther) {
  ProfileAccumulator acc;
  std::vector<std::string> names;
  for (size_t i = 0; i < kMaxClassNames; ++i) {
    std::string name = "c";  // not "c" + to_string: GCC 12's -Wrestrict false positive
    name += std::to_string(i);
    names.push_back(name);
  }
  acc.Add(Sample(kNoInputs, ClassAnswer(names)));
  json at_cap = json::parse(Only(acc).classes);
  EXPECT_EQ(at_cap.size(), 1000u);
  EXPECT_FALSE(at_cap.contains("_other"));

  acc.Add(Sample(kNoInputs, ClassAnswer(names)));
  acc.Add(Sample(kNoInputs, ClassAnswer({"new1", "c5", "new2", "new1"})));
  json past = json::parse(Only(acc).classes);
  EXPECT_EQ(past.size(), 1001u);
  EXPECT_EQ(past["_other"], 3);
  EXPECT_EQ(past["c5"], 2);
  EXPECT_FALSE(past.contains("new1"));
}

TEST(ProfilerTest, AnInputsValuesAndEachFeatureOfAnNByFInputAreSummed) {
  ProfileAccumulator acc;
  acc.Add(Sample(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[-1,0,5]]}]})",
                 ClassAnswer({"a", "b"})));
  json p = json::parse(Only(acc).payload);
  EXPECT_EQ(p["format"], "sluice-profile-v1");
  EXPECT_EQ(p["samples"], 1);
  EXPECT_EQ(p["unparsed"], 0);
  const json& x = p["inputs"]["x"];
  EXPECT_EQ(x["datatype"], "FP32");
  EXPECT_EQ(x["width"], 3);
  EXPECT_EQ(x["values"]["n"], 6);
  EXPECT_EQ(x["values"]["sum"], 10.0);
  EXPECT_EQ(x["values"]["sumsq"], 40.0);
  EXPECT_EQ(x["values"]["min"], -1.0);
  EXPECT_EQ(x["values"]["max"], 5.0);
  EXPECT_EQ(x["values"]["bins"], "sl125-v1");
  ASSERT_EQ(x["values"]["hist"].size(), 56u);
  EXPECT_EQ(x["values"]["hist"][SymLogBin(0)], 1);
  EXPECT_EQ(x["values"]["hist"][SymLogBin(-1)], 1);
  EXPECT_EQ(x["features"]["n"], json({2, 2, 2}));
  EXPECT_EQ(x["features"]["sum"], json({0.0, 2.0, 8.0}));
  EXPECT_EQ(x["features"]["min"], json({-1.0, 0.0, 3.0}));
  EXPECT_EQ(x["features"]["max"], json({1.0, 2.0, 5.0}));
}

TEST(ProfilerTest, FeaturesAreKeptFor256ColumnsAndNotPast) {
  for (int width : {256, 257}) {
    ProfileAccumulator acc;
    json request = {{"inputs", {{{"name", "x"}, {"shape", {1, width}}, {"data", std::vector<double>(width, 1.0)}}}}};
    acc.Add(Sample(request.dump(), "{}"));
    json x = json::parse(Only(acc).payload)["inputs"]["x"];
    EXPECT_EQ(x["width"], width);
    EXPECT_EQ(x["features"]["n"].size(), 256u) << width;
    EXPECT_EQ(x["values"]["n"], width);
  }
}

TEST(ProfilerTest, ThePredictionIsTheLargestProbabilityOfEachRowElseTheRawOutputsValues) {
  ProfileAccumulator acc;
  acc.Add(Sample(kNoInputs, R"({"outputs":[{"name":"probabilities","datatype":"FP32","shape":[2,3],)"
                            R"("data":[0.1,0.7,0.2,0.95,0.05,0.0]},{"name":"output","data":[9]}]})"));
  json pred = json::parse(Only(acc).payload)["prediction"];
  EXPECT_FALSE(pred.contains("output"));
  const json& mp = pred["max_probability"];
  EXPECT_EQ(mp["n"], 2);
  EXPECT_NEAR(mp["sum"].get<double>(), 1.65, 1e-9);
  EXPECT_EQ(mp["bins"], "p10-v1");
  EXPECT_EQ(mp["hist"], json({0, 0, 0, 0, 0, 0, 0, 1, 0, 1}));

  acc.Add(Sample(kNoInputs, R"({"outputs":[{"name":"output","datatype":"FP32","shape":[1,2],"data":[[-3.5,12]]}]})"));
  pred = json::parse(Only(acc).payload)["prediction"];
  EXPECT_FALSE(pred.contains("max_probability"));
  EXPECT_EQ(pred["output"]["n"], 2);
  EXPECT_EQ(pred["output"]["min"], -3.5);
  EXPECT_EQ(pred["output"]["bins"], "sl125-v1");
}

TEST(ProfilerTest, TheBinsAreCutAtZeroAndAtOneTwoFiveTimesPowersOfTen) {
  EXPECT_EQ(SymLogBin(0), 28);
  EXPECT_EQ(SymLogBin(0.000999), 28);
  EXPECT_EQ(SymLogBin(0.001), 29);
  EXPECT_EQ(SymLogBin(1), 38);
  EXPECT_EQ(SymLogBin(1.99), 38);
  EXPECT_EQ(SymLogBin(2), 39);
  EXPECT_EQ(SymLogBin(499999), 54);
  EXPECT_EQ(SymLogBin(500000), 55);
  EXPECT_EQ(SymLogBin(1e300), 55);
  EXPECT_EQ(SymLogBin(-0.0001), 27);
  EXPECT_EQ(SymLogBin(-0.001), 27);
  EXPECT_EQ(SymLogBin(-1), 18);
  EXPECT_EQ(SymLogBin(-1.5), 17);
  EXPECT_EQ(SymLogBin(-500000), 1);
  EXPECT_EQ(SymLogBin(-500001), 0);
  EXPECT_EQ(UnitBin(-0.5), 0);
  EXPECT_EQ(UnitBin(0.0999), 0);
  EXPECT_EQ(UnitBin(0.1), 1);
  EXPECT_EQ(UnitBin(0.95), 9);
  EXPECT_EQ(UnitBin(1.0), 9);
  EXPECT_EQ(UnitBin(7), 9);
}

TEST(ProfilerTest, SamplesFallInTheirVersionRoleAndTenSecondWindowWhichIsTakenASecondAfterItClosed) {
  ProfileAccumulator acc;
  acc.Add(Sample(kNoInputs, ClassAnswer({"a"}), 10'000));
  acc.Add(Sample(kNoInputs, ClassAnswer({"b"}), 19'999));
  acc.Add(Sample(kNoInputs, ClassAnswer({"c"}), 19'999, Role::kMirror));
  acc.Add(Sample(kNoInputs, ClassAnswer({"d"}), 20'000));
  EXPECT_TRUE(acc.TakeClosed(20'999).empty());
  auto closed = acc.TakeClosed(21'000);
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[0].start_ms, 10'000);
  EXPECT_EQ(closed[0].role, Role::kLive);
  EXPECT_EQ(closed[0].classes, R"({"a":1,"b":1})");
  EXPECT_EQ(closed[1].role, Role::kMirror);
  EXPECT_EQ(closed[1].classes, R"({"c":1})");
  auto rest = acc.TakeAll();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].start_ms, 20'000);
  EXPECT_EQ(rest[0].service, "fashion");
  EXPECT_EQ(rest[0].version, "blue");
}

TEST(ProfilerTest, JunkBodiesAreCountedUnparsedOrSkippedAndNeverCrash) {
  ProfileAccumulator acc;
  std::vector<std::string> junk = {
      "", "{", "null", "[]", "\"x\"", "{\"inputs\":5}", "{\"inputs\":[5,null,{\"name\":3}]}",
      R"({"inputs":[{"name":"x","shape":"no","data":"text"}]})",
      R"({"inputs":[{"name":"x","shape":[2,2],"data":[1,"a",true,null]}]})",
      R"({"inputs":[{"name":"x","shape":[-1,9223372036854775807],"data":[1e400]}]})",
      R"({"inputs":[{"name":"x","shape":[3037000500,3037000500],"data":[1]}]})",
      std::string(100000, '[') + std::string(100000, ']'),
      "{\"inputs\":[{\"name\":\"x\",\"data\":" + std::string(5000, '[') + "1" + std::string(5000, ']') + "}]}",
      std::string("\xff\xfe{\x00}", 5),
  };
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 200, ' ');
    for (char& c : s) c = "{}[]\":,0123456789.e-nultrsaifdxy \\"[rng() % 34];
    junk.push_back(s);
    std::string answer = R"({"outputs":[{"name":"class","data":)" + s + "}]}";
    junk.push_back(answer);
  }
  const std::string answers[] = {"", "{}", R"({"outputs":[{"name":"probabilities","shape":[0,0],"data":[]}]})",
                                 R"({"outputs":[{"name":"probabilities","shape":[1,2],"data":[1]}]})",
                                 R"({"outputs":[{"name":"class","data":[1,["\u00ff",{"a":1}]]}]})"};
  for (const std::string& j : junk)
    for (const std::string& a : answers) {
      acc.Add(Sample(j, a));
      acc.Add(Sample(a, j));
    }
  acc.Add({"fashion", "blue", Role::kLive, 12'345, nullptr, nullptr});
  WindowProfile w = Only(acc);
  json p = json::parse(w.payload);
  EXPECT_EQ(p["samples"], static_cast<int64_t>(junk.size() * 5 * 2 + 1));
  EXPECT_GT(p["unparsed"].get<int64_t>(), 0);
  EXPECT_TRUE(json::parse(w.classes).is_object());
}

TEST(ProfilerTest, TheProfilerThreadProfilesWhatWasOfferedBeforeItStops) {
  Profiler profiler;
  ASSERT_TRUE(profiler.Offer(Sample(kNoInputs, ClassAnswer({"cat"}))));
  ASSERT_TRUE(profiler.Offer(Sample(kNoInputs, ClassAnswer({"cat", "dog"}))));
  auto all = profiler.StopAndTakeAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].classes, R"({"cat":2,"dog":1})");
  EXPECT_FALSE(profiler.Offer(Sample(kNoInputs, "{}")));
  EXPECT_EQ(profiler.dropped(), 1);
}

TEST(ProfilerTest, TheQueueTakesBodiesUpToItsByteBoundAndDropsTheSampleThatWouldPassIt) {
  ProfileQueue queue(kProfileQueueCapacity, 10);
  ASSERT_TRUE(queue.Offer(Sample("1234", "56")));   // 6 bytes
  EXPECT_FALSE(queue.Offer(Sample("123", "45")));   // 11: one past
  EXPECT_EQ(queue.dropped(), 1);
  ASSERT_TRUE(queue.Offer(Sample("12", "34")));     // exactly 10
  ProfileSample s;
  ASSERT_TRUE(queue.Pop(&s));                        // 4 bytes left
  EXPECT_TRUE(queue.Offer(Sample("123", "456")));   // 10 again
  EXPECT_EQ(queue.dropped(), 1);
}
