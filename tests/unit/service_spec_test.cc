// serving::ParseServiceSpec (serving/service_spec.h): service.yaml's shape,
// its limits exactly at them and one past, and each error's words and place.
#include <gtest/gtest.h>

#include "serving/service_spec.h"

using namespace sluice;
using serving::ParseServiceSpec;
using serving::ServiceSpec;

namespace {

ServiceSpec Ok(const std::string& text) {
  auto s = ParseServiceSpec("dir/service.yaml", text);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : ServiceSpec{};
}

// The whole error report (one error a line).
std::string Err(const std::string& text) {
  auto s = ParseServiceSpec("service.yaml", text);
  EXPECT_FALSE(s.ok()) << text;
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), Code::kInvalidSpec);
  return s.status().message();
}

// `count` versions v0, v1, ... of one replica each, the first taking all traffic.
std::string Versions(int count) {
  std::string out = "service: s\nversions:\n";
  for (int i = 0; i < count; ++i) out += "  v" + std::to_string(i) + ": {model: m@1}\n";
  out += "traffic: {v0: 100}\n";
  return out;
}

const char* kTwo = "service: fashion\nversions:\n  blue: {model: fashion@1, replicas: 2}\n  green: {model: fashion@2}\n";

}  // namespace

TEST(ServiceSpecTest, TheDesignsExampleParsesIntoItsTypedValue) {
  ServiceSpec s = Ok(
      "service: fashion\n"
      "versions:\n"
      "  blue:  {model: fashion@1, replicas: 2}\n"
      "  green: {model: fashion@2, replicas: 1, threads: 2, max_batch: 8, max_wait_ms: 2}\n"
      "  mine:  {command: [python3, srv.py], port_env: MYPORT, env: {MODE: fast}, workdir: sub, replicas: 1}\n"
      "  local: {model: models/m.pt, replicas: 0}\n"
      "traffic: {blue: 89.5, green: 10.5}\n"
      "sticky: {header: x-user-id}\n"
      "mirror: {version: mine, percent: 25}\n"
      "timeout: 2s\n"
      "max_inflight: 8\n");
  EXPECT_EQ(s.name, "fashion");
  ASSERT_EQ(s.versions.size(), 4u);
  const serving::VersionSpec& blue = s.versions[0];
  EXPECT_EQ(blue.name, "blue");
  EXPECT_EQ(blue.kind, serving::VersionSpec::Kind::kModel);
  EXPECT_EQ(blue.model, "fashion@1");
  EXPECT_EQ(blue.model_file, "");
  EXPECT_EQ(blue.model_pos, (spec::SourcePos{3, 18}));
  EXPECT_EQ(blue.replicas, 2);
  EXPECT_EQ(blue.weight_bp, 8950);
  EXPECT_EQ(s.versions[1].threads, 2);
  EXPECT_EQ(s.versions[1].max_batch, 8);
  EXPECT_EQ(s.versions[1].max_wait_ms, 2);
  EXPECT_EQ(s.versions[1].weight_bp, 1050);
  const serving::VersionSpec& mine = s.versions[2];
  EXPECT_EQ(mine.kind, serving::VersionSpec::Kind::kCommand);
  EXPECT_EQ(mine.command, (std::vector<std::string>{"python3", "srv.py"}));
  EXPECT_EQ(mine.port_env, "MYPORT");
  EXPECT_EQ(mine.env.at("MODE"), "fast");
  EXPECT_EQ(mine.workdir, "dir/sub");
  EXPECT_EQ(mine.weight_bp, 0);
  EXPECT_EQ(s.versions[3].model_file, "dir/models/m.pt");
  EXPECT_TRUE(s.traffic_given);
  ASSERT_TRUE(s.sticky);
  EXPECT_EQ(s.sticky->header, "x-user-id");
  EXPECT_EQ(s.sticky->salt, "fashion");
  ASSERT_TRUE(s.mirror);
  EXPECT_EQ(s.mirror->version, "mine");
  EXPECT_EQ(s.mirror->percent_bp, 2500);
  EXPECT_EQ(s.timeout, Millis(2000));
  EXPECT_EQ(s.max_inflight, 8);
}

