// data: first-party data plugins, built with the SDK like anyone else's.
//   data/idx-ingest   IDX files (gzipped or not), as Fashion-MNIST ships them, to a dataset
//   data/csv-ingest   a CSV file with a header to a dataset
//   data/validate     rules over a dataset; fails listing every broken rule
//   data/split        seeded train / validation / test split, stratified if asked
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <sluice/plugin.hpp>

#include "dataset.h"

using sluice::data::Column;
using sluice::data::Dataset;
using sluice::data::DType;

namespace {

// The whole (possibly gzipped) file. zlib reads plain files as they are.
std::string ReadMaybeGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    std::string why = std::strerror(errno);
    // Debian packages the data sets the examples use.
    if (path.find("/usr/share/datasets/fashion-mnist/") == 0)
      why += " (Debian's dataset-fashion-mnist package installs these files: apt-get install dataset-fashion-mnist)";
    throw std::runtime_error(path + ": cannot open: " + why);
  }
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  bool bad = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  std::string what = bad ? msg : "";
  gzclose(f);
  // gzerror's message already starts with the path.
  if (bad) throw std::runtime_error((what.empty() ? path + ": read error" : what) + " (is the file truncated?)");
  return out;
}

uint32_t BigEndian32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
         uint32_t(uint8_t(b[at + 3]));
}

// "1 row", "3 rows": a count and its noun.
std::string Count(int64_t n, const char* noun) { return std::to_string(n) + " " + noun + (n == 1 ? "" : "s"); }

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// An IDX file of unsigned bytes with `dims` dimensions; returns the sizes.
std::vector<int64_t> ParseIdx(const std::string& path, const std::string& bytes, uint32_t magic, std::string* data) {
  if (bytes.size() < 4) throw std::runtime_error(path + ": too short to be an IDX file");
  uint32_t found = BigEndian32(bytes, 0);
  if (found != magic)
    throw std::runtime_error(path + ": bad magic number " + Hex(found) + "; expected " + Hex(magic) +
                             (magic == 0x803 ? " (IDX images)" : " (IDX labels)"));
  size_t ndim = magic & 0xff;
  if (bytes.size() < 4 + 4 * ndim) throw std::runtime_error(path + ": header cut short");
  std::vector<int64_t> dims;
  int64_t total = 1;
  for (size_t i = 0; i < ndim; ++i) {
    dims.push_back(BigEndian32(bytes, 4 + 4 * i));
    total *= dims.back();
  }
  size_t header = 4 + 4 * ndim;
  if (static_cast<int64_t>(bytes.size() - header) != total)
    throw std::runtime_error(path + ": header promises " + std::to_string(total) + " bytes of data, the file has " +
                             std::to_string(bytes.size() - header) + " (is it truncated?)");
  *data = bytes.substr(header);
  return dims;
}

std::string DatasetDir(sluice::Context& ctx, const std::string& name) { return ctx.output_dir() + "/" + name; }

struct IdxIngest : sluice::Step {
  void run(sluice::Context& ctx) override {
    std::string images_path = ctx.param<std::string>("images");
    int64_t limit = ctx.param<int64_t>("limit", 0);
    std::string pixels;
    auto dims = ParseIdx(images_path, ReadMaybeGzip(images_path), 0x803, &pixels);
    ctx.stop_if_cancelled();
    Dataset d;
    d.rows = dims[0];
    Column image{"image", DType::kUInt8, {dims[1], dims[2]}, {}, {}, {}, {}};
    image.u8.assign(pixels.begin(), pixels.end());
    d.columns.push_back(std::move(image));
    if (ctx.params().contains("labels")) {
      std::string labels_path = ctx.param<std::string>("labels");
      std::string labels;
      auto ldims = ParseIdx(labels_path, ReadMaybeGzip(labels_path), 0x801, &labels);
      if (ldims[0] != d.rows)
        throw std::runtime_error(labels_path + " has " + std::to_string(ldims[0]) + " labels for " + std::to_string(d.rows) +
                                 " images in " + images_path);
      Column label{"label", DType::kUInt8, {}, {}, {}, {}, {}};
      label.u8.assign(labels.begin(), labels.end());
      d.columns.push_back(std::move(label));
    }
    if (limit > 0 && limit < d.rows) {
      std::vector<int64_t> first(static_cast<size_t>(limit));
      for (int64_t i = 0; i < limit; ++i) first[static_cast<size_t>(i)] = i;
      d = d.Take(first);
    }
    std::string dir = DatasetDir(ctx, "dataset");
    sluice::data::WriteDataset(d, dir);
    ctx.log() << images_path << ": " << d.rows << " images of " << dims[1] << "x" << dims[2];
    ctx.output("dataset", dir);
    ctx.output("rows", std::to_string(d.rows));
    ctx.metric("rows", static_cast<double>(d.rows));
  }
};

