// The model registry, a run's artifacts and the lineage over HTTP: a real
// `sluice serve`, real runs that publish artifacts and register a model,
// and the CLI (`sluice models`) reading what the API changed.
#include <gtest/gtest.h>
#include <httplib.h>

#include "harness.h"
#include "serve_fixture.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;

// prepare -> train (registers model 'fashion', measures loss per epoch) ->
// evaluate (an SVG picture holding a script, a CSV).
const char* kReg = R"(name: reg
params:
  seed: {type: int, default: 1}
steps:
  prepare:
    run: echo data ${{ params.seed }} > "$SLUICE_OUTPUTS_DIR/data"
    outputs: {data: file}
  train:
    needs: [prepare]
    run: ["sh", "-c", "{ cat \"$0\"; echo trained; } > \"$SLUICE_OUTPUTS_DIR/model\"; echo '{\"accuracy\": 0.9, \"loss/0\": 0.1}' > \"$SLUICE_OUTPUTS_DIR/scores\"", "${{ steps.prepare.outputs.data }}"]
    outputs: {model: model, scores: metrics}
    register: {name: fashion}
  evaluate:
    needs: [train]
    run: ["sh", "-c", "mkdir \"$SLUICE_OUTPUTS_DIR/report\"; printf '<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>' > \"$SLUICE_OUTPUTS_DIR/report/confusion.svg\"; printf 'a,b\\n1,2\\n' > \"$SLUICE_OUTPUTS_DIR/report/table.csv\"; cat \"$0\" > /dev/null", "${{ steps.train.outputs.model }}"]
    outputs: {report: dir}
)";

class ModelsApiTest : public ServeTest {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(box_.dir() / "pipelines");
    box_.Write("pipelines/reg.yaml", kReg);
    Serve({});
  }
  // Runs reg with `seed` to success; its id.
  int64_t Run(int seed) {
    int64_t id = StartRun("reg", {{"seed", seed}});
    EXPECT_TRUE(WaitForRun(id, "succeeded")) << box_.Read("serve.log");
    return id;
  }
};

TEST_F(ModelsApiTest, TheModelsListShowsEachVersionWithItsKeyMetricsAliasesAndRun) {
  int64_t first = Run(1), second = Run(2);
  ASSERT_EQ(box_.Sluice({"models", "promote", "fashion", "1", "--alias", "production"}).code, 0);
  json models = GetJson("/api/models")["models"];
  ASSERT_EQ(models.size(), 1u) << models;
  EXPECT_EQ(models[0]["name"], "fashion");
  ASSERT_EQ(models[0]["versions"].size(), 2u);
  json v1 = models[0]["versions"][0], v2 = models[0]["versions"][1];
  EXPECT_EQ(v1["version"], 1);
  EXPECT_EQ(v1["run"], first);
  EXPECT_EQ(v2["run"], second);
  EXPECT_EQ(v1["step"], "train");
  EXPECT_EQ(v1["aliases"], json::array({"production"}));
  EXPECT_EQ(v1["metrics"], json({{"accuracy", 0.9}})) << "per-class figures (a '/') stay on the model's page";
  EXPECT_EQ(models[0]["aliases"][0]["alias"], "production");
  EXPECT_EQ(models[0]["aliases"][0]["version"], 1);
  EXPECT_EQ(models[0]["aliases"][0]["updated_by"].get<std::string>().rfind("user:", 0), 0u);
}

TEST_F(ModelsApiTest, AModelsPageHasAllItsVersionsMetricsAndAnUnknownModelIsNotFound) {
  Run(1);
  json model = GetJson("/api/models/fashion");
  EXPECT_EQ(model["name"], "fashion");
  ASSERT_EQ(model["versions"].size(), 1u);
  EXPECT_EQ(model["versions"][0]["metrics"], json({{"accuracy", 0.9}, {"loss/0", 0.1}}));
  EXPECT_EQ(model["aliases"], json::array());
  auto missing = Get("/api/models/nothing");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["message"], "no model 'nothing' (sluice models lists them)");
}

