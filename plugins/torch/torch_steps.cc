// torch: first-party libtorch steps, built with the SDK like anyone else's.
//   torch/train      trains the image classifier of net.h on a dataset; checkpoints each epoch
//   torch/evaluate   accuracy, per-class precision and recall, confusion matrix; an accuracy gate
//   torch/export     TorchScript for serving, plus an int8 dynamically quantized variant
//   torch/serve      the Open Inference Protocol v2 model server (model_server.h)
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include <sluice/plugin.hpp>

#include "dataset.h"
#include "model_server.h"
#include "net.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::torchplugin {
namespace {

// Images as float [N, C, H, W] in [0, 1] and labels as int64 [N].
struct Examples {
  torch::Tensor images, labels;
  std::vector<int64_t> shape;  // C, H, W
  int64_t size() const { return images.size(0); }
};

Examples ReadExamples(const std::string& dir, const std::string& image_column, const std::string& label_column,
                      int64_t limit) {
  data::Dataset d = data::ReadDataset(dir);
  const data::Column* image = d.Find(image_column);
  const data::Column* label = d.Find(label_column);
  if (!image) throw std::runtime_error(dir + ": no column '" + image_column + "'");
  if (!label) throw std::runtime_error(dir + ": no column '" + label_column + "'");
  if (image->dtype != data::DType::kUInt8)
    throw std::runtime_error(dir + ": column '" + image_column + "' is " + data::DTypeName(image->dtype) +
                             "; images must be uint8");
  Examples e;
  e.shape = image->shape;
  if (e.shape.size() == 2) e.shape.insert(e.shape.begin(), 1);
  if (e.shape.size() != 3)
    throw std::runtime_error(dir + ": column '" + image_column + "' must hold [height, width] or [channels, height, width] images");
  int64_t rows = limit > 0 ? std::min(limit, d.rows) : d.rows;
  if (rows == 0) throw std::runtime_error(dir + ": the dataset has no rows");
  std::vector<int64_t> dims{rows};
  dims.insert(dims.end(), e.shape.begin(), e.shape.end());
  e.images = torch::from_blob(const_cast<uint8_t*>(image->u8.data()), dims, torch::kUInt8).to(torch::kFloat32).div_(255);
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    double v = label->Number(r);
    if (!(v >= 0) || v != std::floor(v))
      throw std::runtime_error(dir + ": row " + std::to_string(r) + " has label " + label->Text(r) +
                               "; labels must be class numbers 0, 1, ...");
    labels[static_cast<size_t>(r)] = static_cast<int64_t>(v);
  }
  e.labels = torch::tensor(labels, torch::kInt64);
  return e;
}

// Predicted classes of `images`, in batches, with the model in eval mode.
torch::Tensor Predict(torch::jit::Module& m, const torch::Tensor& images, int64_t batch = 1000) {
  torch::NoGradGuard no_grad;
  bool was_training = m.is_training();
  m.eval();
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += batch)
    parts.push_back(m.forward({images.slice(0, i, std::min(i + batch, images.size(0)))}).toTensor().argmax(1));
  if (was_training) m.train();
  return torch::cat(parts);
}

double Accuracy(const torch::Tensor& predicted, const torch::Tensor& labels) {
  return predicted.eq(labels).to(torch::kFloat64).mean().item<double>();
}

std::string Fixed(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.flush()) throw std::runtime_error(path + ": cannot write");
}

// Saves a module atomically: a crash never leaves half a file under `path`.
void SaveModule(torch::jit::Module& m, const std::string& path) {
  m.save(path + ".tmp");
  fs::rename(path + ".tmp", path);
}

void SetThreads(const sluice::Context& ctx) {
  int threads = ctx.param<int>("threads", ctx.cpu());
  torch::set_num_threads(std::max(1, threads));
}

// ---------------------------------------------------------------- train

// Checkpoints in the step's state folder: the module, the optimizer, the
// random generator and how many epochs are done, for this exact config.
struct Checkpoint {
  std::string dir;
  std::string config;  // the params that shape training; a different config starts over
  std::string Path(const std::string& name) const { return dir + "/" + name; }

