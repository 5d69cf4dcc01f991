#include "net.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace sluice::torchplugin {
namespace {

// Resolves `torch.*` to ATen and `quantized.*` to the quantized operators
// when compiling our forward() from C++ (the default resolver knows only torch).
struct OpsResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction&,
                                                         const torch::jit::SourceRange&) override {
    if (name == "torch") return std::make_shared<torch::jit::BuiltinModule>("aten");
    if (name == "quantized") return std::make_shared<torch::jit::BuiltinModule>("quantized");
    return nullptr;
  }
  c10::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override { return nullptr; }
};

// forward() for float or int8 linear layers.
std::string ForwardSource(bool int8) {
  std::string fc1 = int8 ? "quantized.linear_dynamic(x, self.fc1_packed, True)"
                         : "torch.linear(x, self.fc1_weight, self.fc1_bias)";
  std::string fc2 = int8 ? "quantized.linear_dynamic(x, self.fc2_packed, True)"
                         : "torch.linear(x, self.fc2_weight, self.fc2_bias)";
  return R"(
def forward(self, x):
    x = (x - self.input_mean) / self.input_std
    x = torch.conv2d(x, self.conv1_weight, None, [1, 1], [1, 1])
    x = torch.batch_norm(x, self.bn1_weight, self.bn1_bias, self.bn1_mean, self.bn1_var, self.training, 0.1, 1e-5, False)
    x = torch.max_pool2d(torch.relu(x), [2, 2])
    x = torch.conv2d(x, self.conv2_weight, None, [1, 1], [1, 1])
    x = torch.batch_norm(x, self.bn2_weight, self.bn2_bias, self.bn2_mean, self.bn2_var, self.training, 0.1, 1e-5, False)
    x = torch.max_pool2d(torch.relu(x), [2, 2])
    x = torch.flatten(x, 1)
    x = torch.relu()" + fc1 + R"()
    x = torch.dropout(x, 0.3, self.training)
    x = )" + fc2 + R"(
    return x
)";
}

// PyTorch's default initialisation of a conv or linear weight.
torch::Tensor Weight(std::vector<int64_t> shape) {
  torch::Tensor w = torch::empty(shape);
  torch::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
  return w;
}

torch::Tensor Bias(int64_t n, int64_t fan_in) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return torch::empty({n}).uniform_(-bound, bound);
}

void Parameter(torch::jit::Module& m, const std::string& name, torch::Tensor t) {
  t.set_requires_grad(true);
  m.register_parameter(name, t, /*is_buffer=*/false);
}

void Buffer(torch::jit::Module& m, const std::string& name, torch::Tensor t) { m.register_buffer(name, t); }

// Attributes every variant carries: normalisation and what a server checks.
void CommonAttributes(torch::jit::Module& m, const std::vector<int64_t>& shape, const std::vector<std::string>& classes,
                      double mean, double std) {
  m.register_attribute("training", c10::BoolType::get(), true);  // what train() and eval() set
  m.register_attribute("input_mean", c10::FloatType::get(), mean);
  m.register_attribute("input_std", c10::FloatType::get(), std);
  m.register_attribute("sluice_input_shape", c10::ListType::ofInts(), c10::IValue(shape));
  m.register_attribute("sluice_classes", c10::ListType::ofStrings(), c10::IValue(classes));
}

// Packs a float linear layer as quantized::linear_dynamic wants it.
c10::IValue PackLinear(const torch::Tensor& weight, const torch::Tensor& bias) {
  torch::Tensor w = weight.detach().contiguous();
  // Symmetric per-tensor int8, as PyTorch's dynamic quantization does.
  double scale = std::max(w.abs().max().item<double>(), 1e-8) / 127.5;
  torch::Tensor q = torch::quantize_per_tensor(w, scale, 0, torch::kQInt8);
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  std::vector<c10::IValue> stack{q, c10::optional<torch::Tensor>(bias.detach().contiguous())};
  op.callBoxed(&stack);
  return stack.at(0);
}

}  // namespace