// RFC 4180 fields of one record; `line` may continue over newlines inside quotes.
bool ReadCsvRecord(std::istream& in, char delim, std::vector<std::string>* fields, int* line_no) {
  fields->clear();
  std::string field, line;
  if (!std::getline(in, line)) return false;
  ++*line_no;
  bool quoted = false;
  for (size_t i = 0;; ++i) {
    if (i == line.size()) {
      if (quoted) {  // a newline inside quotes
        std::string more;
        if (!std::getline(in, more)) throw std::runtime_error("line " + std::to_string(*line_no) + ": unclosed quote");
        ++*line_no;
        field += '\n';
        line = more;
        i = static_cast<size_t>(-1);
        continue;
      }
      break;
    }
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == delim) {
      fields->push_back(field);
      field.clear();
    } else if (c != '\r' || i + 1 != line.size()) {
      field += c;
    }
  }
  fields->push_back(field);
  return true;
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end || errno) return false;
  *out = v;
  return true;
}

bool ParseFloat(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end;
  double v = std::strtod(s.c_str(), &end);
  if (*end) return false;
  *out = v;
  return true;
}

struct CsvIngest : sluice::Step {
  void run(sluice::Context& ctx) override {
    std::string path = ctx.param<std::string>("path");
    std::string delim_text = ctx.param<std::string>("delimiter", ",");
    if (delim_text.size() != 1) throw std::runtime_error("delimiter must be one character");
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open");
    int line_no = 0;
    std::vector<std::string> header, fields;
    if (!ReadCsvRecord(in, delim_text[0], &header, &line_no)) throw std::runtime_error(path + ": empty file, no header");
    std::vector<std::vector<std::string>> cells(header.size());
    while (ReadCsvRecord(in, delim_text[0], &fields, &line_no)) {
      if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
      if (fields.size() != header.size())
        throw std::runtime_error(path + ":" + std::to_string(line_no) + ": " + std::to_string(fields.size()) +
                                 " fields, but the header has " + std::to_string(header.size()));
      for (size_t c = 0; c < fields.size(); ++c) cells[c].push_back(std::move(fields[c]));
      if (cells[0].size() % 10000 == 0) ctx.stop_if_cancelled();
    }
    auto declared = ctx.params().value("columns", nlohmann::json::object());
    Dataset d;
    d.rows = cells.empty() ? 0 : static_cast<int64_t>(cells[0].size());
    for (size_t c = 0; c < header.size(); ++c) {
      Column col{header[c], DType::kString, {}, {}, {}, {}, {}};
      const auto& values = cells[c];
      DType type = DType::kInt64;
      if (declared.contains(header[c])) {
        if (!sluice::data::ParseDType(declared[header[c]].get<std::string>(), &type) || type == DType::kUInt8)
          throw std::runtime_error("column '" + header[c] + "': type must be int64, float64 or string");
      } else {  // infer: int64, else float64 (empty cells are missing), else string
        int64_t i;
        double f;
        for (const std::string& v : values)
          if (type == DType::kInt64 && !ParseInt(v, &i)) type = v.empty() || ParseFloat(v, &f) ? DType::kFloat64 : DType::kString;
          else if (type == DType::kFloat64 && !v.empty() && !ParseFloat(v, &f)) type = DType::kString;
      }
      col.dtype = type;
      for (size_t r = 0; r < values.size(); ++r) {
        const std::string& v = values[r];
        int64_t i;
        double f;
        auto bad = [&](const char* what) {
          return std::runtime_error(path + ":" + std::to_string(r + 2) + ": column '" + header[c] + "': " +
                                    std::string("'") + v + "' is not " + what);
        };
        if (type == DType::kString) col.str.push_back(v);
        else if (type == DType::kInt64) {
          if (!ParseInt(v, &i)) throw bad("an int64");
          col.i64.push_back(i);
        } else {
          if (v.empty()) f = std::nan("");
          else if (!ParseFloat(v, &f)) throw bad("a float64");
          col.f64.push_back(f);
        }
      }
      d.columns.push_back(std::move(col));
    }
    std::string dir = DatasetDir(ctx, "dataset");
    sluice::data::WriteDataset(d, dir);
    for (const Column& col : d.columns) ctx.log() << col.name << ": " << sluice::data::DTypeName(col.dtype);
    ctx.output("dataset", dir);
    ctx.output("rows", std::to_string(d.rows));
  }
};