  // Epochs done, or 0 if there is no checkpoint for this config.
  int Load(torch::jit::Module* m, torch::optim::Adam* opt) const {
    std::ifstream f(Path("checkpoint.json"));
    if (!f) return 0;
    json j = json::parse(f, nullptr, false);
    if (!j.is_object() || j.value("config", std::string()) != config) return 0;
    *m = LoadModel(Path("model.pt"));
    std::vector<torch::Tensor> params;
    for (const auto& p : m->parameters()) params.push_back(p);
    opt->param_groups()[0].params() = params;
    torch::load(*opt, Path("optimizer.pt"));
    torch::Tensor rng;
    torch::load(rng, Path("generator.pt"));
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
    return j.value("epochs_done", 0);
  }

  void Save(torch::jit::Module& m, torch::optim::Adam& opt, int epochs_done) const {
    fs::create_directories(dir);
    SaveModule(m, Path("model.pt"));
    torch::save(opt, Path("optimizer.pt"));
    torch::save(at::detail::getDefaultCPUGenerator().get_state(), Path("generator.pt"));
    WriteText(Path("checkpoint.json.tmp"), json{{"config", config}, {"epochs_done", epochs_done}}.dump());
    fs::rename(Path("checkpoint.json.tmp"), Path("checkpoint.json"));
  }
};

struct Train : sluice::Step {
  void run(sluice::Context& ctx) override {
    const json& p = ctx.params();
    int epochs = ctx.param<int>("epochs", 5);
    int64_t batch = ctx.param<int64_t>("batch_size", 64);
    double lr = ctx.param<double>("learning_rate", 1e-3);
    uint64_t seed = ctx.param<uint64_t>("seed", 0);
    std::string image_column = ctx.param<std::string>("image_column", "image");
    std::string label_column = ctx.param<std::string>("label_column", "label");
    SetThreads(ctx);

    Examples train = ReadExamples(ctx.param<std::string>("train"), image_column, label_column,
                                  ctx.param<int64_t>("limit", 0));
    std::optional<Examples> validation;
    if (p.contains("validation"))
      validation = ReadExamples(ctx.param<std::string>("validation"), image_column, label_column, 0);

    NetConfig config;
    config.input_shape = train.shape;
    int64_t classes = train.labels.max().item<int64_t>() + 1;
    config.classes = ctx.param<std::vector<std::string>>("class_names", {});
    if (config.classes.empty())
      for (int64_t c = 0; c < classes; ++c) config.classes.push_back(std::to_string(c));
    if (static_cast<int64_t>(config.classes.size()) < classes)
      throw std::runtime_error("class_names has " + std::to_string(config.classes.size()) +
                               " names but the labels go up to " + std::to_string(classes - 1));
    config.mean = train.images.mean().item<double>();
    config.std = train.images.std().item<double>();
    ctx.log() << "training on " << train.size() << " images of " << config.classes.size() << " classes"
              << (validation ? ", validating on " + std::to_string(validation->size()) : std::string()) << "; "
              << epochs << " epochs, batch " << batch << ", learning rate " << lr << ", seed " << seed << ", "
              << torch::get_num_threads() << " threads";

    torch::manual_seed(seed);
    torch::jit::Module net = NewNet(config);
    net.train();
    std::vector<torch::Tensor> params;
    for (const auto& t : net.parameters()) params.push_back(t);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(lr));

    json shaping = p;
    shaping.erase("threads");  // the only param that does not change the result
    Checkpoint checkpoint{ctx.state_dir(), shaping.dump()};
    int start = 0;
    if (!checkpoint.dir.empty()) start = std::min(checkpoint.Load(&net, &opt), epochs);
    if (start > 0) ctx.log() << "resuming from the checkpoint after epoch " << start;

