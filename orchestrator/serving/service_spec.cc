#include "serving/service_spec.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "spec/yaml_tree.h"
#include "util/strings.h"

namespace sluice::serving {

namespace {

using spec::SourcePos;
using spec::YamlNode;

constexpr size_t kMaxErrors = 50;

bool IsNameChar(char c, bool underscore) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (underscore && c == '_');
}

// [a-z0-9][a-z0-9-]{0,max-1}, with '_' too when `underscore`.
bool IsName(const std::string& s, size_t max, bool underscore) {
  if (s.empty() || s.size() > max || s[0] == '-' || s[0] == '_') return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return IsNameChar(c, underscore); });
}

bool IsEnvName(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool AllDigits(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "90", "12.5", "100.00" -> basis points; nullopt unless digits with at most
// two decimals (no sign, no exponent).
std::optional<int> BasisPoints(const std::string& s) {
  size_t dot = s.find('.');
  std::string whole = s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (whole.empty() || whole.size() > 6 || frac.size() > 2 || (dot != std::string::npos && frac.empty())) return {};
  if (!AllDigits(whole) || !AllDigits(frac)) return {};
  while (frac.size() < 2) frac += '0';
  return std::stoi(whole) * 100 + std::stoi(frac);
}

class Parser {
 public:
  Parser(const std::string& file, const std::string& text) : file_(file), text_(text) {}

  Result<ServiceSpec> Parse();

 private:
  void Error(SourcePos pos, const std::string& message) {
    if (errors_.size() < kMaxErrors) errors_.push_back(spec::At(file_, pos, message));
  }

  // Checks that `n` is a map, reports repeated and unknown keys, and calls
  // each(key, value) for every known key once.
  template <typename F>
  bool ForEachKey(const YamlNode& n, const std::vector<std::string>& known, const std::string& where, F&& each) {
    if (!n.IsMap()) {
      Error(n.pos, where + " must be a mapping");
      return false;
    }
    for (size_t i = 0; i < n.entries.size(); ++i) {
      const YamlNode& key = n.entries[i].first;
      if (!key.IsScalar()) {
        Error(key.pos, "keys in " + where + " must be plain words");
        continue;
      }
      const std::string& k = key.Scalar();
      bool repeated = std::any_of(n.entries.begin(), n.entries.begin() + i,
                                  [&](const auto& e) { return e.first.IsScalar() && e.first.Scalar() == k; });
      if (repeated) {
        Error(key.pos, "key " + Quote(k) + " appears twice in " + where);
        continue;
      }
      if (!known.empty() && std::find(known.begin(), known.end(), k) == known.end()) {
        Error(key.pos, "unknown key " + Quote(k) + (where == "the service" ? "" : " in " + where) +
                           DidYouMean(k, known));
        continue;
      }
      each(k, key, n.entries[i].second);
    }
    return true;
  }

  bool Scalar(const YamlNode& n, const std::string& what, std::string* out) {
    if (!n.IsScalar()) {
      Error(n.pos, what + " must be a single value");
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  bool Int(const YamlNode& n, const std::string& what, int lo, int hi, int* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    bool ok = !s.empty() && s.size() <= 9 && AllDigits(s);
    int v = ok ? std::stoi(s) : 0;
    if (!ok || v < lo || v > hi) {
      Error(n.pos, what + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                       ", not " + Quote(s));
      return false;
    }
    *out = v;
    return true;
  }

  bool Duration(const YamlNode& n, const std::string& what, Millis lo, Millis hi, Millis* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    auto d = ParseDuration(s);
    if (!d) {
      Error(n.pos, "bad duration " + Quote(s) + " for " + what + " (use a number and a unit: 500ms, 10s, 5m, 2h)");
      return false;
    }
    if (*d < lo || *d > hi) {
      Error(n.pos, what + " must be from " + FormatDuration(lo) + " to " + FormatDuration(hi) + ", not " + Quote(s));
      return false;
    }
    *out = *d;
    return true;
  }

  void Versions(const YamlNode& n);
  void Version(const YamlNode& key, const YamlNode& n, VersionSpec* v);
  void Traffic(const YamlNode& n);
  void Sticky(const YamlNode& n);
  void Mirror(const YamlNode& n);
  void Auth(const YamlNode& n);
  void Cache(const YamlNode& n);
  void Stats(const YamlNode& n);
  void CrossChecks(const YamlNode* mirror_node);

  std::string file_;
  const std::string& text_;
  std::string folder_;
  ServiceSpec s_;
  std::vector<std::string> errors_;
  SourcePos mirror_version_pos_;  // where mirror.version is
};

const std::vector<std::string> kTopKeys = {"service", "versions", "traffic", "sticky", "mirror", "timeout",
                                           "max_inflight", "auth", "cache", "stats"};
const std::vector<std::string> kVersionKeys = {"model",   "command",   "port_env",  "env",         "workdir",
                                               "replicas", "threads",  "max_batch", "max_wait_ms", "max_queue",
                                               "ready_timeout"};

Result<ServiceSpec> Parser::Parse() {
  s_.file = file_;
  folder_ = std::filesystem::path(file_).parent_path().string();
  if (folder_.empty()) folder_ = ".";
  auto one_line = [](const std::string& m) {
    std::string quoted = Quote(m);
    return quoted.substr(1, quoted.size() - 2);
  };
  if (text_.find_first_not_of(" \t\r\n") == std::string::npos)
    return Status::InvalidSpec(spec::At(file_, {1, 1}, "the file is empty; a service needs 'service' and 'versions'"));
  auto parsed = spec::ParseYaml(text_);
  if (auto* err = std::get_if<spec::YamlError>(&parsed))
    return Status::InvalidSpec(
        one_line(spec::At(file_, err->pos, (err->malformed ? "malformed YAML: " : "") + err->message)));
  const YamlNode& root = std::get<YamlNode>(parsed);
  if (!root.IsMap())
    return Status::InvalidSpec(spec::At(file_, root.IsNull() ? SourcePos{1, 1} : root.pos,
                                        "a service must be a mapping with 'service' and 'versions'"));
  bool have_name = false, have_versions = false;
  const YamlNode* traffic = nullptr;
  const YamlNode* mirror = nullptr;
  ForEachKey(root, kTopKeys, "the service", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "service") {
      have_name = true;
      std::string name;
      if (!Scalar(v, "service", &name)) return;
      if (!IsName(name, 63, false))
        Error(v.pos, "service: " + Quote(name) +
                         " is not a service name (lowercase letters, digits and '-', at most 63)");
      s_.name = name;
    } else if (k == "versions") {
      have_versions = true;
      Versions(v);
    } else if (k == "traffic") {
      traffic = &v;
    } else if (k == "sticky") {
      Sticky(v);
    } else if (k == "mirror") {
      mirror = &v;
    } else if (k == "timeout") {
      Duration(v, "timeout", kMinTimeout, kMaxTimeout, &s_.timeout);
    } else if (k == "max_inflight") {
      Int(v, "max_inflight", 1, kMaxInflight, &s_.max_inflight);
    } else if (k == "auth") {
      Auth(v);
    } else if (k == "cache") {
      Cache(v);
    } else if (k == "stats") {
      Stats(v);
    }
  });
  if (!have_name) Error({1, 1}, "missing required key 'service'");
  if (!have_versions) Error({1, 1}, "missing required key 'versions'");
  // Traffic and the mirror name versions: read them once the versions are known.
  if (traffic) Traffic(*traffic);
  else if (s_.versions.size() == 1) s_.versions[0].weight_bp = 10'000;
  if (mirror) Mirror(*mirror);
  if (s_.sticky && s_.sticky->salt.empty()) s_.sticky->salt = s_.name;
  if (errors_.empty()) CrossChecks(mirror);
  if (!errors_.empty()) {
    for (std::string& e : errors_) e = one_line(e);
    return Status::InvalidSpec(Join(errors_, "\n"));
  }
  return std::move(s_);
}

void Parser::Versions(const YamlNode& n) {
  if (!n.IsMap() || n.entries.empty()) {
    Error(n.pos, "versions must be a mapping of 1 to " + std::to_string(kMaxVersions) +
                     " versions, such as {blue: {model: fashion@1}}");
    return;
  }
  if (n.entries.size() > static_cast<size_t>(kMaxVersions)) {
    Error(n.entries[kMaxVersions].first.pos, "versions: at most " + std::to_string(kMaxVersions) + " versions, not " +
                                                 std::to_string(n.entries.size()));
    return;
  }
  ForEachKey(n, {}, "versions", [&](const std::string& k, const YamlNode& key, const YamlNode& v) {
    if (!IsName(k, 32, true)) {
      Error(key.pos, "versions: " + Quote(k) +
                         " is not a version name (lowercase letters, digits, '-' and '_', at most 32)");
      return;
    }
    VersionSpec version;
    version.name = k;
    version.pos = key.pos;
    Version(key, v, &version);
    s_.versions.push_back(std::move(version));
  });
}

void Parser::Version(const YamlNode& key, const YamlNode& n, VersionSpec* v) {
  const std::string where = "versions." + v->name;
  const YamlNode* model = nullptr;
  const YamlNode* command = nullptr;
  std::vector<const YamlNode*> model_options;  // keys that only a model version takes
  bool have_workdir = false;
  ForEachKey(n, kVersionKeys, where, [&](const std::string& k, const YamlNode& kn, const YamlNode& x) {
    if (k == "model") {
      model = &x;
    } else if (k == "command") {
      command = &x;
    } else if (k == "port_env") {
      if (Scalar(x, where + ".port_env", &v->port_env) && !IsEnvName(v->port_env))
        Error(x.pos, where + ".port_env: " + Quote(v->port_env) + " is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
    } else if (k == "env") {
      ForEachKey(x, {}, where + ".env", [&](const std::string& name, const YamlNode& nk, const YamlNode& val) {
        if (!IsEnvName(name)) {
          Error(nk.pos, where + ".env: " + Quote(name) + " is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
          return;
        }
        std::string s;
        if (Scalar(val, where + ".env." + name, &s)) v->env[name] = s;
      });
    } else if (k == "workdir") {
      std::string dir;
      if (Scalar(x, where + ".workdir", &dir)) {
        have_workdir = true;
        v->workdir = std::filesystem::path(dir).is_absolute() ? dir : (std::filesystem::path(folder_) / dir).string();
      }
    } else if (k == "replicas") {
      Int(x, where + ".replicas", 0, kMaxReplicas, &v->replicas);
    } else if (k == "ready_timeout") {
      Duration(x, where + ".ready_timeout", Millis(1'000), Millis(3'600'000), &v->ready_timeout);
    } else {
      model_options.push_back(&kn);
      int* field = k == "threads" ? &v->threads : k == "max_batch" ? &v->max_batch
                                                : k == "max_wait_ms" ? &v->max_wait_ms : &v->max_queue;
      Int(x, where + "." + k, k == "max_wait_ms" ? 0 : 1, k == "max_wait_ms" ? 10'000 : 65'536, field);
    }
  });
  if (!n.IsMap()) return;
  if (model && command) {
    Error(key.pos, where + ": give model or command, not both");
    return;
  }
  if (!model && !command) {
    Error(key.pos, where + ": give model (NAME@VERSION or a file) or command (a list: argv)");
    return;
  }
  if (model) {
    v->kind = VersionSpec::Kind::kModel;
    v->model_pos = model->pos;
    if (!Scalar(*model, where + ".model", &v->model)) return;
    size_t at = v->model.find('@');
    if (v->model.empty()) {
      Error(model->pos, where + ".model must not be empty");
    } else if (at != std::string::npos) {
      if (at == 0 || at + 1 == v->model.size() || v->model.find('@', at + 1) != std::string::npos)
        Error(model->pos, where + ".model: " + Quote(v->model) +
                              " is neither NAME@VERSION, NAME@ALIAS nor a file (a file's name has no '@')");
    } else {
      v->model_file = std::filesystem::path(v->model).is_absolute()
                          ? v->model
                          : (std::filesystem::path(folder_) / v->model).string();
    }
    if (have_workdir || !v->env.empty())
      Error(key.pos, where + ": env and workdir are for command versions; a model version runs Sluice's model server");
    return;
  }
  v->kind = VersionSpec::Kind::kCommand;
  if (!have_workdir) v->workdir = folder_;
  for (const YamlNode* kn : model_options)
    Error(kn->pos, where + "." + kn->Scalar() + " is for model versions; give a command its options in its argv");
  if (!command->IsSequence() || command->items.empty()) {
    Error(command->pos, where + ".command must be a non-empty list of strings (argv, no shell)");
    return;
  }
  for (const YamlNode& item : command->items) {
    std::string arg;
    if (Scalar(item, where + ".command's items", &arg)) v->command.push_back(arg);
  }
}

void Parser::Traffic(const YamlNode& n) {
  std::vector<std::string> names;
  for (const VersionSpec& v : s_.versions) names.push_back(v.name);
  int sum = 0;
  bool bad = false;
  bool all_read = ForEachKey(n, {}, "traffic", [&](const std::string& k, const YamlNode& key, const YamlNode& x) {
    auto it = std::find_if(s_.versions.begin(), s_.versions.end(), [&](const VersionSpec& v) { return v.name == k; });
    std::string w;
    if (!Scalar(x, "traffic." + k, &w)) {
      bad = true;
      return;
    }
    auto bp = BasisPoints(w);
    if (!bp || *bp > 10'000) {
      bad = true;
      Error(x.pos,
            "traffic." + k + ": weight " + Quote(w) + " must be a number from 0 to 100 with at most two decimals");
      return;
    }
    if (it == s_.versions.end()) {
      bad = true;
      Error(key.pos,
            "traffic: " + Quote(k) + " is not a version of this service (versions: " + Join(names, ", ") + ")");
      return;
    }
    it->weight_bp = *bp;
    sum += *bp;
  });
  if (!all_read) return;
  s_.traffic_given = true;
  if (!bad && sum != 10'000)
    Error(n.pos, "traffic: weights add up to " + FormatPercent(sum) + ", not 100");
}

void Parser::Sticky(const YamlNode& n) {
  StickySpec st;
  const YamlNode* header = nullptr;
  const YamlNode* field = nullptr;
  ForEachKey(n, {"header", "field", "salt"}, "sticky", [&](const std::string& k, const YamlNode&, const YamlNode& x) {
    if (k == "header") {
      header = &x;
      if (!Scalar(x, "sticky.header", &st.header)) return;
      bool token = !st.header.empty() && std::all_of(st.header.begin(), st.header.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      });
      if (!token)
        Error(x.pos, "sticky.header: " + Quote(st.header) + " is not a lower-case header name, such as x-user-id");
    } else if (k == "field") {
      field = &x;
      std::string path;
      if (!Scalar(x, "sticky.field", &path)) return;
      st.field = Split(path, '.');
      bool empty_part = path.empty() || path.back() == '.' ||
                        std::any_of(st.field.begin(), st.field.end(), [](auto& p) { return p.empty(); });
      if (empty_part || st.field.size() > 4)
        Error(x.pos,
              "sticky.field: " + Quote(path) + " must be a path of 1 to 4 object keys, such as parameters.user_id");
    } else {
      Scalar(x, "sticky.salt", &st.salt);
    }
  });
  if (!n.IsMap()) return;
  if (header && field) Error(n.pos, "sticky: give header or field, not both");
  else if (!header && !field) Error(n.pos, "sticky: give header or field");
  s_.sticky = st;
}

void Parser::Mirror(const YamlNode& n) {
  MirrorSpec m;
  bool have_version = false;
  ForEachKey(n, {"version", "percent"}, "mirror", [&](const std::string& k, const YamlNode&, const YamlNode& x) {
    if (k == "version") {
      have_version = true;
      mirror_version_pos_ = x.pos;
      Scalar(x, "mirror.version", &m.version);
    } else {
      std::string p;
      if (!Scalar(x, "mirror.percent", &p)) return;
      auto bp = BasisPoints(p);
      if (!bp || *bp == 0 || *bp > 10'000)
        Error(x.pos, "mirror.percent: " + Quote(p) + " must be more than 0 and at most 100, with at most two decimals");
      else m.percent_bp = *bp;
    }
  });
  if (!n.IsMap()) return;
  if (!have_version) Error(n.pos, "mirror needs version: the version that gets the copies");
  s_.mirror = m;
}

void Parser::Auth(const YamlNode& n) {
  AuthSpec a;
  bool have_env = false;
  ForEachKey(n, {"token_env"}, "auth", [&](const std::string&, const YamlNode&, const YamlNode& x) {
    have_env = true;
    a.token_env_pos = x.pos;
    if (Scalar(x, "auth.token_env", &a.token_env) && !IsEnvName(a.token_env))
      Error(x.pos, "auth.token_env: " + Quote(a.token_env) + " is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  });
  if (!n.IsMap()) return;
  if (!have_env) Error(n.pos, "auth needs token_env: the environment variable that holds the infer token");
  s_.auth = a;
}

void Parser::Cache(const YamlNode& n) {
  CacheSpec c;
  ForEachKey(n, {"entries", "ttl"}, "cache", [&](const std::string& k, const YamlNode&, const YamlNode& x) {
    if (k == "entries") Int(x, "cache.entries", 1, kMaxCacheEntries, &c.entries);
    else Duration(x, "cache.ttl", kMinCacheTtl, kMaxCacheTtl, &c.ttl);
  });
  if (!n.IsMap()) return;
  s_.cache = c;
}

void Parser::Stats(const YamlNode& n) {
  ForEachKey(n, {"sample"}, "stats", [&](const std::string&, const YamlNode&, const YamlNode& x) {
    std::string text;
    if (!Scalar(x, "stats.sample", &text)) return;
    // Digits with an optional point and decimals: 1, 0.25, .5, 1.0.
    bool shape = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789.") == std::string::npos &&
                 std::count(text.begin(), text.end(), '.') <= 1 && text != ".";
    double v = shape ? std::strtod(text.c_str(), nullptr) : -1;
    if (!shape || v < 0 || v > 1) {
      Error(x.pos, "stats.sample: " + Quote(text) + " must be a number from 0 to 1 (the share of requests profiled)");
      return;
    }
    s_.stats_sample = v;
  });
}

void Parser::CrossChecks(const YamlNode* mirror_node) {
  for (const VersionSpec& v : s_.versions)
    if (v.replicas == 0 && v.weight_bp > 0)
      Error(v.pos, "versions." + v.name + ": 0 replicas cannot take weight " + FormatPercent(v.weight_bp));
  if (!s_.mirror || !mirror_node) return;
  const VersionSpec* target = s_.FindVersion(s_.mirror->version);
  if (!target) {
    std::vector<std::string> names;
    for (const VersionSpec& v : s_.versions) names.push_back(v.name);
    Error(mirror_version_pos_, "mirror.version: " + Quote(s_.mirror->version) + " is not a version of this service" +
                                   DidYouMean(s_.mirror->version, names));
  } else if (target->weight_bp > 0) {
    Error(mirror_version_pos_, "mirror.version: " + Quote(target->name) + " has weight " +
                                   FormatPercent(target->weight_bp) + "; a mirrored version takes no live traffic");
  } else if (target->replicas == 0) {
    Error(mirror_version_pos_, "mirror.version: " + Quote(target->name) + " has 0 replicas; a mirror needs at least 1");
  }
}

}  // namespace

const VersionSpec* ServiceSpec::FindVersion(const std::string& version) const {
  for (const VersionSpec& v : versions)
    if (v.name == version) return &v;
  return nullptr;
}

std::optional<int> ParseBasisPoints(const std::string& text) { return BasisPoints(text); }

std::string FormatPercent(int basis_points) {
  std::string out = std::to_string(basis_points / 100);
  int frac = basis_points % 100;
  if (frac == 0) return out;
  out += '.';
  out += static_cast<char>('0' + frac / 10);
  if (frac % 10) out += static_cast<char>('0' + frac % 10);
  return out;
}

Result<ServiceSpec> ParseServiceSpec(const std::string& file, const std::string& text) {
  return Parser(file, text).Parse();
}

Result<ServiceSpec> LoadServiceSpec(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Status::InvalidSpec(path + ": is a folder, not a service file (name a .yaml file in it)");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno("open " + path, errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParseServiceSpec(path, ss.str());
}

}  // namespace sluice::serving