TEST(ServiceSpecTest, DefaultsAreOneReplicaPortEnvPortTheYamlsFolderAndMirrorPercent100) {
  ServiceSpec s = Ok("service: s\nversions:\n  a: {command: [srv]}\n  b: {model: m@1}\n"
                     "traffic: {a: 100}\nmirror: {version: b}\n");
  EXPECT_EQ(s.versions[0].replicas, 1);
  EXPECT_EQ(s.versions[0].port_env, "PORT");
  EXPECT_EQ(s.versions[0].workdir, "dir");
  EXPECT_EQ(s.versions[0].ready_timeout, Millis(120'000));
  EXPECT_EQ(s.mirror->percent_bp, 10000);
  EXPECT_EQ(s.timeout, Millis(30'000));
  EXPECT_EQ(s.max_inflight, 64);
}

TEST(ServiceSpecTest, OneVersionWithoutTrafficGetsAll) {
  ServiceSpec s = Ok("service: s\nversions:\n  only: {model: m@latest}\n");
  EXPECT_FALSE(s.traffic_given);
  EXPECT_EQ(s.versions[0].weight_bp, 10000);
}

TEST(ServiceSpecTest, TwoVersionsWithoutTrafficParseWithNoWeightsForTheApplierToDecide) {
  ServiceSpec s = Ok(kTwo);
  EXPECT_FALSE(s.traffic_given);
  EXPECT_EQ(s.versions[0].weight_bp, 0);
  EXPECT_EQ(s.versions[1].weight_bp, 0);
}

TEST(ServiceSpecTest, WeightsOf100WithTwoDecimalsPass) {
  ServiceSpec s = Ok(std::string(kTwo) + "traffic: {blue: 99.99, green: 0.01}\n");
  EXPECT_EQ(s.versions[0].weight_bp, 9999);
  EXPECT_EQ(s.versions[1].weight_bp, 1);
  s = Ok(std::string(kTwo) + "traffic: {blue: 100.00, green: 0}\n");
  EXPECT_EQ(s.versions[0].weight_bp, 10000);
}

TEST(ServiceSpecTest, Weights99Point99And100Point01AreRefusedAtTheTrafficKey) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 90, green: 9.99}\n"),
            "service.yaml:5:10: traffic: weights add up to 99.99, not 100");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 90, green: 10.01}\n"),
            "service.yaml:5:10: traffic: weights add up to 100.01, not 100");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 90, green: 5}\n"),
            "service.yaml:5:10: traffic: weights add up to 95, not 100");
}

TEST(ServiceSpecTest, ThreeDecimalsNegativeAndNonNumbersAreRefused) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 89.999, green: 10.001}\n"),
            "service.yaml:5:17: traffic.blue: weight '89.999' must be a number from 0 to 100 with at most two decimals\n"
            "service.yaml:5:32: traffic.green: weight '10.001' must be a number from 0 to 100 with at most two decimals");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 110, green: -10}\n"),
            "service.yaml:5:17: traffic.blue: weight '110' must be a number from 0 to 100 with at most two decimals\n"
            "service.yaml:5:29: traffic.green: weight '-10' must be a number from 0 to 100 with at most two decimals");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 1e2, green: 0}\n"),
            "service.yaml:5:17: traffic.blue: weight '1e2' must be a number from 0 to 100 with at most two decimals");
}

TEST(ServiceSpecTest, ATrafficKeyThatIsNotAVersionIsRefusedAtItNamingTheVersions) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 90, purple: 10}\n"),
            "service.yaml:5:21: traffic: 'purple' is not a version of this service (versions: blue, green)");
}

TEST(ServiceSpecTest, AnUnknownKeyIsRefusedAtItsLineAndColumnWithTheClosestKey) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nmirorr: {version: green}\n"),
            "service.yaml:6:1: unknown key 'mirorr' (did you mean 'mirror'?)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1, replica: 2}\n"),
            "service.yaml:3:19: unknown key 'replica' in versions.a (did you mean 'replicas'?)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1}\nsticky: {heder: x}\n"),
            "service.yaml:4:10: unknown key 'heder' in sticky (did you mean 'header'?)\n"
            "service.yaml:4:9: sticky: give header or field");
}