TEST_F(ModelsApiTest, AnAliasSetOverTheApiIsWhatSluiceModelsShowsWithWhoSetIt) {
  Run(1);
  Run(2);
  Output made = box_.Sluice({"token", "create", "--scope", "run", "--name", "ci"});
  std::string ci = made.out.substr(made.out.find("slc_"), 4 + 64);
  auto r = client_->Post("/api/models/fashion/aliases", {{"Authorization", "Bearer " + ci}},
                         json{{"alias", "production"}, {"version", 2}}.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["updated_by"], "token:ci");
  json cli = json::parse(box_.Sluice({"models", "--format", "json"}).out);
  ASSERT_EQ(cli.size(), 2u);
  EXPECT_EQ(cli[1]["aliases"], json::array({"production"}));
  json alias = GetJson("/api/models/fashion")["aliases"][0];
  EXPECT_EQ(alias["updated_by"], "token:ci");
  EXPECT_GT(alias["updated_ms"].get<int64_t>(), 0);
  EXPECT_NE(box_.Read("serve.log").find("path=/api/models/fashion/aliases status=200 who=ci"), std::string::npos)
      << box_.Read("serve.log");
}

TEST_F(ModelsApiTest, ABadAliasRequestIsRefusedWithAMessageThatSaysWhy) {
  Run(1);
  auto expect = [&](const json& body, int status, const std::string& message, const std::string& path) {
    auto r = Post(path, body.dump());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body;
    if (status != 200) {
      EXPECT_EQ(json::parse(r->body)["error"]["message"], message) << body;
    }
  };
  const std::string p = "/api/models/fashion/aliases";
  expect({{"alias", "production"}, {"version", 7}}, 404, "model 'fashion' has no version 7", p);
  expect({{"alias", "production"}, {"version", 1}}, 404, "no model 'other' (sluice models lists them)",
         "/api/models/other/aliases");
  expect({{"alias", "Prod uction"}, {"version", 1}}, 400,
         "alias 'Prod uction' must match [a-z0-9][a-z0-9-]* (at most 64 characters)", p);
  expect({{"alias", std::string(65, 'a')}, {"version", 1}}, 400,
         "alias '" + std::string(65, 'a') + "' must match [a-z0-9][a-z0-9-]* (at most 64 characters)", p);
  expect({{"alias", "latest"}, {"version", 1}}, 400, "alias 'latest' is taken: NAME@latest is the newest version in use", p);
  expect({{"alias", "production"}, {"version", 0}}, 400, "version 0 is not a version number (1, 2, ...)", p);
  expect({{"alias", "production"}, {"version", "1"}}, 400, "expected {\"alias\": \"production\", \"version\": 3}", p);
  ASSERT_EQ(box_.Sluice({"models", "archive", "fashion@1"}).code, 0);
  expect({{"alias", "production"}, {"version", 1}}, 409,
         "fashion@1 is archived; an alias points only at a version in use (sluice models unarchive fashion@1)", p);
  ASSERT_EQ(box_.Sluice({"models", "unarchive", "fashion@1"}).code, 0);
  expect({{"alias", std::string(64, 'a')}, {"version", 1}}, 200, "", p);
  ASSERT_EQ(box_.Sluice({"models", "archive", "fashion@1"}).code, 1) << "an alias points at it";
}

