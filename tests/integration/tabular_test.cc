// Tabular TorchScript models ([N, F] with feature names) in the model
// server, and end to end through the serving gateway beside a command
// version (issue 15: "a tabular TorchScript model and a command version serve
// through the same route"). The models are real TorchScript files written by
// tests/common/make_tabular_model with weights chosen here, so every answer
// is computed by libtorch in the real `sluice serve-model` and checked
// against arithmetic done in the test.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "../common/free_port.h"
#include "harness.h"
#include "store/open.h"

namespace sluice::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The model: three features, two classes.
//   setosa_score    = sepal + 0.5
//   virginica_score = petal + width
const char* kFeatures = "sepal,petal,width";
const char* kWeight = "1,0,0/0,1,1";
const char* kBias = "0.5,0";

// softmax([sepal + 0.5, petal + width]) for one row.
std::vector<double> Expected(double sepal, double petal, double width) {
  double a = sepal + 0.5, b = petal + width;
  double m = std::max(a, b), ea = std::exp(a - m), eb = std::exp(b - m);
  return {ea / (ea + eb), eb / (ea + eb)};
}

// Writes a model with make_tabular_model; `extra` adds flags.
void MakeModel(const fs::path& out, const std::vector<std::string>& extra = {"--classes", "setosa,virginica"}) {
  std::string cmd = std::string(MAKE_TABULAR_MODEL) + " " + out.string() + " --features " + kFeatures + " --weight " +
                    kWeight + " --bias " + kBias;
  for (const std::string& e : extra) cmd += " " + e;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string Matrix(json data, json shape) {
  return json{{"id", "r1"},
              {"inputs", {{{"name", "input"}, {"shape", shape}, {"datatype", "FP32"}, {"data", data}}}}}
      .dump();
}

class TabularModelTest : public ::testing::Test {
 protected:
  void SetUp() override { ::unsetenv("SLUICE_PLUGIN_PATH"); }
  void TearDown() override {
    for (pid_t pid : servers_)
      if (::waitpid(pid, nullptr, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        Sandbox::Reap(pid);
      }
  }

  // `sluice serve-model FILE --name iris ARGS --port P`, ready.
  void Serve(const fs::path& model, const std::vector<std::string>& args = {}) {
    port_ = FreePort();
    std::vector<std::string> all = {"serve-model", model.string(), "--name", "iris", "--port", std::to_string(port_)};
    all.insert(all.end(), args.begin(), args.end());
    servers_.push_back(box_.Start(all, "serve.log"));
    httplib::Client c("127.0.0.1", port_);
    ASSERT_TRUE(WaitFor([&] {
      auto r = c.Get("/v2/health/ready");
      return r && r->status == 200;
    })) << box_.Read("serve.log.err");
  }

  std::pair<int, json> Post(const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Post("/v2/models/iris/infer", body, "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  void Stop() {
    ASSERT_FALSE(servers_.empty());
    ::kill(servers_.back(), SIGTERM);
    EXPECT_EQ(Sandbox::Reap(servers_.back()), 0) << box_.Read("serve.log.err");
    servers_.pop_back();
  }

  Sandbox box_;
  int port_ = 0;
  std::vector<pid_t> servers_;
};

TEST_F(TabularModelTest, AClassifierAnswersProbabilitiesLabelsAndClassesComputedByTheModel) {
  MakeModel(box_.dir() / "iris.pt");
  Serve(box_.dir() / "iris.pt");
  // Nested and flat data are the same request.
  for (json data : {json::parse("[[1, 0, 0], [0, 2, 1.5]]"), json::parse("[1, 0, 0, 0, 2, 1.5]")}) {
    auto [status, out] = Post(Matrix(data, {2, 3}));
    ASSERT_EQ(status, 200) << out.dump();
    EXPECT_EQ(out["id"], "r1");
    EXPECT_EQ(out["model_name"], "iris");
    const json& p = out["outputs"][0];
    EXPECT_EQ(p["name"], "probabilities");
    EXPECT_EQ(p["shape"], json({2, 2}));
    std::vector<double> r0 = Expected(1, 0, 0), r1 = Expected(0, 2, 1.5);
    EXPECT_NEAR(p["data"][0].get<double>(), r0[0], 1e-5);
    EXPECT_NEAR(p["data"][1].get<double>(), r0[1], 1e-5);
    EXPECT_NEAR(p["data"][2].get<double>(), r1[0], 1e-5);
    EXPECT_NEAR(p["data"][3].get<double>(), r1[1], 1e-5);
    EXPECT_EQ(out["outputs"][1]["data"], json({0, 1}));
    EXPECT_EQ(out["outputs"][2]["data"], json({"setosa", "virginica"}));
  }
  Stop();
}

TEST_F(TabularModelTest, OneInputPerFeatureNameInAnyOrderGivesTheSameAnswerAsOneMatrix) {
  MakeModel(box_.dir() / "iris.pt");
  Serve(box_.dir() / "iris.pt");
  auto column = [](const char* name, json data) {
    return json{{"name", name}, {"shape", {data.size()}}, {"datatype", "FP32"}, {"data", data}};
  };
  json per_feature = {{"inputs", {column("width", {0, 1.5}), column("sepal", {1, 0}), column("petal", {0, 2})}}};
  auto [status, by_name] = Post(per_feature.dump());
  ASSERT_EQ(status, 200) << by_name.dump();
  auto [status2, by_matrix] = Post(Matrix({1, 0, 0, 0, 2, 1.5}, {2, 3}));
  ASSERT_EQ(status2, 200);
  EXPECT_EQ(by_name["outputs"], by_matrix["outputs"]);
  Stop();
}

TEST_F(TabularModelTest, AModelWithoutClassesAnswersItsRawOutputAsFP32) {
  MakeModel(box_.dir() / "scores.pt", {});
  Serve(box_.dir() / "scores.pt");
  auto [status, out] = Post(Matrix({{1, 2, 3}, {-1, 0.25, 0.25}}, {2, 3}));
  ASSERT_EQ(status, 200) << out.dump();
  ASSERT_EQ(out["outputs"].size(), 1u);
  EXPECT_EQ(out["outputs"][0]["name"], "output");
  EXPECT_EQ(out["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(out["outputs"][0]["shape"], json({2, 2}));
  EXPECT_EQ(out["outputs"][0]["data"], json({1.5, 5.0, -0.5, 0.5}));
  Stop();
}

TEST_F(TabularModelTest, MetadataDescribesTheInputWithItsFeatureCountAndNames) {
  MakeModel(box_.dir() / "scores.pt", {});
  Serve(box_.dir() / "scores.pt");
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/v2/models/iris");
  ASSERT_TRUE(r);
  json meta = json::parse(r->body);
  EXPECT_EQ(meta["inputs"], json::parse(R"([{"name": "input", "datatype": "FP32", "shape": [-1, 3],
                                             "parameters": {"feature_names": ["sepal", "petal", "width"]}}])"));
  EXPECT_EQ(meta["outputs"], json::parse(R"([{"name": "output", "datatype": "FP32", "shape": [-1, 2]}])"));
  Stop();
}

TEST_F(TabularModelTest, BadRequestsAreRefusedWithAReasonNamingTheProblem) {
  MakeModel(box_.dir() / "iris.pt");
  Serve(box_.dir() / "iris.pt");
  auto error = [&](const std::string& body) {
    auto [status, out] = Post(body);
    EXPECT_EQ(status, 400) << out.dump();
    return out.value("error", "");
  };
  auto column = [](const char* name, json data, const char* type = "FP32") {
    return json{{"name", name}, {"shape", {data.size()}}, {"datatype", type}, {"data", data}};
  };
  EXPECT_EQ(error(Matrix({1, 2, 3, 4}, {1, 4})), "inputs[0].shape must be [N, 3], not [1,4]");
  EXPECT_EQ(error(json{{"inputs", {{{"name", "input"}, {"shape", {1, 3}}, {"datatype", "INT64"}, {"data", {1, 2, 3}}}}}}.dump()),
            "inputs[0].datatype must be \"FP32\", not \"INT64\"");
  EXPECT_EQ(error(json{{"inputs", {column("sepal", {1}), column("petals", {1}), column("width", {1})}}}.dump()),
            "inputs[1].name 'petals' is not a feature of this model; its features are sepal, petal, width");
  EXPECT_EQ(error(json{{"inputs", {column("sepal", {1}), column("width", {1})}}}.dump()),
            "feature 'petal' has no input; give one input per feature (sepal, petal, width) or one input of shape [N, 3]");
  EXPECT_EQ(error(json{{"inputs", {column("sepal", {1}), column("sepal", {1}), column("width", {1})}}}.dump()),
            "inputs[1]: feature 'sepal' is given twice");
  EXPECT_EQ(error(json{{"inputs", {column("sepal", {1, 2}), column("petal", {1}), column("width", {1})}}}.dump()),
            "inputs[1].shape is [1] but inputs[0] has 2 rows; every feature needs the same N");
  EXPECT_EQ(error(json{{"inputs", {column("sepal", {1}), column("petal", {1}, "FP64"), column("width", {1})}}}.dump()),
            "inputs[1].datatype must be \"FP32\", not \"FP64\"");
  EXPECT_EQ(error(Matrix({1, 2}, {1, 3})), "inputs[0].data holds 2 numbers; shape [1,3] needs 3");
  EXPECT_EQ(error(Matrix({1, "a", 3}, {1, 3})), "inputs[0].data holds string values; FP32 data must be numbers");
  // Rows: exactly max_images (256) is answered, one more is refused.
  EXPECT_EQ(Post(Matrix(std::vector<float>(256 * 3, 0.5f), {256, 3})).first, 200);
  EXPECT_EQ(error(Matrix(std::vector<float>(257 * 3, 0.5f), {257, 3})),
            "inputs[0].shape asks for 257 rows; 1 to 256 are allowed per request");
  EXPECT_EQ(Post(Matrix({1, 0, 0}, {1, 3})).first, 200);  // still serving
  Stop();
}

TEST_F(TabularModelTest, AModelWhoseClassesDoNotMatchItsOutputDoesNotStart) {
  MakeModel(box_.dir() / "bad.pt", {"--classes", "one,two,three"});
  Output o = box_.Sluice({"serve-model", (box_.dir() / "bad.pt").string(), "--port", "0"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("sluice_classes names 3 classes but the model's output is [1, 2]"), std::string::npos) << o.err;
}

// ----------------------------------------------------------- through the gateway

// A background gateway started by `services apply`, and what it supervises:
// stopped with `sluice gateway stop`; on a failed ASSERT, killed by pid
// (gateway and replicas) so no process outlives the test.
class GatewayTabularTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SLUICE_PLUGIN_PATH");
    port_ = FreePort();
  }
  void TearDown() override {
    for (int pid : pids_)
      if (pid > 0 && ProcessAlive(pid)) ::kill(pid, SIGKILL);
  }

  // Applies service.yaml, records the gateway's pid and waits until each of
  // `versions` answers ready through the gateway; records their replicas' pids.
  void ApplyAndWait(const std::vector<std::string>& versions) {
    Output applied = box_.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port_)});
    ASSERT_EQ(applied.code, 0) << applied.out << applied.err;
    auto store = store::Store::Open((box_.home() / "sluice.db").string());
    ASSERT_TRUE(store.ok());
    auto row = (*store)->gateway().Read();
    ASSERT_TRUE(row.ok() && row->has_value());
    pids_.push_back(int((*row)->pid));
    httplib::Client c("127.0.0.1", port_);
    for (const std::string& v : versions) {
      bool ready = WaitFor(
          [&] {
            auto r = c.Get("/v2/models/mixed/versions/" + v + "/ready");
            return r && r->status == 200;
          },
          std::chrono::seconds(60));
      auto replicas = (*store)->services().Replicas("mixed");
      if (replicas.ok())
        for (const auto& r : *replicas) pids_.push_back(r.pid);
      ASSERT_TRUE(ready) << "version " << v << " never became ready: " << box_.Sluice({"services", "show", "mixed"}).out;
    }
  }

  void StopGateway() {
    Output stopped = box_.Sluice({"gateway", "stop"});
    EXPECT_EQ(stopped.code, 0) << stopped.err;
    for (int pid : pids_) EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, std::chrono::seconds(15))) << pid;
  }

  Sandbox box_;
  int port_ = 0;
  std::vector<int> pids_;  // the gateway, then replicas
};