TEST(ServiceSpecTest, ARepeatedKeyIsRefusedAtItsSecondOccurrence) {
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1}\nservice: t\n"),
            "service.yaml:4:1: key 'service' appears twice in the service");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1}\n  a: {model: m@2}\n"),
            "service.yaml:4:3: key 'a' appears twice in versions");
}

TEST(ServiceSpecTest, MissingServiceOrVersionsAndAnEmptyOrNonMapFileAreRefused) {
  EXPECT_EQ(Err("versions:\n  a: {model: m@1}\n"), "service.yaml:1:1: missing required key 'service'");
  EXPECT_EQ(Err("service: s\n"), "service.yaml:1:1: missing required key 'versions'");
  EXPECT_EQ(Err("\n"), "service.yaml:1:1: the file is empty; a service needs 'service' and 'versions'");
  EXPECT_EQ(Err("- a\n"), "service.yaml:1:1: a service must be a mapping with 'service' and 'versions'");
  EXPECT_EQ(Err("service: [\n"), "service.yaml:2:1: malformed YAML: did not find expected node content (while parsing a flow node)");
}

TEST(ServiceSpecTest, ModelAndCommandTogetherOrNeitherIsRefused) {
  EXPECT_EQ(Err("service: s\nversions:\n  blue: {model: m@1, command: [srv]}\n"),
            "service.yaml:3:3: versions.blue: give model or command, not both");
  EXPECT_EQ(Err("service: s\nversions:\n  blue: {replicas: 1}\n"),
            "service.yaml:3:3: versions.blue: give model (NAME@VERSION or a file) or command (a list: argv)");
}

TEST(ServiceSpecTest, AModelReferenceNeedsANameAndOneRef) {
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: '@1'}\n"),
            "service.yaml:3:14: versions.a.model: '@1' is neither NAME@VERSION, NAME@ALIAS nor a file (a file's name has no '@')");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1@2}\n"),
            "service.yaml:3:14: versions.a.model: 'm@1@2' is neither NAME@VERSION, NAME@ALIAS nor a file (a file's name has no '@')");
}

TEST(ServiceSpecTest, ACommandIsANonEmptyListAndTakesNoModelOptions) {
  EXPECT_EQ(Err("service: s\nversions:\n  a: {command: python3 srv.py}\n"),
            "service.yaml:3:16: versions.a.command must be a non-empty list of strings (argv, no shell)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {command: []}\n"),
            "service.yaml:3:16: versions.a.command must be a non-empty list of strings (argv, no shell)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {command: [srv], threads: 2}\n"),
            "service.yaml:3:23: versions.a.threads is for model versions; give a command its options in its argv");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1, env: {A: b}}\n"),
            "service.yaml:3:3: versions.a: env and workdir are for command versions; a model version runs Sluice's "
            "model server");
}

TEST(ServiceSpecTest, PortEnvAndEnvNamesMustBeVariableNames) {
  EXPECT_EQ(Err("service: s\nversions:\n  a: {command: [srv], port_env: 1PORT}\n"),
            "service.yaml:3:33: versions.a.port_env: '1PORT' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {command: [srv], env: {A-B: x}}\n"),
            "service.yaml:3:29: versions.a.env: 'A-B' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
}

TEST(ServiceSpecTest, A63CharacterNamePassesAnd64DoesNot) {
  std::string name63(63, 'a');
  EXPECT_EQ(Ok("service: " + name63 + "\nversions:\n  a: {model: m@1}\n").name, name63);
  EXPECT_EQ(Err("service: " + name63 + "a\nversions:\n  a: {model: m@1}\n"),
            "service.yaml:1:10: service: '" + name63 +
                "a' is not a service name (lowercase letters, digits and '-', at most 63)");
  EXPECT_EQ(Err("service: Fashion!\nversions:\n  a: {model: m@1}\n"),
            "service.yaml:1:10: service: 'Fashion!' is not a service name (lowercase letters, digits and '-', at most 63)");
  EXPECT_EQ(Err("service: -s\nversions:\n  a: {model: m@1}\n"),
            "service.yaml:1:10: service: '-s' is not a service name (lowercase letters, digits and '-', at most 63)");
}