    bool flip = ctx.param<bool>("augment", false);
    int64_t n = train.size(), batches = (n + batch - 1) / batch;
    auto began = std::chrono::steady_clock::now();
    int64_t seen = 0;
    std::optional<double> validation_accuracy;  // of the last epoch run here
    for (int epoch = start; epoch < epochs; ++epoch) {
      // The order of an epoch depends on the seed and the epoch only, so a
      // resumed run visits the same batches as an uninterrupted one.
      std::vector<int64_t> order(static_cast<size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
      torch::Tensor index = torch::tensor(order, torch::kInt64);
      // Cosine annealing per epoch: the last epochs take small steps.
      double epoch_lr = lr * 0.5 * (1 + std::cos(M_PI * epoch / epochs));
      for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(epoch_lr);
      double loss_sum = 0;
      int64_t correct = 0;
      for (int64_t b = 0; b < batches; ++b) {
        ctx.stop_if_cancelled();
        torch::Tensor idx = index.slice(0, b * batch, std::min(n, (b + 1) * batch));
        torch::Tensor x = train.images.index_select(0, idx), y = train.labels.index_select(0, idx);
        if (flip) {  // mirror every other image of the batch left to right
          torch::Tensor odd = torch::arange(1, x.size(0), 2);
          x.index_copy_(0, odd, x.index_select(0, odd).flip({3}));
        }
        opt.zero_grad();
        torch::Tensor logits = net.forward({x}).toTensor();
        torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
        loss.backward();
        opt.step();
        loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
        seen += idx.size(0);
        if (b % 20 == 0 || b + 1 == batches)
          ctx.progress((epoch + double(b + 1) / double(batches)) / epochs,
                       "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs) + " batch " +
                           std::to_string(b + 1) + "/" + std::to_string(batches) + " loss " + Fixed(loss.item<double>()));
      }
      double loss = loss_sum / double(n), accuracy = double(correct) / double(n);
      ctx.metric("loss", loss, epoch + 1);
      ctx.metric("train_accuracy", accuracy, epoch + 1);
      std::string line = "epoch " + std::to_string(epoch + 1) + ": loss " + Fixed(loss) + " train accuracy " + Fixed(accuracy);
      if (validation) {
        double v = Accuracy(Predict(net, validation->images), validation->labels);
        validation_accuracy = v;
        ctx.metric("validation_accuracy", v, epoch + 1);
        line += " validation accuracy " + Fixed(v);
      }
      ctx.log() << line;
      if (!checkpoint.dir.empty()) checkpoint.Save(net, opt, epoch + 1);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (seen > 0) {
      ctx.metric("samples_per_second", double(seen) / seconds);
      ctx.log() << "trained " << seen << " samples in " << Fixed(seconds, 1) << " s (" << Fixed(double(seen) / seconds, 0)
                << " samples/s)";
    }
    net.eval();
    SaveModule(net, ctx.output_dir() + "/model");
    if (validation && !validation_accuracy)  // every epoch was done by an earlier attempt
      validation_accuracy = Accuracy(Predict(net, validation->images), validation->labels);
    if (validation_accuracy) ctx.output("accuracy", Fixed(*validation_accuracy));
  }
};

// ---------------------------------------------------------------- evaluate

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// The confusion matrix as an SVG picture: rows true class, columns predicted.
std::string ConfusionSvg(const std::vector<std::vector<int64_t>>& m, const std::vector<std::string>& names,
                         double accuracy) {
  const int cell = 44, left = 110, top = 70;
  size_t k = names.size();
  int width = left + cell * int(k) + 20, height = top + cell * int(k) + 40;
  std::ostringstream s;
  s << R"(<svg xmlns="http://www.w3.org/2000/svg" width=")" << width << R"(" height=")" << height
    << R"(" font-family="sans-serif" font-size="11">)" << "\n";
  s << R"(<rect width="100%" height="100%" fill="white"/>)" << "\n";
  s << R"(<text x=")" << left << R"(" y="20" font-size="14">Confusion matrix, accuracy )" << Fixed(accuracy)
    << "</text>\n";
  s << R"(<text x=")" << left << R"(" y="38" fill="#555">rows: true class; columns: predicted</text>)" << "\n";
  for (size_t i = 0; i < k; ++i) {
    int64_t row_total = std::accumulate(m[i].begin(), m[i].end(), int64_t{0});
    s << R"(<text x=")" << left - 6 << R"(" y=")" << top + cell * int(i) + cell / 2 + 4
      << R"(" text-anchor="end">)" << Escape(names[i]) << "</text>\n";
    s << "<text transform=\"translate(" << left + cell * int(i) + cell / 2 + 4 << "," << top - 6
      << ") rotate(-45)\">" << Escape(names[i]) << "</text>\n";
    for (size_t j = 0; j < k; ++j) {
      double share = row_total ? double(m[i][j]) / double(row_total) : 0;
      int shade = 255 - int(std::lround(share * 200));
      std::string fill = i == j ? "rgb(" + std::to_string(shade) + "," + std::to_string(std::min(255, shade + 40)) + "," +
                                      std::to_string(shade) + ")"
                                : "rgb(255," + std::to_string(shade) + "," + std::to_string(shade) + ")";
      int x = left + cell * int(j), y = top + cell * int(i);
      s << R"(<rect x=")" << x << R"(" y=")" << y << R"(" width=")" << cell << R"(" height=")" << cell << R"(" fill=")"
        << fill << R"(" stroke="#ccc"/>)";
      s << R"(<text x=")" << x + cell / 2 << R"(" y=")" << y + cell / 2 + 4 << R"(" text-anchor="middle">)" << m[i][j]
        << "</text>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

struct Evaluate : sluice::Step {
  void run(sluice::Context& ctx) override {
    SetThreads(ctx);
    std::string model_path = ctx.param<std::string>("model");
    torch::jit::Module m = LoadModel(model_path);
    Examples test = ReadExamples(ctx.param<std::string>("dataset"), ctx.param<std::string>("image_column", "image"),
                                 ctx.param<std::string>("label_column", "label"), ctx.param<int64_t>("limit", 0));
    std::vector<std::string> names = Classes(m);
    int64_t k = std::max<int64_t>(static_cast<int64_t>(names.size()), test.labels.max().item<int64_t>() + 1);
    for (auto c = static_cast<int64_t>(names.size()); c < k; ++c) names.push_back(std::to_string(c));

    torch::Tensor predicted;
    try {
      predicted = Predict(m, test.images);
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      throw std::runtime_error(model_path + " cannot classify images of shape [N, " + std::to_string(test.shape[0]) + ", " +
                               std::to_string(test.shape[1]) + ", " + std::to_string(test.shape[2]) +
                               "]: " + what.substr(0, what.find('\n')));
    }
    std::vector<std::vector<int64_t>> confusion(size_t(k), std::vector<int64_t>(size_t(k), 0));
    auto truth = test.labels.accessor<int64_t, 1>();
    auto guess = predicted.accessor<int64_t, 1>();
    int64_t correct = 0;
    for (int64_t i = 0; i < test.size(); ++i) {
      if (guess[i] < 0 || guess[i] >= k) throw std::runtime_error("the model predicted class " + std::to_string(guess[i]));
      ++confusion[size_t(truth[i])][size_t(guess[i])];
      correct += truth[i] == guess[i];
    }
    double accuracy = double(correct) / double(test.size());
    json metrics = {{"accuracy", accuracy}, {"examples", test.size()}};
    for (int64_t c = 0; c < k; ++c) {
      int64_t tp = confusion[size_t(c)][size_t(c)], predicted_c = 0, actual_c = 0;
      for (int64_t o = 0; o < k; ++o) {
        predicted_c += confusion[size_t(o)][size_t(c)];
        actual_c += confusion[size_t(c)][size_t(o)];
      }
      double precision = predicted_c ? double(tp) / double(predicted_c) : 0;
      double recall = actual_c ? double(tp) / double(actual_c) : 0;
      metrics["precision_" + std::to_string(c)] = precision;
      metrics["recall_" + std::to_string(c)] = recall;
      ctx.log() << "class " << c << " (" << names[size_t(c)] << "): precision " << Fixed(precision) << " recall "
                << Fixed(recall);
    }
    ctx.log() << "accuracy " << Fixed(accuracy) << " on " << test.size() << " images";

    std::string out = ctx.output_dir();
    WriteText(out + "/metrics", metrics.dump(2) + "\n");
    fs::create_directories(out + "/confusion");
    WriteText(out + "/confusion/confusion.json", json{{"classes", names}, {"matrix", confusion}}.dump() + "\n");
    WriteText(out + "/confusion/confusion.svg", ConfusionSvg(confusion, names, accuracy));
    std::vector<int64_t> guesses(guess.data(), guess.data() + test.size());
    WriteText(out + "/predictions", json{{"predictions", guesses}}.dump() + "\n");
    ctx.output("accuracy", Fixed(accuracy));

    if (ctx.params().contains("min_accuracy")) {
      double gate = ctx.param<double>("min_accuracy");
      if (accuracy < gate)
        throw std::runtime_error("accuracy " + Fixed(accuracy) + " is under the gate min_accuracy " + Fixed(gate));
    }
  }
};

// ---------------------------------------------------------------- export

// Median and 99th percentile milliseconds of `runs` single-image forwards.
std::pair<double, double> Latency(torch::jit::Module& m, const torch::Tensor& one, int runs) {
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 5; ++i) m.forward({one});
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    m.forward({one});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

struct Export : sluice::Step {
  void run(sluice::Context& ctx) override {
    SetThreads(ctx);
    std::string model_path = ctx.param<std::string>("model");
    torch::jit::Module fp32 = LoadModel(model_path);
    fp32.eval();
    std::vector<int64_t> shape = InputShape(fp32);
    if (shape.empty()) throw std::runtime_error(model_path + " was not made by torch/train (no sluice_input_shape)");
    std::string out = ctx.output_dir();
    SaveModule(fp32, out + "/model");
    int runs = ctx.param<int>("latency_runs", 200);
    std::vector<int64_t> one_shape{1};
    one_shape.insert(one_shape.end(), shape.begin(), shape.end());
    torch::manual_seed(0);
    torch::Tensor one = torch::rand(one_shape);
    auto [p50, p99] = Latency(fp32, one, runs);
    int64_t size = int64_t(fs::file_size(out + "/model"));
    ctx.metric("size_bytes", double(size));
    ctx.metric("latency_ms_p50", p50);
    ctx.metric("latency_ms_p99", p99);
    ctx.log() << "float32: " << size << " bytes, one image p50 " << Fixed(p50, 3) << " ms p99 " << Fixed(p99, 3) << " ms";
    if (!ctx.param<bool>("quantize", true)) return;

    torch::jit::Module int8 = QuantizeLinear(fp32);
    SaveModule(int8, out + "/model_int8");
    torch::jit::Module reloaded = LoadModel(out + "/model_int8");
    auto [q50, q99] = Latency(reloaded, one, runs);
    int64_t qsize = int64_t(fs::file_size(out + "/model_int8"));
    ctx.metric("int8_size_bytes", double(qsize));
    ctx.metric("int8_latency_ms_p50", q50);
    ctx.metric("int8_latency_ms_p99", q99);
    ctx.log() << "int8 linear layers: " << qsize << " bytes, one image p50 " << Fixed(q50, 3) << " ms p99 " << Fixed(q99, 3)
              << " ms";
    if (ctx.params().contains("dataset")) {
      Examples sample = ReadExamples(ctx.param<std::string>("dataset"), ctx.param<std::string>("image_column", "image"),
                                     ctx.param<std::string>("label_column", "label"), ctx.param<int64_t>("limit", 0));
      torch::Tensor a = Predict(fp32, sample.images), b = Predict(reloaded, sample.images);
      double agreement = a.eq(b).to(torch::kFloat64).mean().item<double>();
      double qa = Accuracy(b, sample.labels);
      ctx.metric("int8_agreement", agreement);
      ctx.metric("accuracy", Accuracy(a, sample.labels));
      ctx.metric("int8_accuracy", qa);
      ctx.log() << "int8 agrees with float32 on " << Fixed(agreement * 100, 2) << "% of " << sample.size()
                << " images; accuracy float32 " << Fixed(Accuracy(a, sample.labels)) << ", int8 " << Fixed(qa);
      ctx.output("int8_accuracy", Fixed(qa));
    }
  }
};

}  // namespace
}  // namespace sluice::torchplugin

