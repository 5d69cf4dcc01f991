// The image classifier the torch plugin trains, as a TorchScript module built
// from C++ (so one definition serves training, evaluation, export and the
// model server, and the saved file loads in any libtorch or PyTorch):
//
//   input  [N, C, H, W] float32, pixels in [0, 1]
//   conv 3x3 (32) - batch norm - relu - max pool 2
//   conv 3x3 (64) - batch norm - relu - max pool 2
//   linear (128) - relu - dropout 0.3 - linear (classes)   -> logits [N, classes]
//
// The module carries what a server needs to check requests: the attributes
// `sluice_input_shape` ([C, H, W]) and `sluice_classes` (class names).
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

namespace sluice::torchplugin {

struct NetConfig {
  std::vector<int64_t> input_shape{1, 28, 28};  // C, H, W
  std::vector<std::string> classes;             // one name per class
  double mean = 0.0, std = 1.0;                 // input normalisation, part of the model
};

// A new network with initialised parameters (uses torch's global generator:
// seed it first for a deterministic start).
torch::jit::Module NewNet(const NetConfig& config);

// The same network with its linear layers dynamically quantized to int8
// (weights int8 per tensor, activations quantized on the fly); convolutions
// stay float32. `net` must be a module made by NewNet (or loaded from one).
torch::jit::Module QuantizeLinear(const torch::jit::Module& net);

// Loads a TorchScript file; throws std::runtime_error naming the file if it
// is not one.
torch::jit::Module LoadModel(const std::string& path);

// What a model file says about itself (specs/model-server.md, "Model
// files"), each empty if the file does not say: the input shape of one row
// (`sluice_input_shape`: [C, H, W] for an image model, [F] for a tabular
// one), class names (`sluice_classes`) and a tabular model's feature names
// (`sluice_feature_names`).
std::vector<int64_t> InputShape(const torch::jit::Module& m);
std::vector<std::string> Classes(const torch::jit::Module& m);
std::vector<std::string> FeatureNames(const torch::jit::Module& m);

}  // namespace sluice::torchplugin