TEST(ServiceSpecTest, A32CharacterVersionNamePassesAnd33DoesNot) {
  std::string v32 = "a_" + std::string(30, 'b');
  EXPECT_EQ(Ok("service: s\nversions:\n  " + v32 + ": {model: m@1}\n").versions[0].name, v32);
  EXPECT_EQ(Err("service: s\nversions:\n  " + v32 + "c: {model: m@1}\n"),
            "service.yaml:3:3: versions: '" + v32 +
                "c' is not a version name (lowercase letters, digits, '-' and '_', at most 32)");
}

TEST(ServiceSpecTest, SixteenVersionsPassAndSeventeenDoNot) {
  EXPECT_EQ(Ok(Versions(16)).versions.size(), 16u);
  EXPECT_EQ(Err(Versions(17)), "service.yaml:19:3: versions: at most 16 versions, not 17\n"
                               "service.yaml:20:11: traffic: 'v0' is not a version of this service (versions: )");
  EXPECT_EQ(Err("service: s\nversions: {}\n"),
            "service.yaml:2:11: versions must be a mapping of 1 to 16 versions, such as {blue: {model: fashion@1}}");
}

TEST(ServiceSpecTest, SixteenReplicasPassAndSeventeenDoNot) {
  EXPECT_EQ(Ok("service: s\nversions:\n  a: {model: m@1, replicas: 16}\n").versions[0].replicas, 16);
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1, replicas: 17}\n"),
            "service.yaml:3:29: versions.a.replicas must be a whole number from 0 to 16, not '17'");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1, replicas: -1}\n"),
            "service.yaml:3:29: versions.a.replicas must be a whole number from 0 to 16, not '-1'");
}

TEST(ServiceSpecTest, ZeroReplicasWithAWeightAreRefused) {
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1, replicas: 0}\n"),
            "service.yaml:3:3: versions.a: 0 replicas cannot take weight 100");
  ServiceSpec s = Ok(std::string("service: s\nversions:\n  a: {model: m@1}\n  b: {model: m@2, replicas: 0}\n") +
                     "traffic: {a: 100, b: 0}\n");
  EXPECT_EQ(s.versions[1].replicas, 0);
}

TEST(ServiceSpecTest, StickyHeaderAndFieldTogetherIsRefused) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nsticky: {header: x-user, field: user}\n"),
            "service.yaml:6:9: sticky: give header or field, not both");
}

TEST(ServiceSpecTest, AStickyHeaderIsLowerCaseAndAFieldIsAPathOfOneToFourKeys) {
  ServiceSpec s = Ok(std::string(kTwo) + "traffic: {blue: 100}\nsticky: {field: a.b.c.d, salt: pepper}\n");
  EXPECT_EQ(s.sticky->field, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(s.sticky->salt, "pepper");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nsticky: {field: a.b.c.d.e}\n"),
            "service.yaml:6:17: sticky.field: 'a.b.c.d.e' must be a path of 1 to 4 object keys, such as "
            "parameters.user_id");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nsticky: {field: a..b}\n"),
            "service.yaml:6:17: sticky.field: 'a..b' must be a path of 1 to 4 object keys, such as parameters.user_id");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nsticky: {header: X-User}\n"),
            "service.yaml:6:18: sticky.header: 'X-User' is not a lower-case header name, such as x-user-id");
}

TEST(ServiceSpecTest, AMirrorToAVersionWithWeightIsRefused) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 90, green: 10}\nmirror: {version: green}\n"),
            "service.yaml:6:19: mirror.version: 'green' has weight 10; a mirrored version takes no live traffic");
}

TEST(ServiceSpecTest, AMirrorToAnUnknownVersionOrOneWithoutReplicasIsRefused) {
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nmirror: {version: gren}\n"),
            "service.yaml:6:19: mirror.version: 'gren' is not a version of this service (did you mean 'green'?)");
  EXPECT_EQ(Err("service: s\nversions:\n  a: {model: m@1}\n  b: {model: m@2, replicas: 0}\n"
                "traffic: {a: 100}\nmirror: {version: b}\n"),
            "service.yaml:6:19: mirror.version: 'b' has 0 replicas; a mirror needs at least 1");
  EXPECT_EQ(Err(std::string(kTwo) + "traffic: {blue: 100}\nmirror: {percent: 5}\n"),
            "service.yaml:6:9: mirror needs version: the version that gets the copies");
}