using namespace sluice::torchplugin;

// The schemas are literals so that the step table stays static.
#define TORCH_COMMON R"S("image_column": {"type": "string", "description": "the uint8 image column (default image)"}, "label_column": {"type": "string", "description": "the class-number column (default label)"}, "threads": {"type": "integer", "minimum": 1, "description": "torch threads (default: resources.cpu)"}, "limit": {"type": "integer", "minimum": 0, "description": "use only the first N rows (0: all)"})S"

SLUICE_PLUGIN(
    "torch", "1.0.0",
    sluice::StepType<Train>(
        "train", 1, "Trains a small convolutional image classifier (TorchScript); checkpoints each epoch",
        R"S({"type": "object", "additionalProperties": false, "required": ["train"], "properties": {
            "train": {"type": "string", "description": "dataset folder to train on"},
            "validation": {"type": "string", "description": "dataset folder for per-epoch validation accuracy"},
            "epochs": {"type": "integer", "minimum": 1, "maximum": 1000},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 65536},
            "learning_rate": {"type": "number", "minimum": 0},
            "seed": {"type": "integer", "minimum": 0},
            "augment": {"type": "boolean", "description": "mirror half of each batch left to right (default false)"},
            "class_names": {"type": "array", "items": {"type": "string"}}, )S" TORCH_COMMON "}}",
        R"({"model": "model", "accuracy": "value"})"),
    sluice::StepType<Evaluate>(
        "evaluate", 1, "Accuracy, per-class precision/recall and a confusion matrix (JSON, SVG); an accuracy gate",
        R"S({"type": "object", "additionalProperties": false, "required": ["model", "dataset"], "properties": {
            "model": {"type": "string", "description": "a TorchScript model file"},
            "dataset": {"type": "string", "description": "dataset folder to evaluate on"},
            "min_accuracy": {"type": "number", "minimum": 0, "maximum": 1, "description": "fail the step below this"}, )S" TORCH_COMMON "}}",
        R"({"metrics": "metrics", "confusion": "dir", "predictions": "file", "accuracy": "value"})"),
    sluice::StepType<Export>(
        "export", 1, "TorchScript for serving plus an int8 dynamically quantized variant; sizes and latencies",
        R"S({"type": "object", "additionalProperties": false, "required": ["model"], "properties": {
            "model": {"type": "string", "description": "a model file from torch/train"},
            "quantize": {"type": "boolean", "description": "also write model_int8 (default true)"},
            "latency_runs": {"type": "integer", "minimum": 1, "maximum": 100000},
            "dataset": {"type": "string", "description": "compare float32 and int8 predictions on this dataset"}, )S" TORCH_COMMON "}}",
        R"({"model": "model", "model_int8": "model", "int8_accuracy": "value"})"),
    sluice::StepType<Serve>(
        "serve", 1, "Serves a TorchScript model over the Open Inference Protocol v2 until cancelled",
        R"S({"type": "object", "additionalProperties": false, "required": ["model"], "properties": {
            "model": {"type": "string", "description": "a TorchScript model file"},
            "name": {"type": "string", "description": "the model's name in URLs: letters, digits, . _ - (default model)"},
            "version": {"type": "string"},
            "listen": {"type": "string", "description": "address to listen on (default 127.0.0.1)"},
            "port": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "0 picks a free port"},
            "threads": {"type": "integer", "minimum": 1, "maximum": 256, "description": "requests that run the model at once"},
            "connections": {"type": "integer", "minimum": 4, "maximum": 100000, "description": "open connections at most; beyond it 503 (default 1024)"},
            "read_timeout_ms": {"type": "integer", "minimum": 1, "maximum": 3600000, "description": "a request's header and body must arrive within this of its first byte; an idle connection is closed after it (default 10000)"},
            "max_queue": {"type": "integer", "minimum": 0, "maximum": 100000, "description": "requests that may wait for a thread; beyond it 503"},
            "token_env": {"type": "string", "description": "an environment variable holding a bearer token every route but health needs"},
            "allowed_hosts": {"type": "array", "items": {"type": "string"}, "description": "Host names answered besides IP addresses and localhost"},
            "max_batch": {"type": "integer", "minimum": 1, "maximum": 4096, "description": "micro-batch size (1: off)"},
            "max_wait_ms": {"type": "number", "minimum": 0, "maximum": 1000, "description": "how long a micro-batch waits to fill"},
            "max_body_bytes": {"type": "integer", "minimum": 1024},
            "max_images": {"type": "integer", "minimum": 1, "description": "images per request"}}})S",
        R"({"url": "value"})"))
