#include "deploy/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

namespace sluice::deploy {
namespace {

constexpr std::string_view kRequestsTotal = "sluice_requests_total";
constexpr std::string_view kDurationBucket = "sluice_request_duration_seconds_bucket";
// The mirror agreement counters, each kept in a field of the role "mirror" series.
constexpr std::pair<std::string_view, int64_t Counts::*> kMirrorCounters[] = {
    {"sluice_mirror_compared_total", &Counts::mirror_compared},
    {"sluice_mirror_agreed_total", &Counts::mirror_agreed},
    {"sluice_mirror_dropped_total", &Counts::mirror_dropped},
};
constexpr int kBuckets = serving::kLatencyBuckets;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// 'text' (built by appending: GCC 12 warns, wrongly, on "'" + std::string(...)).
std::string Quoted(std::string_view text) {
  std::string out = "'";
  out.append(text);
  out += '\'';
  return out;
}

// One sample line of the text format: name{label="value",...} value [timestamp].
// Returns an empty string or what is wrong with the line.
std::string ParseSample(std::string_view line, Sample* out) {
  size_t i = 0;
  auto skip_blanks = [&] {
    while (i < line.size() && IsBlank(line[i])) ++i;
  };
  skip_blanks();
  if (i == line.size() || !IsNameStart(line[i])) return "expected a metric name";
  const size_t name_start = i;
  while (i < line.size() && IsNameChar(line[i])) ++i;
  out->name = std::string(line.substr(name_start, i - name_start));
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      skip_blanks();
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      if (i == line.size() || !IsNameStart(line[i])) return "expected a label name or '}'";
      const size_t label_start = i;
      while (i < line.size() && IsNameChar(line[i])) ++i;
      std::string label(line.substr(label_start, i - label_start));
      skip_blanks();
      if (i == line.size() || line[i] != '=') return "expected '=' after label " + label;
      ++i;
      skip_blanks();
      if (i == line.size() || line[i] != '"') return "expected '\"' to open the value of label " + label;
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i == line.size()) break;
          char e = line[i++];
          if (e == 'n') value += '\n';
          else if (e == '\\' || e == '"') value += e;
          else return "unknown escape \\" + std::string(1, e) + " in the value of label " + label;
        } else {
          value += c;
        }
      }
      if (!closed) return "unterminated value of label " + label;
      if (!out->labels.emplace(label, std::move(value)).second) return "label " + label + " repeated";
      skip_blanks();
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      return "expected ',' or '}' after the value of label " + label;
    }
  }
  if (i == line.size() || !IsBlank(line[i])) return "expected a blank and a value after " + out->name;
  skip_blanks();
  const size_t value_start = i;
  while (i < line.size() && !IsBlank(line[i])) ++i;
  const std::string value_text(line.substr(value_start, i - value_start));
  if (value_text.empty()) return "expected a value after " + out->name;
  char* end = nullptr;
  out->value = std::strtod(value_text.c_str(), &end);
  if (end != value_text.c_str() + value_text.size()) return Quoted(value_text) + " is not a number";
  skip_blanks();
  if (i < line.size()) {  // a timestamp in milliseconds, ignored
    const size_t ts_start = i;
    if (line[i] == '-') ++i;
    const size_t digits_start = i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    if (i == digits_start) return Quoted(line.substr(ts_start)) + " is not a timestamp";
    skip_blanks();
    if (i < line.size()) return "unexpected " + Quoted(line.substr(i)) + " after the timestamp";
  }
  return "";
}

// A whole count: counters of answers are integers; 2^53 keeps them exact.
bool WholeCount(double v, int64_t* out) {
  if (!(v >= 0) || v > 9007199254740992.0 || std::floor(v) != v) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

// The bucket index of an `le` label (seconds), or -1.
int BucketOfLe(const std::string& le) {
  char* end = nullptr;
  const double v = std::strtod(le.c_str(), &end);
  if (le.empty() || end != le.c_str() + le.size()) return -1;
  if (std::isinf(v) && v > 0) return kBuckets - 1;
  for (int b = 0; b < kBuckets - 1; ++b) {
    const double bound = serving::kLatencyBoundsMs[b] / 1000.0;
    if (std::fabs(v - bound) <= 1e-9 * std::max(1.0, bound)) return b;
  }
  return -1;
}

std::string SeriesName(const SeriesKey& k) { return k.service + "/" + k.version + "/" + k.role; }

std::string LeText(int bucket) {
  if (bucket == kBuckets - 1) return "+Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", serving::kLatencyBoundsMs[bucket] / 1000.0);
  return buf;
}

void Recount(Counts* c) {
  c->requests = 0;
  c->errors = 0;
  for (const auto& [code, n] : c->codes) {
    c->requests += n;
    if (IsErrorCode(code)) c->errors += n;
  }
}

}  // namespace

void Counts::Add(const Counts& other) {
  for (const auto& [code, n] : other.codes) codes[code] += n;
  for (int b = 0; b < kBuckets; ++b) latency[b] += other.latency[b];
  requests += other.requests;
  errors += other.errors;
  mirror_compared += other.mirror_compared;
  mirror_agreed += other.mirror_agreed;
  mirror_dropped += other.mirror_dropped;
}

bool IsErrorCode(std::string_view code) {
  if (code == "other") return true;
  return code.size() == 3 && code[0] == '5' && code[1] >= '0' && code[1] <= '9' && code[2] >= '0' && code[2] <= '9';
}