TEST(ServiceSpecTest, MirrorPercent100And0Point01PassAnd0And100Point01DoNot) {
  std::string base = std::string(kTwo) + "traffic: {blue: 100}\nmirror: {version: green, percent: ";
  EXPECT_EQ(Ok(base + "100}\n").mirror->percent_bp, 10000);
  EXPECT_EQ(Ok(base + "0.01}\n").mirror->percent_bp, 1);
  EXPECT_EQ(Err(base + "0}\n"),
            "service.yaml:6:35: mirror.percent: '0' must be more than 0 and at most 100, with at most two decimals");
  EXPECT_EQ(Err(base + "100.01}\n"),
            "service.yaml:6:35: mirror.percent: '100.01' must be more than 0 and at most 100, with at most two decimals");
}

TEST(ServiceSpecTest, TimeoutFrom1msTo10mAndMaxInflightFrom1To4096) {
  std::string base = "service: s\nversions:\n  a: {model: m@1}\n";
  EXPECT_EQ(Ok(base + "timeout: 1ms\n").timeout, Millis(1));
  EXPECT_EQ(Ok(base + "timeout: 10m\n").timeout, Millis(600'000));
  EXPECT_EQ(Err(base + "timeout: 0ms\n"), "service.yaml:4:10: timeout must be from 1ms to 10m00s, not '0ms'");
  EXPECT_EQ(Err(base + "timeout: 10m1ms\n"), "service.yaml:4:10: timeout must be from 1ms to 10m00s, not '10m1ms'");
  EXPECT_EQ(Err(base + "timeout: 30\n"),
            "service.yaml:4:10: bad duration '30' for timeout (use a number and a unit: 500ms, 10s, 5m, 2h)");
  EXPECT_EQ(Ok(base + "max_inflight: 1\n").max_inflight, 1);
  EXPECT_EQ(Ok(base + "max_inflight: 4096\n").max_inflight, 4096);
  EXPECT_EQ(Err(base + "max_inflight: 0\n"), "service.yaml:4:15: max_inflight must be a whole number from 1 to 4096, not '0'");
  EXPECT_EQ(Err(base + "max_inflight: 4097\n"),
            "service.yaml:4:15: max_inflight must be a whole number from 1 to 4096, not '4097'");
}

TEST(ServiceSpecTest, EveryErrorIsReportedUpTo50) {
  std::string text = "service: s\nversions:\n  a: {model: m@1}\n";
  for (int i = 0; i < 60; ++i) {
    text += 'k';  // appended piece by piece: GCC 12 warns -Wrestrict on "k" + to_string(i) (a false positive)
    text += std::to_string(i);
    text += ": 1\n";
  }
  std::string report = Err(text);
  EXPECT_EQ(std::count(report.begin(), report.end(), '\n'), 49);
  EXPECT_EQ(report.substr(0, report.find('\n')), "service.yaml:4:1: unknown key 'k0'");
}

TEST(ServiceSpecTest, FormatPercentWritesTheShortestDecimals) {
  EXPECT_EQ(serving::FormatPercent(10000), "100");
  EXPECT_EQ(serving::FormatPercent(1050), "10.5");
  EXPECT_EQ(serving::FormatPercent(1), "0.01");
  EXPECT_EQ(serving::FormatPercent(0), "0");
}

TEST(ServiceSpecTest, AuthNamesTheTokensVariableWhichTheParserDoesNotRead) {
  std::string base = "service: s\nversions:\n  a: {model: m@1}\n";
  ServiceSpec s = Ok(base + "auth: {token_env: SLUICE_TEST_NEVER_SET_TOKEN}\n");
  ASSERT_TRUE(s.auth);
  EXPECT_EQ(s.auth->token_env, "SLUICE_TEST_NEVER_SET_TOKEN");
  EXPECT_EQ(s.auth->token_env_pos.line, 4);
  EXPECT_EQ(s.auth->token_env_pos.column, 19);
  EXPECT_FALSE(Ok(base).auth);
}

TEST(ServiceSpecTest, AuthNeedsTokenEnvAsAVariableNameAndNothingElse) {
  std::string base = "service: s\nversions:\n  a: {model: m@1}\n";
  EXPECT_EQ(Err(base + "auth: {}\n"),
            "service.yaml:4:7: auth needs token_env: the environment variable that holds the infer token");
  EXPECT_EQ(Err(base + "auth: {token_env: 9LIVES}\n"),
            "service.yaml:4:19: auth.token_env: '9LIVES' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  EXPECT_EQ(Err(base + "auth: {token: X}\n"),
            "service.yaml:4:8: unknown key 'token' in auth (did you mean 'token_env'?)\n"
            "service.yaml:4:7: auth needs token_env: the environment variable that holds the infer token");
  EXPECT_EQ(Err(base + "auth: X\n"), "service.yaml:4:7: auth must be a mapping");
}

TEST(ServiceSpecTest, CacheEntriesFrom1To1000000AndTtlFrom1sTo1d) {
  std::string base = "service: s\nversions:\n  a: {model: m@1}\n";
  EXPECT_EQ(Ok(base + "cache: {entries: 1, ttl: 1s}\n").cache->entries, 1);
  EXPECT_EQ(Ok(base + "cache: {entries: 1000000}\n").cache->entries, 1'000'000);
  EXPECT_EQ(Ok(base + "cache: {ttl: 1s}\n").cache->ttl, Millis(1'000));
  EXPECT_EQ(Ok(base + "cache: {ttl: 24h}\n").cache->ttl, Millis(86'400'000));
  EXPECT_EQ(Err(base + "cache: {entries: 0}\n"),
            "service.yaml:4:18: cache.entries must be a whole number from 1 to 1000000, not '0'");
  EXPECT_EQ(Err(base + "cache: {entries: 1000001}\n"),
            "service.yaml:4:18: cache.entries must be a whole number from 1 to 1000000, not '1000001'");
  EXPECT_EQ(Err(base + "cache: {ttl: 999ms}\n"), "service.yaml:4:14: cache.ttl must be from 1.0s to 24h00m, not '999ms'");
  EXPECT_EQ(Err(base + "cache: {ttl: 24h1ms}\n"),
            "service.yaml:4:14: cache.ttl must be from 1.0s to 24h00m, not '24h1ms'");
}

TEST(ServiceSpecTest, AnEmptyCacheKeeps10000AnswersFor60s) {
  ServiceSpec s = Ok("service: s\nversions:\n  a: {model: m@1}\ncache: {}\n");
  ASSERT_TRUE(s.cache);
  EXPECT_EQ(s.cache->entries, 10'000);
  EXPECT_EQ(s.cache->ttl, Millis(60'000));
  EXPECT_FALSE(Ok("service: s\nversions:\n  a: {model: m@1}\n").cache);
}

TEST(ServiceSpecTest, StatsSampleIsAShareFrom0To1AndDefaultsTo1) {
  std::string base = "service: s\nversions:\n  a: {model: m@1}\n";
  EXPECT_EQ(Ok(base).stats_sample, 1.0);
  EXPECT_EQ(Ok(base + "stats: {sample: 0}\n").stats_sample, 0.0);
  EXPECT_EQ(Ok(base + "stats: {sample: 0.25}\n").stats_sample, 0.25);
  EXPECT_EQ(Ok(base + "stats: {sample: 1}\n").stats_sample, 1.0);
  EXPECT_EQ(Err(base + "stats: {sample: 1.01}\n"),
            "service.yaml:4:17: stats.sample: '1.01' must be a number from 0 to 1 (the share of requests profiled)");
  EXPECT_EQ(Err(base + "stats: {sample: -0.5}\n"),
            "service.yaml:4:17: stats.sample: '-0.5' must be a number from 0 to 1 (the share of requests profiled)");
  EXPECT_NE(Err(base + "stats: {samples: 1}\n").find("unknown key 'samples' in stats"), std::string::npos);
}