torch::jit::Module NewNet(const NetConfig& c) {
  if (c.input_shape.size() != 3) throw std::runtime_error("input shape must be [channels, height, width]");
  int64_t channels = c.input_shape[0], h = c.input_shape[1], w = c.input_shape[2];
  if (h % 4 != 0 || w % 4 != 0) throw std::runtime_error("image height and width must be multiples of 4");
  int64_t classes = static_cast<int64_t>(c.classes.size());
  int64_t flat = 64 * (h / 4) * (w / 4);
  torch::NoGradGuard no_grad;
  torch::jit::Module m("SluiceImageNet");
  Parameter(m, "conv1_weight", Weight({32, channels, 3, 3}));
  Parameter(m, "bn1_weight", torch::ones({32}));
  Parameter(m, "bn1_bias", torch::zeros({32}));
  Buffer(m, "bn1_mean", torch::zeros({32}));
  Buffer(m, "bn1_var", torch::ones({32}));
  Parameter(m, "conv2_weight", Weight({64, 32, 3, 3}));
  Parameter(m, "bn2_weight", torch::ones({64}));
  Parameter(m, "bn2_bias", torch::zeros({64}));
  Buffer(m, "bn2_mean", torch::zeros({64}));
  Buffer(m, "bn2_var", torch::ones({64}));
  Parameter(m, "fc1_weight", Weight({128, flat}));
  Parameter(m, "fc1_bias", Bias(128, flat));
  Parameter(m, "fc2_weight", Weight({classes, 128}));
  Parameter(m, "fc2_bias", Bias(classes, 128));
  CommonAttributes(m, c.input_shape, c.classes, c.mean, c.std);
  m.define(ForwardSource(/*int8=*/false), std::make_shared<OpsResolver>());
  return m;
}

torch::jit::Module QuantizeLinear(const torch::jit::Module& net) {
  torch::jit::Module q("SluiceImageNetInt8");
  for (const char* name : {"conv1_weight", "bn1_weight", "bn1_bias", "conv2_weight", "bn2_weight", "bn2_bias"})
    q.register_parameter(name, net.attr(name).toTensor().detach().clone(), /*is_buffer=*/false);
  for (const char* name : {"bn1_mean", "bn1_var", "bn2_mean", "bn2_var"})
    q.register_buffer(name, net.attr(name).toTensor().detach().clone());
  for (const char* layer : {"fc1", "fc2"}) {
    std::string l = layer;
    c10::IValue packed = PackLinear(net.attr(l + "_weight").toTensor(), net.attr(l + "_bias").toTensor());
    q.register_attribute(l + "_packed", packed.type(), packed);
  }
  CommonAttributes(q, InputShape(net), Classes(net), net.attr("input_mean").toDouble(),
                   net.attr("input_std").toDouble());
  q.define(ForwardSource(/*int8=*/true), std::make_shared<OpsResolver>());
  q.eval();
  return q;
}

torch::jit::Module LoadModel(const std::string& path) {
  try {
    return torch::jit::load(path);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw std::runtime_error(path + ": not a TorchScript model file (" + what.substr(0, what.find('\n')) + ")");
  }
}

std::vector<int64_t> InputShape(const torch::jit::Module& m) {
  if (!m.hasattr("sluice_input_shape")) return {};
  return m.attr("sluice_input_shape").toIntVector();
}

namespace {

std::vector<std::string> Strings(const torch::jit::Module& m, const char* attribute) {
  std::vector<std::string> out;
  if (!m.hasattr(attribute)) return out;
  for (const c10::IValue& v : m.attr(attribute).toListRef()) out.push_back(v.toStringRef());
  return out;
}

}  // namespace

std::vector<std::string> Classes(const torch::jit::Module& m) { return Strings(m, "sluice_classes"); }

std::vector<std::string> FeatureNames(const torch::jit::Module& m) { return Strings(m, "sluice_feature_names"); }

}  // namespace sluice::torchplugin
