// Plugin descriptors (exec/plugin_descriptor.h): the step types of a library
// read from LIB.json beside it, without loading it; the library loaded when an
// in-process attempt first starts. The real binary, the testkit plugin.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "exec/plugin_catalog.h"
#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kPlugins = SLUICE_TEST_PLUGINS;

// Whether this process has the file `path` mapped (a library it loaded).
bool Mapped(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0) return true;
  return false;
}

class PluginDescriptorTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("SLUICE_PLUGIN_PATH", "", 1); }
  // A copy of `from` as `folder`/libtestkit.so in the sandbox.
  std::string Copy(const std::string& folder, const std::string& from = "testkit/libtestkit.so") {
    fs::create_directories(box_.dir() / folder);
    fs::path to = box_.dir() / folder / "libtestkit.so";
    fs::copy_file(kPlugins + "/" + from, to, fs::copy_options::overwrite_existing);
    return to.string();
  }
  // A copy of testkit with its descriptor written by `sluice plugins describe`.
  std::string Described(const std::string& folder) {
    std::string library = Copy(folder);
    Output o = box_.Sluice({"plugins", "describe", library});
    EXPECT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(o.out, "described testkit 0.3.1 (7 step types) in " + library + ".json\n");
    return library;
  }
  Sandbox box_;
};

}  // namespace

TEST_F(PluginDescriptorTest, ACatalogReadsTheSameStepTypesFromTheDescriptorWithoutLoadingTheLibrary) {
  std::string described = Described("described");
  std::string plain = Copy("plain");
  auto from_descriptor = sluice::exec::PluginCatalog::Load({(box_.dir() / "described").string()});
  auto from_library = sluice::exec::PluginCatalog::Load({(box_.dir() / "plain").string()});
  EXPECT_TRUE(from_descriptor.refused().empty());
  const sluice::exec::PluginInfo* d = from_descriptor.Find("testkit");
  const sluice::exec::PluginInfo* l = from_library.Find("testkit");
  ASSERT_TRUE(d && l);
  EXPECT_TRUE(d->described());
  EXPECT_FALSE(l->described());
  EXPECT_EQ(d->version, l->version);
  ASSERT_EQ(d->step_types.size(), l->step_types.size());
  for (size_t i = 0; i < d->step_types.size(); ++i) {
    SCOPED_TRACE(l->step_types[i].id);
    EXPECT_EQ(d->step_types[i].id, l->step_types[i].id);
    EXPECT_EQ(d->step_types[i].revision, l->step_types[i].revision);
    EXPECT_EQ(d->step_types[i].description, l->step_types[i].description);
    EXPECT_EQ(d->step_types[i].params_schema, l->step_types[i].params_schema);
    EXPECT_EQ(d->step_types[i].outputs, l->step_types[i].outputs);
    EXPECT_NE(l->step_types[i].run, nullptr);  // a plugin without a descriptor is loaded as before
  }
  EXPECT_FALSE(Mapped(described));
  EXPECT_TRUE(Mapped(plain));
}

TEST_F(PluginDescriptorTest, ADescriptorOfAnotherBuildOfTheLibraryIsRefusedSayingHowToRewriteIt) {
  std::string library = Described("plugins");
  Copy("plugins", "testkit_next/libtestkit_next.so");  // rebuilt, the descriptor left as it was
  box_.Write("p.yaml", "name: demo\nsteps:\n  a: {uses: testkit/noop}\n");
  Output o = box_.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  std::string refused = "sluice: refused plugin " + library + ": its descriptor " + library +
                        ".json was written for another build of the library (";
  size_t at = o.err.find(refused);
  ASSERT_NE(at, std::string::npos) << o.err;
  std::string line = o.err.substr(at, o.err.find('\n', at) - at);
  std::string hint = "); rewrite it with 'sluice plugins describe " + library + "'";
  EXPECT_EQ(line.substr(line.size() - hint.size()), hint) << line;
  // Rewritten, it serves again.
  ASSERT_EQ(box_.Sluice({"plugins", "describe", library}).code, 0);
  EXPECT_EQ(box_.Sluice({"validate", "p.yaml"}).code, 0);
}

TEST_F(PluginDescriptorTest, PluginsDescribeRefusesALibrarySluiceWouldRefuseAndWritesNothing) {
  std::string library = Copy("plugins", "wrong_major/libwrong_major.so");
  Output o = box_.Sluice({"plugins", "describe", library});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "sluice: not described: plugin " + library + " was built for plugin ABI 99; this sluice speaks ABI 1\n");
  EXPECT_FALSE(fs::exists(library + ".json"));
}

TEST_F(PluginDescriptorTest, AnInProcessStepOfADescribedPluginRuns) {
  Described("plugins");
  box_.Write("p.yaml", R"(name: demo
steps:
  echo: {uses: testkit/echo, isolation: inprocess, with: {greeting: hi, epochs: 2}}
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json echo = StepOf(ShowRun(box_, "1"), "echo");
  EXPECT_EQ(echo["outputs"]["greeting"], "hi");
  EXPECT_EQ(echo["metrics"].size(), 2u);
}

TEST_F(PluginDescriptorTest, AnInProcessAttemptFailsWhenTheLibraryIsNotWhatItsDescriptorSays) {
  std::string library = Described("plugins");
  // The same library bytes, so the catalog takes it; a table that is not the library's.
  std::ifstream in(library + ".json");
  json descriptor = json::parse(in);
  descriptor["version"] = "9.9.9";
  box_.Write("plugins/libtestkit.so.json", descriptor.dump());
  box_.Write("p.yaml", "name: demo\nsteps:\n  echo: {uses: testkit/echo, isolation: inprocess}\n");
  ASSERT_EQ(box_.Sluice({"validate", "p.yaml"}).code, 0);
  EXPECT_EQ(box_.Sluice({"run", "p.yaml"}).code, 1);
  json echo = StepOf(ShowRun(box_, "1"), "echo");
  EXPECT_EQ(echo["state"], "failed");
  EXPECT_EQ(echo["reason"], "plugin " + library + " does not match its descriptor " + library +
                                ".json (its version is '0.3.1', the descriptor says '9.9.9'); rewrite it with "
                                "'sluice plugins describe " + library + "'");
}