Result<Snapshot> ParseMetrics(std::string_view text) {
  struct Cumulative {
    std::array<int64_t, kBuckets> value{};
    std::array<int, kBuckets> line{};  // 0: not seen
  };
  Snapshot snapshot;
  std::map<SeriesKey, Cumulative> buckets;
  std::map<std::pair<SeriesKey, std::string_view>, int> mirror_seen;  // -> line
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = 0;
    while (first < line.size() && IsBlank(line[first])) ++first;
    if (first == line.size() || line[first] == '#') continue;

    auto error = [&](const std::string& what) {
      return Status::InvalidSpec("metrics line " + std::to_string(line_no) + ": " + what);
    };
    Sample s;
    if (std::string problem = ParseSample(line, &s); !problem.empty()) return error(problem);
    const bool requests = s.name == kRequestsTotal;
    const bool bucket = s.name == kDurationBucket;
    int64_t Counts::*mirror_field = nullptr;
    std::string_view mirror_name;
    for (const auto& [name, field] : kMirrorCounters)
      if (s.name == name) {
        mirror_field = field;
        mirror_name = name;
      }
    if (mirror_field) {
      for (const char* label : {"service", "version"})
        if (!s.labels.count(label)) return error(s.name + " without the label " + label);
      SeriesKey key{s.labels["service"], s.labels["version"], "mirror"};
      int64_t count = 0;
      if (!WholeCount(s.value, &count)) return error(s.name + " of " + SeriesName(key) + " is not a whole number");
      if (!mirror_seen.emplace(std::make_pair(key, mirror_name), line_no).second)
        return error(s.name + " of " + SeriesName(key) + " repeated");
      snapshot[key].*mirror_field = count;
      continue;
    }
    if (!requests && !bucket) continue;  // another family

    SeriesKey key;
    const char* needed[] = {"service", "version", "role", requests ? "code" : "le"};
    for (const char* label : needed) {
      if (!s.labels.count(label)) return error(s.name + " without the label " + label);
    }
    key.service = s.labels["service"];
    key.version = s.labels["version"];
    key.role = s.labels["role"];
    int64_t count = 0;
    if (!WholeCount(s.value, &count)) {
      return error(s.name + " of " + SeriesName(key) + " is not a whole number of answers");
    }
    if (requests) {
      const std::string& code = s.labels["code"];
      Counts& c = snapshot[key];
      if (c.codes.count(code)) return error(s.name + " of " + SeriesName(key) + " code " + code + " repeated");
      c.codes[code] = count;
      continue;
    }
    const std::string& le = s.labels["le"];
    const int b = BucketOfLe(le);
    if (b < 0) return error("le=\"" + le + "\" is not a bucket bound of the gateway");
    Cumulative& cum = buckets[key];
    if (cum.line[b] != 0) return error("bucket le=\"" + le + "\" of " + SeriesName(key) + " repeated");
    cum.value[b] = count;
    cum.line[b] = line_no;
  }

  for (const auto& [key, cum] : buckets) {
    Counts& c = snapshot[key];
    for (int b = 0; b < kBuckets; ++b) {
      if (cum.line[b] == 0) {
        return Status::InvalidSpec("metrics: series " + SeriesName(key) + ": bucket le=\"" + LeText(b) +
                                   "\" missing");
      }
      const int64_t previous = b == 0 ? 0 : cum.value[b - 1];
      if (cum.value[b] < previous) {
        return Status::InvalidSpec("metrics line " + std::to_string(cum.line[b]) + ": bucket le=\"" + LeText(b) +
                                   "\" of " + SeriesName(key) + " holds " + std::to_string(cum.value[b]) +
                                   ", fewer than the " + std::to_string(previous) +
                                   " of the bucket before it (buckets are cumulative)");
      }
      c.latency[b] = cum.value[b] - previous;
    }
  }
  for (auto& [key, c] : snapshot) Recount(&c);
  return snapshot;
}

Snapshot Increase(const Snapshot& before, const Snapshot& after) {
  Snapshot out;
  for (const auto& [key, a] : after) {
    auto it = before.find(key);
    Counts inc = a;
    if (it != before.end()) {
      const Counts& b = it->second;
      bool reset = false;
      for (const auto& [code, n] : b.codes) {
        auto now = a.codes.find(code);
        if ((now == a.codes.end() ? 0 : now->second) < n) reset = true;
      }
      for (int i = 0; i < kBuckets; ++i) {
        if (a.latency[i] < b.latency[i]) reset = true;
      }
      for (const auto& [name, field] : kMirrorCounters) {
        if (a.*field < b.*field) reset = true;
      }
      if (!reset) {
        for (const auto& [name, field] : kMirrorCounters) inc.*field -= b.*field;
        for (const auto& [code, n] : b.codes) {
          int64_t& v = inc.codes[code];
          v -= n;
          if (v == 0) inc.codes.erase(code);
        }
        for (int i = 0; i < kBuckets; ++i) inc.latency[i] -= b.latency[i];
        Recount(&inc);
      }
    }
    bool any = inc.requests > 0;
    for (int64_t n : inc.latency) any = any || n > 0;
    for (const auto& [name, field] : kMirrorCounters) any = any || inc.*field > 0;
    if (any) out.emplace(key, std::move(inc));
  }
  return out;
}

Counts CountsOf(const Snapshot& snapshot, const SeriesKey& key) {
  auto it = snapshot.find(key);
  return it == snapshot.end() ? Counts{} : it->second;
}

std::optional<double> LatencyQuantileMs(const Counts& counts, double q) {
  serving::Window w;
  w.latency = counts.latency;
  // The text has no largest latency: mark the +Inf bucket's answer so it
  // can be told from every bound.
  w.latency_max_us = std::numeric_limits<int64_t>::max();
  std::optional<double> ms = serving::LatencyQuantileMs(w, q);
  if (ms && *ms > serving::kLatencyBoundsMs.back()) return std::numeric_limits<double>::infinity();
  return ms;
}

}  // namespace sluice::deploy