TEST_F(ModelsApiTest, ARunsArtifactsAreListedWithStepNameKindSizeAndHashAndFilteredByStep) {
  int64_t id = Run(1);
  json all = GetJson("/api/runs/" + std::to_string(id) + "/artifacts")["artifacts"];
  ASSERT_EQ(all.size(), 4u) << all;
  std::map<std::string, json> by_name;
  for (const json& a : all) by_name[a["name"].get<std::string>()] = a;
  EXPECT_EQ(by_name["data"]["step"], "prepare");
  EXPECT_EQ(by_name["data"]["kind"], "file");
  EXPECT_EQ(by_name["data"]["size"], 7);
  EXPECT_EQ(by_name["data"]["hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(by_name["model"]["kind"], "model");
  EXPECT_EQ(by_name["report"]["kind"], "dir");
  EXPECT_EQ(by_name["report"]["role"], "produced");
  json train = GetJson("/api/runs/" + std::to_string(id) + "/artifacts?step=train")["artifacts"];
  EXPECT_EQ(train.size(), 2u);
  EXPECT_TRUE(GetJson("/api/runs/" + std::to_string(id) + "/artifacts?step=nothing")["artifacts"].empty());
  EXPECT_EQ(Get("/api/runs/99/artifacts")->status, 404);
}

TEST_F(ModelsApiTest, AnSvgArtifactIsServedAsAPictureAttachmentUnderASandbox) {
  int64_t id = Run(1);
  json report = GetJson("/api/runs/" + std::to_string(id) + "/artifacts?step=evaluate")["artifacts"][0];
  std::string base = "/api/artifacts/" + report["hash"].get<std::string>();
  auto svg = Get(base + "?path=confusion.svg");
  ASSERT_EQ(svg->status, 200);
  EXPECT_EQ(svg->get_header_value("Content-Type"), "image/svg+xml");
  EXPECT_EQ(svg->get_header_value("Content-Disposition"), "attachment; filename=\"confusion.svg\"");
  EXPECT_EQ(svg->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(svg->get_header_value("Content-Security-Policy"), "sandbox");
  auto csv = Get(base + "?path=table.csv");
  EXPECT_EQ(csv->get_header_value("Content-Type"), "application/octet-stream");
  EXPECT_EQ(csv->body, "a,b\n1,2\n");
}

TEST_F(ModelsApiTest, TheLineageOfAModelVersionAnArtifactOrAStepIsItsNodesAndEdges) {
  int64_t id = Run(1);
  json up = GetJson("/api/lineage?model=fashion&version=1");
  EXPECT_EQ(up["direction"], "upstream");
  EXPECT_EQ(up["artifacts"].size(), 2u) << up;  // the model and the data it was made from
  ASSERT_EQ(up["attempts"].size(), 2u);
  EXPECT_EQ(up["edges"].size(), 3u);
  std::string model = GetJson("/api/models/fashion")["versions"][0]["artifact"];
  json down = GetJson("/api/lineage?artifact=" + model + "&direction=downstream");
  ASSERT_EQ(down["attempts"].size(), 1u);
  EXPECT_EQ(down["attempts"][0]["step"], "evaluate");
  json step = GetJson("/api/lineage?run=" + std::to_string(id) + "&step=evaluate");
  EXPECT_EQ(step["attempts"].size(), 3u);
  EXPECT_EQ(Get("/api/lineage?model=fashion&version=production")->status, 404) << "no alias yet";
}

TEST_F(ModelsApiTest, ABadLineageQueryIsRefusedWithAMessageThatSaysWhy) {
  Run(1);
  auto expect = [&](const std::string& query, int status, const std::string& message) {
    auto r = Get("/api/lineage" + query);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << query;
    EXPECT_EQ(json::parse(r->body)["error"]["message"], message) << query;
  };
  const std::string both = "name one start: artifact=HASH, run=ID&step=STEP, or model=NAME&version=VERSION";
  expect("", 400, both);
  expect("?run=1&step=train&model=fashion&version=1", 400, both);
  expect("?artifact=abc", 400, "artifact is a SHA-256 hash (64 hex digits)");
  expect("?artifact=" + std::string(64, 'a'), 404, "no artifact " + std::string(64, 'a') + " in the store");
  expect("?run=x&step=a", 400, "run is a run id (1, 2, ...), not 'x'");
  expect("?run=1", 400, "run=ID needs step=STEP");
  expect("?model=fashion", 400, "model=NAME needs version=VERSION (a number or an alias)");
  expect("?model=fashion&version=9", 404, "model 'fashion' has no version '9'");
  expect("?run=1&step=train&direction=sideways", 400, "direction is upstream or downstream, not 'sideways'");
}

}  // namespace
}  // namespace sluice::testing
