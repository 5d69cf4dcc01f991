// YAML -> Pipeline. Every problem, from malformed YAML to a cycle, becomes a
// FILE:LINE:COL diagnostic. The loader keeps going after an error
// where it can, so one run of `sluice validate` shows every problem.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <unordered_set>
#include <sstream>

#include "spec/pipeline.h"
#include "spec/shell_check.h"
#include "spec/yaml_tree.h"
#include "util/strings.h"

namespace sluice::spec {

namespace {

const std::vector<std::string> kTopKeys = {"name", "description", "params", "env", "secrets", "defaults", "steps", "on",
                                           "max_active_runs"};
const std::vector<std::string> kStepKeys = {"needs", "run", "uses", "with", "isolation", "env", "workdir", "timeout",
                                            "retry", "resources", "if", "foreach", "continue_on_error", "outputs", "cache", "register",
                                            "executor", "slurm", "secrets", "deps"};
const std::vector<std::string> kParamKeys = {"type", "default", "min", "max", "enum", "description"};
const std::vector<std::string> kDefaultsKeys = {"timeout", "retry", "cache", "executor", "slurm"};
const std::vector<std::string> kExecutors = {"local", "slurm"};
const std::vector<std::string> kSlurmKeys = {"partition", "account", "qos", "time", "extra"};
const std::vector<std::string> kRetryKeys = {"limit", "backoff"};
const std::vector<std::string> kBackoffKeys = {"initial", "factor", "max", "jitter"};
const std::vector<std::string> kResourceKeys = {"cpu", "memory", "gpu"};
const std::vector<std::string> kParamTypes = {"int", "float", "string", "bool"};
constexpr size_t kMaxErrors = 50;

// The place and description of the first byte that is not UTF-8, if any:
// libyaml says only "invalid leading UTF-8 octet", at the file's start.
std::optional<std::pair<SourcePos, std::string>> FirstInvalidUtf8(const std::string& text) {
  SourcePos pos{1, 1};
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    if (!ok) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return std::make_pair(pos, std::string("the file is not UTF-8 here (byte ") + hex + "); save it as UTF-8");
    }
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
    i += len;
  }
  return std::nullopt;
}

class Loader {
 public:
  Loader(const std::string& file, const std::string& text) : file_(file), text_(text) {}

  Result<Pipeline> Load() {
    p_.file = file_;
    p_.text = text_;
    // One error per line, whatever text a message quotes: a control
    // character left in one (a raw newline would start a line without a
    // FILE:LINE:COL) is escaped as Quote() escapes it.
    auto one_line = [](const std::string& m) {
      std::string quoted = Quote(m);
      return quoted.substr(1, quoted.size() - 2);
    };
    if (text_.find_first_not_of(" \t\r\n") == std::string::npos)
      return Status::InvalidSpec(At(file_, {1, 1}, "the file is empty; a pipeline needs 'name' and 'steps'"));
    if (auto bad = FirstInvalidUtf8(text_)) return Status::InvalidSpec(At(file_, bad->first, bad->second));
    auto parsed = ParseYaml(text_);
    if (auto* err = std::get_if<YamlError>(&parsed))
      return Status::InvalidSpec(
          one_line(At(file_, err->pos, (err->malformed ? "malformed YAML: " : "") + err->message)));
    // The module edge: nothing the checks call may throw past it (a time
    // zone that names a folder once made the file read throw, and `sluice
    // validate` abort). Such a throw is a bug, reported as one, located at
    // the spec's start since its place is unknown.
    try {
      LoadRoot(std::get<YamlNode>(parsed));
    } catch (const std::exception& e) {
      return Status::InvalidSpec(one_line(
          At(file_, {1, 1}, std::string("internal error in the loader (a bug: please report it): ") + e.what())));
    }
    if (!errors_.empty()) {
      for (std::string& e : errors_) e = one_line(e);
      return Status::InvalidSpec(Join(errors_, "\n"));
    }
    return std::move(p_);
  }

 private:
  static SourcePos Pos(const YamlNode& n) { return n.pos; }
  void Error(SourcePos pos, const std::string& message) {
    if (errors_.size() < kMaxErrors) errors_.push_back(At(file_, pos, message));
  }
  // 1 when the scalar at `n` starts with a quote, so columns skip it.
  static int QuoteShift(const YamlNode& n) { return n.quoted ? 1 : 0; }

  // Checks that `n` is a map, reports unknown and repeated keys, and calls
  // `each(key, value)` for every known key.
  template <typename F>
  bool ForEachKey(const YamlNode& n, const std::vector<std::string>& known, const std::string& where, F&& each) {
    if (!n.IsMap()) {
      Error(Pos(n), where + " must be a mapping");
      return false;
    }
    // Small maps (nearly all of them) check repeats by scanning; the steps
    // map of a big spec uses a hash set.
    std::unordered_set<std::string_view> seen;
    bool big = n.entries.size() > 16;
    for (size_t i = 0; i < n.entries.size(); ++i) {
      const YamlNode& key = n.entries[i].first;
      const YamlNode& value = n.entries[i].second;
      if (!key.IsScalar()) {
        Error(Pos(key), "keys in " + where + " must be plain words");
        continue;
      }
      const std::string& k = key.Scalar();
      bool repeated = big ? !seen.insert(k).second
                          : std::any_of(n.entries.begin(), n.entries.begin() + i, [&](const auto& e) {
                              return e.first.IsScalar() && e.first.Scalar() == k;
                            });
      if (repeated) {
        Error(Pos(key), "key '" + k + "' appears twice in " + where);
        continue;
      }
      // `x-` keys are the user's own (anchors for `<<:` merges, notes): ignored.
      if (!known.empty() && k.rfind("x-", 0) == 0) continue;
      if (!known.empty() && std::find(known.begin(), known.end(), k) == known.end()) {
        Error(Pos(key), "unknown key " + Quote(k) + " in " + where + DidYouMean(k, known));
        continue;
      }
      each(k, key, value);
    }
    return true;
  }