TEST_F(GatewayTabularTest, ATabularTorchScriptModelAndACommandVersionServeThroughTheSameRoute) {
  MakeModel(box_.dir() / "iris.pt");
  box_.Write("service.yaml", std::string("service: mixed\n"
                                         "versions:\n"
                                         "  tab: {model: iris.pt}\n"
                                         "  cmd: {command: [") +
                                 FAKE_OIP_SERVER + ", --label, cmd]}\n" + "traffic: {tab: 50, cmd: 50}\n");
  ApplyAndWait({"tab", "cmd"});
  httplib::Client c("127.0.0.1", port_);
  const std::string body = Matrix({{1, 0, 0}, {0, 2, 1.5}}, {2, 3});
  auto check_model_answer = [&](const json& out) {
    EXPECT_EQ(out["model_name"], "mixed");
    const json& p = out["outputs"][0];
    EXPECT_EQ(p["shape"], json({2, 2}));
    std::vector<double> r1 = Expected(0, 2, 1.5);
    EXPECT_NEAR(p["data"][2].get<double>(), r1[0], 1e-5);
    EXPECT_NEAR(p["data"][3].get<double>(), r1[1], 1e-5);
    EXPECT_EQ(out["outputs"][2]["data"], json({"setosa", "virginica"}));
  };

  // Pinned by path.
  auto tab = c.Post("/v2/models/mixed/versions/tab/infer", body, "application/json");
  ASSERT_TRUE(tab);
  ASSERT_EQ(tab->status, 200) << tab->body;
  EXPECT_EQ(tab->get_header_value("x-sluice-version"), "tab");
  check_model_answer(json::parse(tab->body));
  auto cmd = c.Post("/v2/models/mixed/versions/cmd/infer", body, "application/json");
  ASSERT_TRUE(cmd);
  ASSERT_EQ(cmd->status, 200) << cmd->body;
  EXPECT_EQ(json::parse(cmd->body)["fake"]["label"], "cmd");

  // By weight, 50/50 on the one route: both versions answer, each its own way.
  std::map<std::string, int> by_version;
  for (int i = 0; i < 40; ++i) {
    auto r = c.Post("/v2/models/mixed/infer", body, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    std::string v = r->get_header_value("x-sluice-version");
    ++by_version[v];
    json out = json::parse(r->body);
    if (v == "tab") check_model_answer(out);
    else EXPECT_EQ(out["fake"]["label"], "cmd") << v;
  }
  EXPECT_EQ(by_version.size(), 2u);  // 40 requests at 50/50: one version missing has chance 2^-39
  EXPECT_EQ(by_version["tab"] + by_version["cmd"], 40);

  // Metadata through the gateway is the model server's: the features.
  auto meta = c.Get("/v2/models/mixed/versions/tab");
  ASSERT_TRUE(meta);
  ASSERT_EQ(meta->status, 200) << meta->body;
  EXPECT_EQ(json::parse(meta->body)["inputs"][0]["parameters"]["feature_names"], json({"sepal", "petal", "width"}));

  // A bad request reaches the model server and comes back with its reason.
  auto bad = c.Post("/v2/models/mixed/versions/tab/infer", Matrix({1, 2, 3, 4}, {1, 4}), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"], "inputs[0].shape must be [N, 3], not [1,4]");
  StopGateway();
}

// The image classifier torch/train makes, a tabular model and a command
// version: three kinds of version behind one service. The image version's
// labels are the ones torch/evaluate predicted for the same test images.
TEST_F(GatewayTabularTest, AnImageModelATabularModelAndACommandVersionServeThroughTheSameService) {
  fs::copy(SLUICE_SOURCE_DIR "/examples/fashion-mnist", box_.dir() / "example", fs::copy_options::recursive);
  Output trained = box_.Sluice({"run", "example/pipeline.yaml", "-p", "epochs=1", "-p", "train_limit=300", "-p",
                                "test_limit=100", "-p", "min_accuracy=0"});
  ASSERT_EQ(trained.code, 0) << trained.out << trained.err;
  json run = ShowRun(box_, "latest");
  std::ifstream image_file(fs::path(StepOf(run, "ingest-test")["outputs"]["dataset"].get<std::string>()) / "image.bin",
                           std::ios::binary);
  std::string images(std::istreambuf_iterator<char>(image_file), {});
  ASSERT_EQ(images.size(), 100u * 784);
  std::ifstream predictions_file(StepOf(run, "evaluate")["outputs"]["predictions"].get<std::string>());
  json predictions = json::parse(predictions_file)["predictions"];

  MakeModel(box_.dir() / "iris.pt");
  box_.Write("service.yaml", std::string("service: mixed\n"
                                         "versions:\n"
                                         "  img: {model: fashion@1}\n"
                                         "  tab: {model: iris.pt}\n"
                                         "  cmd: {command: [") +
                                 FAKE_OIP_SERVER + ", --label, cmd]}\n" + "traffic: {img: 0, tab: 50, cmd: 50}\n");
  ApplyAndWait({"img", "tab", "cmd"});
  httplib::Client c("127.0.0.1", port_);

  json pixels = json::array();
  for (size_t i = 0; i < 10 * 784; ++i) pixels.push_back(uint8_t(images[i]) / 255.0f);
  auto img = c.Post("/v2/models/mixed/versions/img/infer", Matrix(pixels, {10, 1, 28, 28}), "application/json");
  ASSERT_TRUE(img);
  ASSERT_EQ(img->status, 200) << img->body;
  EXPECT_EQ(img->get_header_value("x-sluice-version"), "img");
  json out = json::parse(img->body);
  EXPECT_EQ(out["model_version"], "1");
  EXPECT_EQ(out["outputs"][0]["shape"], json({10, 10}));
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(out["outputs"][1]["data"][i], predictions[i]) << "image " << i;

  auto tab = c.Post("/v2/models/mixed/versions/tab/infer", Matrix({0, 2, 1.5}, {1, 3}), "application/json");
  ASSERT_TRUE(tab);
  ASSERT_EQ(tab->status, 200) << tab->body;
  EXPECT_NEAR(json::parse(tab->body)["outputs"][0]["data"][1].get<double>(), Expected(0, 2, 1.5)[1], 1e-5);
  auto cmd = c.Post("/v2/models/mixed/versions/cmd/infer", "{}", "application/json");
  ASSERT_TRUE(cmd);
  EXPECT_EQ(json::parse(cmd->body)["fake"]["label"], "cmd");
  // The image version has weight 0: the route's traffic goes to the others.
  for (int i = 0; i < 10; ++i) {
    auto r = c.Post("/v2/models/mixed/infer", Matrix({0, 2, 1.5}, {1, 3}), "application/json");
    ASSERT_TRUE(r);
    EXPECT_NE(r->get_header_value("x-sluice-version"), "img");
  }
  StopGateway();
}

// A model file the server refuses (its classes do not match its output):
// the replica exits before it listens, the supervisor restarts it with
// backoff, the reason is in the replica's log, and the route answers 503.
TEST_F(GatewayTabularTest, AModelVersionThatCannotStartBacksOffWithItsReasonInTheReplicaLog) {
  MakeModel(box_.dir() / "bad.pt", {"--classes", "one,two,three"});
  box_.Write("service.yaml", "service: mixed\nversions:\n  bad: {model: bad.pt}\n");
  Output applied = box_.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port_)});
  ASSERT_EQ(applied.code, 0) << applied.out << applied.err;
  auto store = store::Store::Open((box_.home() / "sluice.db").string());
  ASSERT_TRUE(store.ok());
  auto row = (*store)->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  pids_.push_back(int((*row)->pid));
  std::vector<store::ReplicaRow> replicas;
  ASSERT_TRUE(WaitFor([&] {
    auto r = (*store)->services().Replicas("mixed");
    if (!r.ok() || r->empty()) return false;
    replicas = *r;
    if (replicas[0].pid > 0) pids_.push_back(replicas[0].pid);
    return replicas[0].restarts >= 1 && replicas[0].state == "backoff";
  }));
  EXPECT_EQ(replicas[0].last_exit, "exited with status 1");
  std::string log = box_.Read(".sluice/services/mixed/bad.0.log");
  EXPECT_NE(log.find("bad.pt: sluice_classes names 3 classes but the model's output is [1, 2]"), std::string::npos) << log;
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Post("/v2/models/mixed/infer", Matrix({1, 2, 3}, {1, 3}), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  StopGateway();
}

}  // namespace
}  // namespace sluice::testing
