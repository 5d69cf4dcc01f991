// The dataset format the data plugins share (specs/dataset-format.md): a
// folder with dataset.json describing named columns and one little-endian
// binary file per column, rows in order. Columns are uint8, int64 or
// float64 tensors of a fixed shape per row (a scalar has shape []), or
// strings (bytes plus uint64 end offsets). float64 NaN marks a missing value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::data {

enum class DType { kUInt8, kInt64, kFloat64, kString };
const char* DTypeName(DType t);
bool ParseDType(const std::string& name, DType* out);

struct Column {
  std::string name;
  DType dtype = DType::kFloat64;
  std::vector<int64_t> shape;       // per row; empty for a scalar
  std::vector<uint8_t> u8;          // kUInt8: rows * elements
  std::vector<int64_t> i64;         // kInt64
  std::vector<double> f64;          // kFloat64
  std::vector<std::string> str;     // kString: one per row

  int64_t Elements() const;         // per row
  // The value of row `r` (first element) as a number, for rules and labels.
  double Number(int64_t r) const;
  // Row `r` as text, for labels and messages.
  std::string Text(int64_t r) const;
};

struct Dataset {
  int64_t rows = 0;
  std::vector<Column> columns;
  Column* Find(const std::string& name);
  const Column* Find(const std::string& name) const;
  // The rows in `order`, in that order.
  Dataset Take(const std::vector<int64_t>& order) const;
};

// Both throw std::runtime_error with the file's name on any problem.
void WriteDataset(const Dataset& d, const std::string& dir);
Dataset ReadDataset(const std::string& dir);

}  // namespace sluice::data