struct Validate : sluice::Step {
  void run(sluice::Context& ctx) override {
    Dataset d = sluice::data::ReadDataset(ctx.param<std::string>("dataset"));
    std::vector<std::string> broken;
    auto rows = ctx.params().value("rows", nlohmann::json::object());
    if (rows.contains("min") && d.rows < rows["min"].get<int64_t>())
      broken.push_back("rows: " + std::to_string(d.rows) + " is fewer than the minimum " + rows["min"].dump());
    if (rows.contains("max") && d.rows > rows["max"].get<int64_t>())
      broken.push_back("rows: " + std::to_string(d.rows) + " is more than the maximum " + rows["max"].dump());
    auto columns = ctx.params().value("columns", nlohmann::json::object());
    for (auto it = columns.begin(); it != columns.end(); ++it) {
      const Column* c = d.Find(it.key());
      const auto& rule = it.value();
      if (!c) {
        broken.push_back("column '" + it.key() + "' is missing");
        continue;
      }
      if (rule.contains("dtype") && rule["dtype"].get<std::string>() != sluice::data::DTypeName(c->dtype))
        broken.push_back("column '" + c->name + "' is " + sluice::data::DTypeName(c->dtype) + ", not " +
                         rule["dtype"].get<std::string>());
      if (c->dtype == DType::kString) continue;
      int64_t nulls = 0, below = 0, above = 0;
      double lo = rule.value("min", -INFINITY), hi = rule.value("max", INFINITY);
      double worst_lo = INFINITY, worst_hi = -INFINITY;
      int64_t n = d.rows * c->Elements();
      for (int64_t i = 0; i < n; ++i) {
        double v = c->dtype == DType::kUInt8 ? c->u8[size_t(i)] : c->dtype == DType::kInt64 ? double(c->i64[size_t(i)]) : c->f64[size_t(i)];
        if (std::isnan(v)) ++nulls;
        else if (v < lo) ++below, worst_lo = std::min(worst_lo, v);
        else if (v > hi) ++above, worst_hi = std::max(worst_hi, v);
      }
      std::ostringstream m;
      if (below) m << "column '" << c->name << "': " << Count(below, "value") << " below " << lo << " (lowest " << worst_lo << ")";
      if (!m.str().empty()) broken.push_back(m.str()), m.str("");
      if (above) m << "column '" << c->name << "': " << Count(above, "value") << " above " << hi << " (highest " << worst_hi << ")";
      if (!m.str().empty()) broken.push_back(m.str()), m.str("");
      if (rule.contains("max_null_fraction") && n > 0 && double(nulls) / double(n) > rule["max_null_fraction"].get<double>()) {
        m << "column '" << c->name << "': " << nulls << " of " << n << " values missing, more than the fraction "
          << rule["max_null_fraction"].get<double>();
        broken.push_back(m.str());
      }
    }
    if (ctx.params().contains("label")) {
      auto rule = ctx.params()["label"];
      std::string name = rule.value("column", "label");
      const Column* c = d.Find(name);
      if (!c) {
        broken.push_back("label column '" + name + "' is missing");
      } else {
        std::map<std::string, int64_t> counts;
        for (int64_t r = 0; r < d.rows; ++r) ++counts[c->Text(r)];
        if (rule.contains("values")) {
          std::map<std::string, bool> allowed;
          for (const auto& v : rule["values"]) allowed[v.is_string() ? v.get<std::string>() : v.dump()] = true;
          for (const auto& [v, n] : counts)
            if (!allowed.count(v)) broken.push_back("label '" + v + "' (" + Count(n, "row") + ") is not in the label set");
          for (const auto& [v, yes] : allowed)
            if (!counts.count(v)) broken.push_back("label '" + v + "' has no rows");
        }
        if (rule.contains("max_imbalance") && !counts.empty()) {
          auto [lo, hi] = std::minmax_element(counts.begin(), counts.end(),
                                              [](const auto& a, const auto& b) { return a.second < b.second; });
          double ratio = double(hi->second) / double(lo->second);
          if (ratio > rule["max_imbalance"].get<double>()) {
            std::ostringstream m;
            m << "labels are imbalanced: '" << hi->first << "' has " << Count(hi->second, "row") << ", '" << lo->first << "' "
              << lo->second << " (ratio " << ratio << ", at most " << rule["max_imbalance"].get<double>() << ")";
            broken.push_back(m.str());
          }
        }
      }
    }
    ctx.output("rows", std::to_string(d.rows));
    if (!broken.empty()) {
      std::string report = std::to_string(broken.size()) + " rule" + (broken.size() == 1 ? "" : "s") + " broken:";
      for (const std::string& b : broken) report += "\n  " + b;
      throw std::runtime_error(report);
    }
    ctx.log() << "all rules hold for " << Count(d.rows, "row");
  }
};

