#include "dataset.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace sluice::data {

namespace fs = std::filesystem;

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kUInt8: return "uint8";
    case DType::kInt64: return "int64";
    case DType::kFloat64: return "float64";
    case DType::kString: return "string";
  }
  return "?";
}

bool ParseDType(const std::string& name, DType* out) {
  for (DType t : {DType::kUInt8, DType::kInt64, DType::kFloat64, DType::kString})
    if (name == DTypeName(t)) {
      *out = t;
      return true;
    }
  return false;
}

int64_t Column::Elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

double Column::Number(int64_t r) const {
  int64_t e = Elements();
  switch (dtype) {
    case DType::kUInt8: return u8[static_cast<size_t>(r * e)];
    case DType::kInt64: return static_cast<double>(i64[static_cast<size_t>(r * e)]);
    case DType::kFloat64: return f64[static_cast<size_t>(r * e)];
    case DType::kString: return std::nan("");
  }
  return std::nan("");
}

std::string Column::Text(int64_t r) const {
  if (dtype == DType::kString) return str[static_cast<size_t>(r)];
  double v = Number(r);
  if (dtype != DType::kFloat64) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}

Column* Dataset::Find(const std::string& name) {
  for (Column& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

const Column* Dataset::Find(const std::string& name) const {
  for (const Column& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

Dataset Dataset::Take(const std::vector<int64_t>& order) const {
  Dataset out;
  out.rows = static_cast<int64_t>(order.size());
  for (const Column& c : columns) {
    Column n;
    n.name = c.name;
    n.dtype = c.dtype;
    n.shape = c.shape;
    size_t e = static_cast<size_t>(c.Elements());
    for (int64_t r : order) {
      size_t at = static_cast<size_t>(r) * e;
      switch (c.dtype) {
        case DType::kUInt8: n.u8.insert(n.u8.end(), c.u8.begin() + at, c.u8.begin() + at + e); break;
        case DType::kInt64: n.i64.insert(n.i64.end(), c.i64.begin() + at, c.i64.begin() + at + e); break;
        case DType::kFloat64: n.f64.insert(n.f64.end(), c.f64.begin() + at, c.f64.begin() + at + e); break;
        case DType::kString: n.str.push_back(c.str[static_cast<size_t>(r)]); break;
      }
    }
    out.columns.push_back(std::move(n));
  }
  return out;
}

namespace {

template <typename T>
void WriteVector(const fs::path& file, const std::vector<T>& v) {
  std::ofstream f(file, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  if (!f) throw std::runtime_error("write " + file.string() + " failed");
}

template <typename T>
std::vector<T> ReadVector(const fs::path& file, size_t count) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw std::runtime_error("open " + file.string() + " failed");
  std::vector<T> v(count);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (static_cast<size_t>(f.gcount()) != count * sizeof(T))
    throw std::runtime_error(file.string() + " is shorter than dataset.json says (" + std::to_string(count) +
                             " values of " + std::to_string(sizeof(T)) + " bytes)");
  return v;
}

}  // namespace

void WriteDataset(const Dataset& d, const std::string& dir) {
  fs::create_directories(dir);
  nlohmann::json meta = {{"format", "sluice-dataset"}, {"version", 1}, {"rows", d.rows}, {"columns", nlohmann::json::array()}};
  for (const Column& c : d.columns) {
    std::string file = c.name + ".bin";
    nlohmann::json col = {{"name", c.name}, {"dtype", DTypeName(c.dtype)}, {"shape", c.shape}, {"file", file}};
    switch (c.dtype) {
      case DType::kUInt8: WriteVector(fs::path(dir) / file, c.u8); break;
      case DType::kInt64: WriteVector(fs::path(dir) / file, c.i64); break;
      case DType::kFloat64: WriteVector(fs::path(dir) / file, c.f64); break;
      case DType::kString: {
        std::string bytes;
        std::vector<uint64_t> ends;
        for (const std::string& s : c.str) {
          bytes += s;
          ends.push_back(bytes.size());
        }
        std::ofstream(fs::path(dir) / file, std::ios::binary) << bytes;
        col["offsets"] = c.name + ".offsets";
        WriteVector(fs::path(dir) / (c.name + ".offsets"), ends);
        break;
      }
    }
    meta["columns"].push_back(col);
  }
  std::ofstream(fs::path(dir) / "dataset.json") << meta.dump(2) << "\n";
}

Dataset ReadDataset(const std::string& dir) {
  fs::path meta_path = fs::path(dir) / "dataset.json";
  std::ifstream f(meta_path);
  if (!f) throw std::runtime_error(meta_path.string() + ": no such dataset (no dataset.json)");
  auto meta = nlohmann::json::parse(f, nullptr, false);
  if (meta.is_discarded() || meta.value("format", "") != "sluice-dataset")
    throw std::runtime_error(meta_path.string() + ": not a sluice dataset description");
  Dataset d;
  d.rows = meta.value("rows", int64_t{0});
  for (const auto& col : meta["columns"]) {
    Column c;
    c.name = col.value("name", "");
    if (!ParseDType(col.value("dtype", ""), &c.dtype))
      throw std::runtime_error(meta_path.string() + ": column '" + c.name + "' has unknown dtype " + col.value("dtype", ""));
    c.shape = col.value("shape", std::vector<int64_t>{});
    size_t count = static_cast<size_t>(d.rows * c.Elements());
    fs::path file = fs::path(dir) / col.value("file", "");
    switch (c.dtype) {
      case DType::kUInt8: c.u8 = ReadVector<uint8_t>(file, count); break;
      case DType::kInt64: c.i64 = ReadVector<int64_t>(file, count); break;
      case DType::kFloat64: c.f64 = ReadVector<double>(file, count); break;
      case DType::kString: {
        auto ends = ReadVector<uint64_t>(fs::path(dir) / col.value("offsets", ""), static_cast<size_t>(d.rows));
        std::ifstream b(file, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(b)), std::istreambuf_iterator<char>());
        uint64_t start = 0;
        for (uint64_t end : ends) {
          if (end < start || end > bytes.size()) throw std::runtime_error(file.string() + ": bad string offsets");
          c.str.push_back(bytes.substr(start, end - start));
          start = end;
        }
        break;
      }
    }
    d.columns.push_back(std::move(c));
  }
  return d;
}

}  // namespace sluice::data