  bool Scalar(const YamlNode& n, const std::string& what, std::string* out) {
    if (!n.IsScalar()) {
      Error(Pos(n), what + " must be a single value");
      return false;
    }
    *out = n.Scalar();
    return true;
  }
  bool Bool(const YamlNode& n, const std::string& what, bool* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    if (s == "true" || s == "True") *out = true;
    else if (s == "false" || s == "False") *out = false;
    else {
      Error(Pos(n), what + " must be true or false, not " + Quote(s));
      return false;
    }
    return true;
  }
  bool Number(const YamlNode& n, const std::string& what, double* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    if (!Value::Str(s).AsNumber(out)) {
      Error(Pos(n), what + " must be a number, not " + Quote(s));
      return false;
    }
    return true;
  }
  bool Int(const YamlNode& n, const std::string& what, int64_t lo, int64_t hi, int64_t* out) {
    double d;
    if (!Number(n, what, &d)) return false;
    // Range first: casting a double outside int64_t's range is undefined.
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::trunc(d)) {
      Error(Pos(n), what + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                        ", not " + Quote(n.Scalar()));
      return false;
    }
    *out = static_cast<int64_t>(d);
    return true;
  }
  bool Duration(const YamlNode& n, const std::string& what, Millis* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    auto d = ParseDuration(s);
    if (!d) {
      Error(Pos(n), "bad duration " + Quote(s) + " for " + what + " (use a number and a unit: 500ms, 10s, 5m, 2h)");
      return false;
    }
    *out = *d;
    return true;
  }
  // A timeout of 0 would kill the step at once: refused, not a silent kill.
  bool Timeout(const YamlNode& n, Millis* out) {
    if (!Duration(n, "timeout", out)) return false;
    if (out->count() > 0) return true;
    Error(Pos(n), "timeout must be longer than 0 (leave it out for no timeout)");
    return false;
  }
  // cache: true | false | {max_age: 7d}. A map turns the cache on; `true`
  // keeps the max_age it had (from defaults), `false` turns it off.
  void Cache(const YamlNode& n, bool* on, std::optional<Millis>* max_age) {
    if (!n.IsMap()) {
      std::string s;
      if (!Scalar(n, "cache", &s)) return;
      if (s == "true" || s == "True") *on = true;
      else if (s == "false" || s == "False") *on = false;
      else Error(Pos(n), "cache must be true, false or {max_age: 7d}, not " + Quote(s));
      return;
    }
    *on = true;
    ForEachKey(n, {"max_age"}, "cache", [&](const std::string&, const YamlNode&, const YamlNode& v) {
      Millis d;
      if (!Duration(v, "cache max_age", &d)) return;
      if (d.count() <= 0) Error(Pos(v), "cache max_age must be longer than 0 (use cache: false to never reuse a result)");
      else *max_age = d;
    });
  }

  // deps: a path or a list of paths and globs under the spec's folder. They
  // are literal: an expression would make the files unknown until run time.
  void LoadDeps(const YamlNode& n, Step* s) {
    const std::string where = "step '" + s->id + "'";
    std::vector<const YamlNode*> items;
    if (n.IsScalar()) items.push_back(&n);
    else if (n.IsSequence()) for (const YamlNode& e : n.items) items.push_back(&e);
    else {
      Error(Pos(n), where + ": deps must be a path or a list of paths and globs, relative to the spec's folder");
      return;
    }
    for (const YamlNode* e : items) {
      std::string dep;
      if (!Scalar(*e, "each entry of deps", &dep)) continue;
      SourcePos pos = Pos(*e);
      pos.column += QuoteShift(*e);
      std::string problem = DepProblem(dep);
      if (!problem.empty()) Error(pos, where + ": dep " + Quote(dep) + " " + problem);
      else s->deps.push_back({dep, pos});
    }
  }
  static std::string DepProblem(const std::string& dep) {
    if (dep.find_first_not_of(" \t") == std::string::npos) return "is empty";
    if (dep.find("${{") != std::string::npos) return "has an expression; deps are literal paths and globs";
    if (dep[0] == '/') return "is an absolute path; deps are relative to the spec's folder";
    if (dep[0] == '~') return "starts with ~; deps are relative to the spec's folder";
    std::string norm = std::filesystem::path(dep).lexically_normal().generic_string();
    if (norm == ".." || norm.rfind("../", 0) == 0) return "is outside the spec's folder; deps must stay under it";
    return "";
  }

  bool Tmpl(const YamlNode& n, const std::string& what, Template* out) {
    std::string s;
    if (!Scalar(n, what, &s)) return false;
    if (auto err = ParseTemplate(s, Pos(n), QuoteShift(n), out)) {
      Error(err->first, err->second);
      return false;
    }
    return true;
  }

  void LoadRoot(const YamlNode& root) {
    if (!root.IsMap()) {
      Error(!root.IsNull() ? Pos(root) : SourcePos{1, 1},
            "a pipeline must be a mapping with 'name' and 'steps'");
      return;
    }
    const YamlNode* steps_node = nullptr;
    const YamlNode* env_node = nullptr;
    bool have_name = false;
    p_.params_pos = {1, 1};
    ForEachKey(root, kTopKeys, "the pipeline", [&](const std::string& k, const YamlNode& key, const YamlNode& v) {
      if (k == "name") {
        have_name = true;
        if (Scalar(v, "name", &p_.name) && !IsPipelineName(p_.name))
          Error(Pos(v), "pipeline name " + Quote(p_.name) + " must match [a-z0-9][a-z0-9-]*");
        if (p_.params_pos == SourcePos{1, 1}) p_.params_pos = Pos(key);
      } else if (k == "description") {
        Scalar(v, "description", &p_.description);
      } else if (k == "params") {
        p_.params_pos = Pos(key);
        LoadParams(v);
      } else if (k == "env") {
        env_node = &v;
      } else if (k == "secrets") {
        LoadSecrets(v, "secrets", &p_.secrets);
      } else if (k == "defaults") {
        LoadDefaults(v);
      } else if (k == "steps") {
        steps_node = &v;
      } else if (k == "on") {
        LoadTriggers(v);
      } else if (k == "max_active_runs") {
        int64_t n;
        if (Int(v, "max_active_runs", 1, 10000, &n)) p_.max_active_runs = static_cast<int>(n);
      }
    });
    if (!have_name) Error({1, 1}, "missing required key 'name'");
    if (!steps_node) Error({1, 1}, "missing required key 'steps'");
    if (env_node) p_.env = LoadEnv(*env_node, "env");
    if (steps_node) LoadSteps(*steps_node);
    for (auto& [name, t] : p_.env) CheckRefs(t, nullptr, "env " + name);
    CheckWebhook();
    if (errors_.empty()) FindCycles();
  }

  void LoadParams(const YamlNode& n) {
    if (n.IsNull()) return;
    ForEachKey(n, {}, "params", [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
      ParamSpec ps;
      ps.name = name;
      ps.pos = Pos(key);
      if (!IsIdentifier(name)) {
        Error(Pos(key), "param name " + Quote(name) + " must match [A-Za-z_][A-Za-z0-9_-]*");
        return;
      }
      const YamlNode *def = nullptr, *min = nullptr, *max = nullptr, *allowed = nullptr;
      bool typed = false;
      ForEachKey(v, kParamKeys, "param '" + name + "'", [&](const std::string& k, const YamlNode&, const YamlNode& f) {
        std::string s;
        if (k == "type") {
          if (!Scalar(f, "type", &s)) return;
          auto it = std::find(kParamTypes.begin(), kParamTypes.end(), s);
          if (it == kParamTypes.end()) {
            Error(Pos(f), "param '" + name + "': unknown type " + Quote(s) + " (use int, float, string or bool)");
            return;
          }
          ps.type = static_cast<ParamSpec::Type>(it - kParamTypes.begin());
          typed = true;
        } else if (k == "default") def = &f;
        else if (k == "min") min = &f;
        else if (k == "max") max = &f;
        else if (k == "enum") allowed = &f;
        else if (k == "description") Scalar(f, "description", &ps.description);
      });
      if (!typed && v.IsMap()) {
        Error(Pos(key), "param '" + name + "' needs a type (int, float, string or bool)");
        return;
      }
      bool numeric = ps.type == ParamSpec::Type::kInt || ps.type == ParamSpec::Type::kFloat;
      double d;
      if (min) {
        if (!numeric) Error(Pos(*min), "param '" + name + "': min applies to int and float params only");
        else if (Number(*min, "min", &d)) ps.min = d;
      }
      if (max) {
        if (!numeric) Error(Pos(*max), "param '" + name + "': max applies to int and float params only");
        else if (Number(*max, "max", &d)) ps.max = d;
      }
      if (allowed) {
        if (!allowed->IsSequence() || allowed->size() == 0) {
          Error(Pos(*allowed), "param '" + name + "': enum must be a non-empty list");
        } else {
          for (const YamlNode& a : allowed->items) {
            std::string s;
            if (!Scalar(a, "an enum value", &s)) continue;
            auto val = CoerceParam(ps, s);
            if (!val.ok()) Error(Pos(a), val.status().message());
            else ps.allowed.push_back(*val);
          }
        }
      }
      if (def) {
        std::string s;
        if (Scalar(*def, "default", &s)) {
          auto val = CheckParam(ps, s, "default ");
          if (!val.ok()) Error(Pos(*def), val.status().message());
          else ps.default_value = *val;
        }
      }
      p_.params.push_back(std::move(ps));
    });
  }

  void LoadRetry(const YamlNode& n, RetryPolicy* r) {
    int64_t i;
    if (n.IsScalar()) {  // retry: 3
      if (Int(n, "retry", 0, 1000, &i)) r->limit = static_cast<int>(i);
      return;
    }
    ForEachKey(n, kRetryKeys, "retry", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
      if (k == "limit") {
        if (Int(v, "retry limit", 0, 1000, &i)) r->limit = static_cast<int>(i);
      } else {
        ForEachKey(v, kBackoffKeys, "backoff", [&](const std::string& bk, const YamlNode&, const YamlNode& bv) {
          double d;
          if (bk == "initial") Duration(bv, "backoff initial", &r->backoff.initial);
          else if (bk == "max") Duration(bv, "backoff max", &r->backoff.max);
          else if (bk == "jitter") Bool(bv, "jitter", &r->backoff.jitter);
          else if (Number(bv, "backoff factor", &d)) {
            if (d < 1 || d > 100) Error(Pos(bv), "backoff factor must be from 1 to 100");
            else r->backoff.factor = d;
          }
        });
      }
    });
  }

  // on.webhook: {secret_env: NAME, params: {name: "${{ event.x }}"}}. The
  // param names are checked once all params are known (CheckWebhook).
  void LoadWebhook(const YamlNode& v) {
    if (!v.IsMap()) {
      Error(Pos(v), "on.webhook must be a mapping (secret_env, params)");
      return;
    }
    Webhook w;
    w.pos = Pos(v);
    ForEachKey(v, {"secret_env", "events", "params"}, "on.webhook", [&](const std::string& k, const YamlNode&, const YamlNode& x) {
      if (k == "events") {
        if (!x.IsSequence()) {
          Error(Pos(x), "on.webhook.events must be a list of event names, such as [push, release]");
          return;
        }
        for (const YamlNode& e : x.items) {
          std::string name;
          if (Scalar(e, "each entry of on.webhook.events", &name)) w.events.push_back(name);
        }
        return;
      }
      if (k == "secret_env") {
        if (Scalar(x, "secret_env", &w.secret_env) &&
            (!IsIdentifier(w.secret_env) || w.secret_env.find('-') != std::string::npos))
          Error(Pos(x), "secret_env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)");
        return;
      }
      if (!x.IsMap()) {
        Error(Pos(x), "on.webhook.params must map param names to values such as \"${{ event.ref }}\"");
        return;
      }
      ForEachKey(x, {}, "on.webhook.params", [&](const std::string& name, const YamlNode& key, const YamlNode& value) {
        Template t;
        if (!Tmpl(value, "webhook param " + name, &t)) return;
        t.pos = Pos(key);
        w.params.emplace_back(name, std::move(t));
      });
    });
    if (w.secret_env.empty()) Error(w.pos, "on.webhook needs secret_env: the variable that holds its HMAC secret");
    p_.webhook = std::move(w);
  }

  void CheckWebhook() {
    if (!p_.webhook) return;
    for (const auto& [name, t] : p_.webhook->params) {
      if (!p_.FindParam(name)) Error(t.pos, "on.webhook sets unknown param " + Quote(name) + DidYouMean(name, ParamNames()));
      for (const Template::Part& part : t.parts) {
        if (!part.expr) continue;
        VisitExpr(*part.expr, [&](const Expr& e) {
          bool known = e.path[0] == "event" || (e.path[0] == "event_name" && e.path.size() == 1);
          if (e.kind == Expr::Kind::kRef && !known)
            Error(part.pos, "unknown name " + Quote(Join(e.path, ".")) +
                                " (webhook params see event, the delivery's JSON, and event_name)");
        });
      }
    }
  }

  // on: {schedule: [{cron, timezone, catchup}], webhook: {...}}
  void LoadTriggers(const YamlNode& n) {
    ForEachKey(n, {"schedule", "webhook"}, "on", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
      if (k == "webhook") {
        LoadWebhook(v);
        return;
      }
      if (!v.IsSequence()) {
        Error(Pos(v), "on.schedule must be a list of {cron: \"...\", timezone: ..., catchup: ...}");
        return;
      }
      for (const YamlNode& item : v.items) {
        Schedule sched;
        sched.pos = Pos(item);
        bool have_cron = false, ok = true;
        size_t errors_before = errors_.size();
        ForEachKey(item, {"cron", "timezone", "catchup"}, "a schedule",
                   [&](const std::string& key, const YamlNode&, const YamlNode& value) {
                     std::string text;
                     if (key == "catchup") {
                       ok = Bool(value, "catchup", &sched.catchup) && ok;
                     } else if (!Scalar(value, key, &text)) {
                       ok = false;
                     } else if (key == "cron") {
                       auto c = schedule::Cron::Parse(text);
                       if (!c.ok()) {
                         Error(Pos(value), c.status().message());
                         ok = false;
                       } else {
                         sched.cron = std::move(*c);
                         have_cron = true;
                       }
                     } else {
                       auto z = schedule::TimeZone::Load(text);
                       if (!z.ok()) {
                         Error(Pos(value), z.status().message());
                         ok = false;
                       } else {
                         sched.timezone = text;
                         sched.zone = std::move(*z);
                       }
                     }
                   });
        if (item.IsMap() && !have_cron && errors_.size() == errors_before) Error(Pos(item), "a schedule needs cron: \"MIN HOUR DAY MONTH WEEKDAY\"");
        if (have_cron && ok) p_.schedules.push_back(std::move(sched));
      }
    });
  }

  void LoadDefaults(const YamlNode& n) {
    ForEachKey(n, kDefaultsKeys, "defaults", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
      if (k == "timeout") {
        Millis d;
        if (Timeout(v, &d)) default_timeout_ = d;
      } else if (k == "cache") {
        Cache(v, &default_cache_, &default_cache_max_age_);
      } else if (k == "executor") {
        Executor(v, &default_executor_);
      } else if (k == "slurm") {
        LoadSlurm(v, &default_slurm_);
      } else {
        LoadRetry(v, &default_retry_);
      }
    });
  }

  // `secrets: [NAME, ...]`: variables of sluice's environment a step receives.
  void LoadSecrets(const YamlNode& n, const std::string& where, std::vector<std::string>* out) {
    if (!n.IsSequence()) {
      Error(Pos(n), where + " must be a list of environment variable names, such as [HF_TOKEN]");
      return;
    }
    for (const YamlNode& e : n.items) {
      std::string name;
      if (!Scalar(e, "each entry of " + where, &name)) continue;
      bool ok = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
      if (!ok) Error(Pos(e), "secret name " + Quote(name) + " must match [A-Za-z_][A-Za-z0-9_]*");
      else if (std::find(out->begin(), out->end(), name) == out->end()) out->push_back(name);
    }
  }

  std::vector<std::pair<std::string, Template>> LoadEnv(const YamlNode& n, const std::string& where) {
    std::vector<std::pair<std::string, Template>> env;
    ForEachKey(n, {}, where, [&](const std::string& k, const YamlNode& key, const YamlNode& v) {
      bool ok = !k.empty() && (std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_') &&
                std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
      if (!ok) {
        Error(Pos(key), "environment variable name " + Quote(k) + " must match [A-Za-z_][A-Za-z0-9_]*");
        return;
      }
      Template t;
      if (Tmpl(v, "env " + k, &t)) env.emplace_back(k, std::move(t));
    });
    return env;
  }

  void LoadSteps(const YamlNode& n) {
    if (!n.IsMap() || n.size() == 0) {
      Error(Pos(n), "steps must be a mapping of step ids to steps, with at least one step");
      return;
    }
    std::vector<const YamlNode*> bodies;
    p_.steps.reserve(n.size());
    bodies.reserve(n.size());
    p_.index.reserve(n.size());
    ForEachKey(n, {}, "steps", [&](const std::string& id, const YamlNode& key, const YamlNode& v) {
      if (!IsIdentifier(id)) {
        Error(Pos(key), "step id " + Quote(id) + " must match [A-Za-z_][A-Za-z0-9_-]*");
        return;
      }
      Step s;
      s.id = id;
      s.pos = Pos(key);
      p_.index[id] = p_.steps.size();
      p_.steps.push_back(std::move(s));
      bodies.push_back(&v);
    });
    for (size_t i = 0; i < p_.steps.size(); ++i) LoadStep(*bodies[i], &p_.steps[i]);
    for (Step& s : p_.steps) CheckStepRefs(s);
    // A run step that declares outputs declares all it has; a plugin step's
    // outputs are its step type's, checked once the plugin is loaded.
    for (const Step& s : p_.steps)
      if (s.uses.empty() && !s.outputs.empty()) {
        std::vector<std::string> errors;
        CheckOutputRefs(file_, p_.output_refs, s.id, DeclaredOutputs(s), &errors);
        for (std::string& e : errors)
          if (errors_.size() < kMaxErrors) errors_.push_back(std::move(e));
      }
  }

  bool Executor(const YamlNode& v, std::string* out) {
    std::string e;
    if (!Scalar(v, "executor", &e)) return false;
    if (std::find(kExecutors.begin(), kExecutors.end(), e) == kExecutors.end()) {
      Error(Pos(v), "unknown executor " + Quote(e) + DidYouMean(e, kExecutors) + " (local or slurm)");
      return false;
    }
    *out = e;
    return true;
  }

  // slurm: {partition, account, qos, time, extra: [...]}; keys given replace those in *o.
  void LoadSlurm(const YamlNode& n, SlurmOptions* o) {
    ForEachKey(n, kSlurmKeys, "slurm", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
      if (k == "extra") {
        if (!v.IsSequence()) {
          Error(Pos(v), "slurm extra must be a list of sbatch arguments, such as [\"--qos=normal\"]");
          return;
        }
        o->extra.clear();
        for (const YamlNode& e : v.items) {
          std::string a;
          if (Scalar(e, "an sbatch argument", &a)) o->extra.push_back(a);
        }
        return;
      }
      std::string text;
      if (!Scalar(v, "slurm " + k, &text)) return;
      if (k == "time") {
        bool slurm_format = !text.empty() && text.find_first_not_of("0123456789:-") == std::string::npos;
        if (!slurm_format && !ParseDuration(text)) {
          Error(Pos(v), "bad slurm time " + Quote(text) + " (Slurm's 30, 2:00:00, 1-00:00:00, or a duration: 2h)");
          return;
        }
      }
      (k == "partition" ? o->partition : k == "account" ? o->account : k == "qos" ? o->qos : o->time) = text;
    });
  }

  void LoadStep(const YamlNode& n, Step* s) {
    const std::string where = "step '" + s->id + "'";
    s->executor = default_executor_;
    s->slurm = default_slurm_;
    s->timeout = default_timeout_;
    s->retry = default_retry_;
    s->cache = default_cache_;
    s->cache_max_age = default_cache_max_age_;
    bool has_run = false, has_uses = false;
    const YamlNode* register_node = nullptr;
    const YamlNode* secrets_node = nullptr;
    ForEachKey(n, kStepKeys, where, [&](const std::string& k, const YamlNode& key, const YamlNode& v) {
      if (k == "needs") {
        if (v.IsScalar()) {
          s->needs.push_back(v.Scalar());
          s->needs_pos.push_back(Pos(v));
        } else if (v.IsSequence()) {
          for (const YamlNode& e : v.items) {
            std::string need;
            if (!Scalar(e, "each entry of needs", &need)) continue;
            if (std::find(s->needs.begin(), s->needs.end(), need) != s->needs.end()) {
              Error(Pos(e), where + " needs '" + need + "' twice");
              continue;
            }
            s->needs.push_back(need);
            s->needs_pos.push_back(Pos(e));
          }
        } else {
          Error(Pos(v), "needs must be a step id or a list of step ids");
        }
      } else if (k == "run") {
        has_run = true;
        if (v.IsScalar()) {
          s->shell = true;
          Template t;
          if (Tmpl(v, "run", &t)) {
            for (const Injection& i : CheckShellLine(t)) Error(i.pos, where + ": " + i.reason);
            s->run.push_back(std::move(t));
          }
          if (v.Scalar().find_first_not_of(" \t\n") == std::string::npos) Error(Pos(v), where + ": run is empty");
        } else if (v.IsSequence() && v.size() > 0) {
          for (const YamlNode& e : v.items) {
            Template t;
            if (Tmpl(e, "each argument of run", &t)) s->run.push_back(std::move(t));
          }
          for (const Injection& i : CheckArgv(s->run)) Error(i.pos, where + ": " + i.reason);
        } else {
          Error(Pos(v), where + ": run must be a shell line or a non-empty list of arguments");
        }
      } else if (k == "uses") {
        has_uses = true;
        s->uses_pos = Pos(v);
        if (Scalar(v, "uses", &s->uses)) {
          auto [plugin, type] = SplitUses(s->uses);
          if (!IsPipelineName(plugin) || !IsPipelineName(type) || type.find('-') == 0)
            Error(Pos(v), where + ": uses must be <plugin>/<step type>, each [a-z0-9][a-z0-9-]*, not " + Quote(s->uses));
        }
      } else if (k == "with") {
        if (!v.IsMap() && !v.IsNull()) Error(Pos(v), where + ": with must be a mapping of params");
        else s->with = v;
      } else if (k == "isolation") {
        std::string iso;
        if (Scalar(v, "isolation", &iso)) {
          if (iso == "process") s->isolation = Step::Isolation::kProcess;
          else if (iso == "inprocess") s->isolation = Step::Isolation::kInProcess;
          else Error(Pos(v), where + ": isolation must be process or inprocess, not " + Quote(iso));
        }
      } else if (k == "env") {
        s->env = LoadEnv(v, where + " env");
      } else if (k == "secrets") {
        secrets_node = &v;
      } else if (k == "workdir") {
        Template t;
        if (Tmpl(v, "workdir", &t)) s->workdir = std::move(t);
      } else if (k == "timeout") {
        Millis d;
        if (Timeout(v, &d)) s->timeout = d;
      } else if (k == "retry") {
        s->retry = default_retry_;
        LoadRetry(v, &s->retry);
      } else if (k == "resources") {
        ForEachKey(v, kResourceKeys, where + " resources", [&](const std::string& rk, const YamlNode&, const YamlNode& c) {
          int64_t n;
          if (rk == "cpu" && Int(c, "cpu", 1, 1024, &n)) s->cpu = static_cast<int>(n);
          if (rk == "gpu" && Int(c, "gpu", 0, 64, &n)) s->gpu = static_cast<int>(n);
          if (rk == "memory" && Scalar(c, "memory", &s->memory)) {
            const std::string& m = s->memory;
            size_t digits = m.find_first_not_of("0123456789");
            bool ok = digits > 0 && (digits == std::string::npos || (digits == m.size() - 1 && std::string("KMGT").find(m.back()) != std::string::npos));
            if (!ok) Error(Pos(c), "memory must be a number of megabytes or end in K, M, G or T (512M, 16G)");
          }
        });
      } else if (k == "executor") {
        Executor(v, &s->executor);
      } else if (k == "slurm") {
        LoadSlurm(v, &s->slurm);
      } else if (k == "if") {
        LoadCondition(v, s);
      } else if (k == "foreach") {
        s->has_foreach = true;
        if (v.IsSequence()) {
          for (const YamlNode& e : v.items) {
            if (!e.IsScalar()) {
              Error(Pos(e), "foreach items must be single values (strings or numbers)");
              continue;
            }
            s->foreach_items.push_back(Value::Str(e.Scalar()));
          }
        } else if (v.IsScalar() && v.Scalar().find("${{") != std::string::npos) {
          Template t;
          if (Tmpl(v, "foreach", &t)) {
            if (!t.SingleExpression()) Error(Pos(v), "foreach must be one ${{ }} expression that gives a list");
            else s->foreach_expr = std::move(t);
          }
        } else {
          Error(Pos(v), "foreach must be a list or a ${{ }} expression that gives a list");
        }
      } else if (k == "continue_on_error") {
        Bool(v, "continue_on_error", &s->continue_on_error);
      } else if (k == "cache") {
        Cache(v, &s->cache, &s->cache_max_age);
      } else if (k == "deps") {
        LoadDeps(v, s);
      } else if (k == "register") {
        register_node = &v;
      } else if (k == "outputs") {
        ForEachKey(v, {}, where + " outputs", [&](const std::string& name, const YamlNode& key, const YamlNode& kind) {
          std::string kind_text;
          if (!IsIdentifier(name)) Error(Pos(key), "output name " + Quote(name) + " must match [A-Za-z_][A-Za-z0-9_-]*");
          else if (Scalar(kind, "output kind", &kind_text)) {
            const auto& kinds = OutputKinds();
            if (std::find(kinds.begin(), kinds.end(), kind_text) == kinds.end())
              Error(Pos(kind), where + ": output '" + name + "' has unknown kind " + Quote(kind_text) +
                                   DidYouMean(kind_text, kinds) + " (kinds: " + Join(kinds, ", ") + ")");
            else s->outputs.emplace_back(name, kind_text);
          }
        });
      }
      (void)key;
    });
    if (!n.IsMap()) return;
    if (register_node) LoadRegister(*register_node, s);
    s->secrets = p_.secrets;
    if (secrets_node) LoadSecrets(*secrets_node, where + " secrets", &s->secrets);
    if (!s->secrets.empty() && s->executor == "slurm")
      Error(secrets_node ? Pos(*secrets_node) : s->pos,
            where + ": secrets are not passed to Slurm steps (Slurm writes their logs, so Sluice cannot mask them)");
    if (has_run && has_uses) Error(s->pos, where + " has both 'run' and 'uses'; a step does one of them");
    else if (!has_run && !has_uses) Error(s->pos, where + " has neither 'run' nor 'uses'");
    else if (has_run && s->with) Error(s->with->pos, where + ": with is for plugin steps (uses); a run step takes env or arguments");
  }

  // register: {name: fashion, output: model} - output may be left out when
  // the step declares exactly one output of kind model.
  void LoadRegister(const YamlNode& v, Step* s) {
    const std::string where = "step '" + s->id + "' register";
    ForEachKey(v, {"name", "output"}, where, [&](const std::string& k, const YamlNode&, const YamlNode& f) {
      if (k == "name") {
        if (Scalar(f, "name", &s->register_name) && !IsPipelineName(s->register_name))
          Error(Pos(f), "model name " + Quote(s->register_name) + " must match [a-z0-9][a-z0-9-]*");
      } else {
        Scalar(f, "output", &s->register_output);
      }
    });
    if (!v.IsMap()) return;
    if (s->register_name.empty()) Error(Pos(v), where + " needs a name");
    std::vector<std::string> models;
    for (const auto& [name, kind] : s->outputs)
      if (kind == "model") models.push_back(name);
    if (s->register_output.empty()) {
      if (models.size() == 1) s->register_output = models[0];
      else Error(Pos(v), where + ": say which output to register (the step declares " + std::to_string(models.size()) +
                             " outputs of kind model)");
    } else if (std::find(models.begin(), models.end(), s->register_output) == models.end()) {
      Error(Pos(v), where + ": output '" + s->register_output + "' is not a declared output of kind model" +
                        DidYouMean(s->register_output, models));
    }
  }

  void LoadCondition(const YamlNode& v, Step* s) {
    std::string text;
    if (!Scalar(v, "if", &text)) return;
    Template t;
    int shift = QuoteShift(v);
    if (text.find("${{") == std::string::npos) {
      // `if: success() && params.x` without ${{ }} is an expression too.
      std::unique_ptr<Expr> e;
      if (auto err = ParseExpr(text, &e)) {
        SourcePos p = Pos(v);
        p.column += shift + static_cast<int>(err->offset);
        Error(p, "bad expression " + Quote(text) + ": " + err->message);
        return;
      }
      Template::Part part;
      part.expr = std::move(e);
      part.expr_text = text;
      part.pos = Pos(v);
      part.pos.column += shift - 3;  // as if `${{` stood before the text
      t.parts.push_back(std::move(part));
      t.source = text;
      t.pos = Pos(v);
    } else if (!Tmpl(v, "if", &t)) {
      return;
    }
    for (const Template::Part& part : t.parts)
      if (part.expr && CallsStatusFunction(*part.expr)) s->if_checks_status = true;
    s->if_condition = std::move(t);
  }

  // Checks names in a template's expressions. `step` is null for the
  // pipeline's env, which sees params and env only.
  void CheckRefs(const Template& t, const Step* step, const std::string& where, bool item_allowed = true) {
    std::optional<std::vector<std::string>> ancestors;  // computed on the first steps.* reference
    auto needs = [&](const std::string& id) {
      if (std::find(step->needs.begin(), step->needs.end(), id) != step->needs.end()) return true;
      if (!ancestors) ancestors = Ancestors(p_, step->id);
      return std::find(ancestors->begin(), ancestors->end(), id) != ancestors->end();
    };
    for (const Template::Part& part : t.parts) {
      if (!part.expr) continue;
      VisitExpr(*part.expr, [&](const Expr& e) {
        SourcePos pos = part.pos;
        if (pos.line == t.pos.line) pos.column += 3 + static_cast<int>(e.offset);
        if (e.kind == Expr::Kind::kCall) {
          const auto& known = KnownFunctions();
          if (std::find(known.begin(), known.end(), e.op) == known.end()) {
            Error(pos, "unknown function " + Quote(e.op + "()") + DidYouMean(e.op, known));
            return;
          }
          size_t want = (e.op == "fromJSON" || e.op == "toJSON") ? 1 : 0;
          if (e.args.size() != want)
            Error(pos, e.op + "() takes " + std::to_string(want) + " argument" + (want == 1 ? "" : "s"));
          return;
        }
        const auto& path = e.path;
        const std::string& root = path[0];
        if (root == "params") {
          if (path.size() != 2) Error(pos, "expected params.<name>");
          else if (!p_.FindParam(path[1]))
            Error(pos, "unknown param " + Quote(path[1]) + DidYouMean(path[1], ParamNames()));
        } else if (root == "env") {
          if (path.size() != 2) Error(pos, "expected env.<NAME>");
          else if (IsSecretName(p_, path[1]))
            Error(pos, "env." + path[1] + " is a secret, and secrets are never rendered into a spec's values; list it "
                       "under secrets: and read $" + path[1] + " in the step");
        } else if (root == "item") {
          if (path.size() != 1) Error(pos, "expected item");
          else if (!step || !step->has_foreach || !item_allowed)
            Error(pos, "'item' is only defined inside a step with foreach");
        } else if (root == "steps") {
          if (!step) {
            Error(pos, where + " cannot read step outputs");
          } else if (path.size() < 2 || !p_.FindStep(path[1])) {
            std::string id = path.size() >= 2 ? path[1] : "";
            Error(pos, "unknown step " + Quote(id) + DidYouMean(id, StepIds()));
          } else if (!((path.size() == 4 && path[2] == "outputs") || (path.size() == 3 && path[2] == "state"))) {
            Error(pos, "expected steps." + path[1] + ".outputs.<name> or steps." + path[1] + ".state");
          } else if (!needs(path[1])) {
            Error(pos, "step '" + step->id + "' reads steps." + path[1] + " but does not need it (add '" + path[1] +
                           "' to its needs)");
          } else if (path.size() == 4) {
            p_.output_refs.push_back({step->id, path[1], path[3], pos});
          }
        } else {
          Error(pos, "unknown name " + Quote(Join(path, ".")) + " (expressions see params, steps, env and item)");
        }
      });
    }
  }

  std::vector<std::string> StepIds() const {
    std::vector<std::string> ids;
    for (const Step& s : p_.steps) ids.push_back(s.id);
    return ids;
  }
  std::vector<std::string> ParamNames() const {
    std::vector<std::string> names;
    for (const ParamSpec& ps : p_.params) names.push_back(ps.name);
    return names;
  }

  void CheckStepRefs(Step& s) {
    for (size_t i = 0; i < s.needs.size(); ++i) {
      if (s.needs[i] == s.id) Error(s.needs_pos[i], "step '" + s.id + "' needs itself");
      else if (!p_.FindStep(s.needs[i]))
        Error(s.needs_pos[i], "step '" + s.id + "' needs unknown step " + Quote(s.needs[i]) + DidYouMean(s.needs[i], StepIds()));
    }
    // Ancestors() follows needs, so check names only once the graph is sound.
    for (const Template& t : s.run) CheckRefs(t, &s, "run");
    for (auto& [name, t] : s.env) CheckRefs(t, &s, "env " + name);
    if (s.workdir) CheckRefs(*s.workdir, &s, "workdir");
    if (s.if_condition) CheckRefs(*s.if_condition, &s, "if", /*item_allowed=*/false);
    if (s.foreach_expr) CheckRefs(*s.foreach_expr, &s, "foreach", /*item_allowed=*/false);
    if (s.with) CheckWithRefs(*s.with, s);
  }

  // Expressions in `with:` leaves are checked like those of `run`.
  void CheckWithRefs(const YamlNode& n, const Step& s) {
    if (n.IsMap())
      for (const auto& [k, v] : n.entries) CheckWithRefs(v, s);
    else if (n.IsSequence())
      for (const YamlNode& v : n.items) CheckWithRefs(v, s);
    else if (n.IsScalar() && n.scalar.find("${{") != std::string::npos) {
      Template t;
      if (auto err = ParseTemplate(n.scalar, n.pos, QuoteShift(n), &t)) Error(err->first, err->second);
      else CheckRefs(t, &s, "with");
    }
  }

  // Depth-first search with an explicit stack: specs with long chains of
  // steps must not overflow the call stack.
  void FindCycles() {
    enum Color : char { kWhite, kGrey, kBlack };
    std::vector<Color> color(p_.steps.size(), kWhite);
    std::vector<std::pair<size_t, size_t>> stack;  // (step, next need to look at)
    for (size_t root = 0; root < p_.steps.size(); ++root) {
      if (color[root] != kWhite) continue;
      stack.push_back({root, 0});
      color[root] = kGrey;
      while (!stack.empty()) {
        auto& [i, k] = stack.back();
        const Step& s = p_.steps[i];
        if (k == s.needs.size()) {
          color[i] = kBlack;
          stack.pop_back();
          continue;
        }
        size_t need = k++;
        auto it = p_.index.find(s.needs[need]);
        if (it == p_.index.end()) continue;
        size_t j = it->second;
        if (color[j] == kGrey) {
          std::vector<std::string> cycle;
          size_t from = 0;
          while (stack[from].first != j) ++from;
          for (size_t x = from; x < stack.size(); ++x) cycle.push_back(p_.steps[stack[x].first].id);
          cycle.push_back(p_.steps[j].id);
          Error(s.needs_pos[need], "dependency cycle: " + Join(cycle, " -> ") + " (each step needs the next)");
          return;
        }
        if (color[j] == kWhite) {
          color[j] = kGrey;
          stack.push_back({j, 0});
        }
      }
    }
  }

  const std::string& file_;
  const std::string& text_;
  Pipeline p_;
  std::vector<std::string> errors_;
  std::optional<Millis> default_timeout_;
  RetryPolicy default_retry_;
  bool default_cache_ = false;
  std::optional<Millis> default_cache_max_age_;
  std::string default_executor_ = "local";
  SlurmOptions default_slurm_;
};

}  // namespace

Result<Pipeline> ParsePipeline(const std::string& file, const std::string& text) {
  return Loader(file, text).Load();
}

Result<Pipeline> LoadPipeline(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Status::InvalidSpec(path + ": is a folder, not a pipeline file (name a .yaml file in it)");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno("open " + path, errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParsePipeline(path, ss.str());
}

}  // namespace sluice::spec