struct Split : sluice::Step {
  void run(sluice::Context& ctx) override {
    Dataset d = sluice::data::ReadDataset(ctx.param<std::string>("dataset"));
    uint64_t seed = ctx.param<uint64_t>("seed", 0);
    double train = ctx.param<double>("train", 0.8), validation = ctx.param<double>("validation", 0.1),
           test = ctx.param<double>("test", 0.1);
    if (std::fabs(train + validation + test - 1.0) > 1e-9)
      throw std::runtime_error("train, validation and test must add up to 1, not " + std::to_string(train + validation + test));
    // Groups of rows: one per label when stratified, else one.
    std::map<std::string, std::vector<int64_t>> groups;
    std::string by = ctx.param<std::string>("stratify", "");
    const Column* label = by.empty() ? nullptr : d.Find(by);
    if (!by.empty() && !label) throw std::runtime_error("stratify: no column '" + by + "'");
    for (int64_t r = 0; r < d.rows; ++r) groups[label ? label->Text(r) : ""].push_back(r);
    // Fisher-Yates with mt19937_64: the same split for the same seed on every platform.
    std::mt19937_64 rng(seed);
    std::vector<int64_t> parts[3];
    for (auto& [key, rows] : groups) {
      for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng() % i]);
      size_t n_train = static_cast<size_t>(std::llround(train * double(rows.size())));
      size_t n_val = std::min(rows.size() - n_train, static_cast<size_t>(std::llround(validation * double(rows.size()))));
      parts[0].insert(parts[0].end(), rows.begin(), rows.begin() + long(n_train));
      parts[1].insert(parts[1].end(), rows.begin() + long(n_train), rows.begin() + long(n_train + n_val));
      parts[2].insert(parts[2].end(), rows.begin() + long(n_train + n_val), rows.end());
    }
    const char* names[] = {"train", "validation", "test"};
    for (int i = 0; i < 3; ++i) {
      std::sort(parts[i].begin(), parts[i].end());
      std::string dir = DatasetDir(ctx, names[i]);
      sluice::data::WriteDataset(d.Take(parts[i]), dir);
      ctx.output(names[i], dir);
      ctx.output(std::string(names[i]) + "_rows", std::to_string(parts[i].size()));
      ctx.log() << names[i] << ": " << parts[i].size() << " rows";
    }
  }
};

}  // namespace

SLUICE_PLUGIN(
    "data", "0.1.0",
    sluice::StepType<IdxIngest>("idx-ingest", 1, "IDX files (gzipped or not) to a dataset: image and label columns",
                                R"({"type": "object", "additionalProperties": false, "required": ["images"],
                                    "properties": {
                                      "images": {"type": "string", "description": "IDX3 image file"},
                                      "labels": {"type": "string", "description": "IDX1 label file"},
                                      "limit": {"type": "integer", "minimum": 0, "description": "keep the first N rows"}}})",
                                R"({"dataset": "dataset", "rows": "value"})"),
    sluice::StepType<CsvIngest>("csv-ingest", 1, "A CSV file with a header to a dataset; types inferred or declared",
                                R"({"type": "object", "additionalProperties": false, "required": ["path"],
                                    "properties": {
                                      "path": {"type": "string"},
                                      "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                                      "columns": {"type": "object", "description": "name: int64, float64 or string",
                                                  "additionalProperties": {"enum": ["int64", "float64", "string"]}}}})",
                                R"({"dataset": "dataset", "rows": "value"})"),
    sluice::StepType<Validate>("validate", 1, "Checks rules over a dataset; fails listing every broken rule",
                               R"({"type": "object", "additionalProperties": false, "required": ["dataset"],
                                   "properties": {
                                     "dataset": {"type": "string"},
                                     "rows": {"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}},
                                     "columns": {"type": "object", "additionalProperties": {"type": "object",
                                       "properties": {"dtype": {"enum": ["uint8", "int64", "float64", "string"]},
                                                      "min": {"type": "number"}, "max": {"type": "number"},
                                                      "max_null_fraction": {"type": "number", "minimum": 0, "maximum": 1}}}},
                                     "label": {"type": "object", "properties": {"column": {"type": "string"},
                                       "values": {"type": "array"}, "max_imbalance": {"type": "number", "minimum": 1}}}}})",
                               R"({"rows": "value"})"),
    sluice::StepType<Split>("split", 1, "Seeded train / validation / test split, stratified by a column if asked",
                            R"({"type": "object", "additionalProperties": false, "required": ["dataset"],
                                "properties": {
                                  "dataset": {"type": "string"},
                                  "seed": {"type": "integer", "minimum": 0},
                                  "train": {"type": "number", "minimum": 0, "maximum": 1},
                                  "validation": {"type": "number", "minimum": 0, "maximum": 1},
                                  "test": {"type": "number", "minimum": 0, "maximum": 1},
                                  "stratify": {"type": "string"}}})",
                            R"({"train": "dataset", "validation": "dataset", "test": "dataset", "train_rows": "value",
                                "validation_rows": "value", "test_rows": "value"})"))
