// make_tabular_model: writes a real tabular TorchScript model file for the
// model server's and the gateway's tests, built with libtorch the way
// plugins/torch/net.cc builds the image classifier (a jit::Module with
// parameters, the sluice_* attributes and a forward() compiled from
// source), with weights the test gives, so it can compute the answer:
//
//   make_tabular_model OUT --features a,b,c --weight 1,0,0/0,1,1 --bias 0,0.5
//                      [--classes x,y] [--no-feature-names]
//
//   forward(x [N, F]) = x @ weight^T + bias          -> [N, K]
//
// weight: K rows of F numbers, rows separated by '/'. The file carries
// sluice_input_shape [F], sluice_feature_names (unless --no-feature-names)
// and, with --classes, sluice_classes (K names). Exit 0 once saved; 2 on a
// bad argument, 1 if libtorch fails.
#include <torch/script.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

std::vector<float> Numbers(const std::string& s) {
  std::vector<float> out;
  for (const std::string& n : Split(s, ',')) out.push_back(std::stof(n));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: make_tabular_model OUT --features a,b --weight 1,0/0,1 --bias 0,0 [--classes x,y] "
                 "[--no-feature-names]\n";
    return 2;
  }
  std::string out = argv[1], features, weight, bias, classes;
  bool feature_names = true;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--features") features = value();
    else if (a == "--weight") weight = value();
    else if (a == "--bias") bias = value();
    else if (a == "--classes") classes = value();
    else if (a == "--no-feature-names") feature_names = false;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  try {
    std::vector<std::string> names = Split(features, ',');
    std::vector<std::string> rows = Split(weight, '/');
    const int64_t f = int64_t(names.size()), k = int64_t(rows.size());
    std::vector<float> w;
    for (const std::string& r : rows) {
      std::vector<float> row = Numbers(r);
      if (int64_t(row.size()) != f) {
        std::cerr << "weight row " << r << " has " << row.size() << " numbers, not " << f << "\n";
        return 2;
      }
      w.insert(w.end(), row.begin(), row.end());
    }
    std::vector<float> b = Numbers(bias);
    if (int64_t(b.size()) != k) {
      std::cerr << "bias has " << b.size() << " numbers, not " << k << "\n";
      return 2;
    }
    torch::jit::Module m("SluiceTabularLinear");
    m.register_parameter("weight", torch::from_blob(w.data(), {k, f}, torch::kFloat32).clone(), false);
    m.register_parameter("bias", torch::from_blob(b.data(), {k}, torch::kFloat32).clone(), false);
    m.register_attribute("sluice_input_shape", c10::ListType::ofInts(), c10::IValue(std::vector<int64_t>{f}));
    if (feature_names)
      m.register_attribute("sluice_feature_names", c10::ListType::ofStrings(), c10::IValue(names));
    if (!classes.empty())
      m.register_attribute("sluice_classes", c10::ListType::ofStrings(), c10::IValue(Split(classes, ',')));
    m.define(R"(
def forward(self, x):
    return torch.linear(x, self.weight, self.bias)
)");
    m.save(out);
  } catch (const std::exception& e) {
    std::cerr << "make_tabular_model: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
