// The spec loader (spec/loader.h): loading a file, its params, env,
// secrets, triggers and defaults. The steps are in loader_steps.cc.
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

#include "spec/loader.h"
#include "spec/pipeline.h"
#include "spec/shell_check.h"
#include "spec/yaml_tree.h"
#include "util/strings.h"
namespace sluice::spec {

namespace {

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

}  // namespace

namespace internal {

Result<Pipeline> Loader::Load() {
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

void Loader::Error(SourcePos pos, const std::string& message) {
  if (errors_.size() >= kMaxErrors) return;
  std::string e = At(*cur_file_, pos, message);
  // A template called twice would report its own mistakes twice.
  if (cur_file_ != &file_ || scopes_.size() > 1)
    if (std::find(errors_.begin(), errors_.end(), e) != errors_.end()) return;
  errors_.push_back(std::move(e));
}

bool Loader::Single(const YamlNode& n, std::string_view what) {
  if (n.IsScalar()) return true;
  Error(Pos(n), std::string(what) + " must be a single value");
  return false;
}

bool Loader::Scalar(const YamlNode& n, std::string_view what, std::string* out) {
  if (!Single(n, what)) return false;
  *out = n.Scalar();
  return true;
}

bool Loader::Bool(const YamlNode& n, std::string_view what, bool* out) {
  std::string s;
  if (!Scalar(n, what, &s)) return false;
  if (s == "true" || s == "True") *out = true;
  else if (s == "false" || s == "False") *out = false;
  else {
    Error(Pos(n), std::string(what) + " must be true or false, not " + Quote(s));
    return false;
  }
  return true;
}

bool Loader::Number(const YamlNode& n, std::string_view what, double* out) {
  std::string s;
  if (!Scalar(n, what, &s)) return false;
  if (!Value::Str(s).AsNumber(out)) {
    Error(Pos(n), std::string(what) + " must be a number, not " + Quote(s));
    return false;
  }
  return true;
}

bool Loader::Int(const YamlNode& n, std::string_view what, int64_t lo, int64_t hi, int64_t* out) {
  double d;
  if (!Number(n, what, &d)) return false;
  // Range first: casting a double outside int64_t's range is undefined.
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::trunc(d)) {
    Error(Pos(n), std::string(what) + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                      ", not " + Quote(n.Scalar()));
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool Loader::Duration(const YamlNode& n, std::string_view what, Millis* out) {
  std::string s;
  if (!Scalar(n, what, &s)) return false;
  auto d = ParseDuration(s);
  if (!d) {
    Error(Pos(n), "bad duration " + Quote(s) + " for " + std::string(what) + " (use a number and a unit: 500ms, 10s, 5m, 2h)");
    return false;
  }
  *out = *d;
  return true;
}

bool Loader::Timeout(const YamlNode& n, Millis* out) {
  if (!Duration(n, "timeout", out)) return false;
  if (out->count() > 0) return true;
  Error(Pos(n), "timeout must be longer than 0 (leave it out for no timeout)");
  return false;
}

void Loader::Cache(const YamlNode& n, bool* on, std::optional<Millis>* max_age) {
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

bool Loader::Tmpl(const YamlNode& n, std::string_view what, Template* out) {
  if (!Single(n, what)) return false;
  if (auto err = ParseTemplate(n.Scalar(), Pos(n), QuoteShift(n), out)) {
    Error(err->first, err->second);
    return false;
  }
  return true;
}

void Loader::LoadRoot(YamlNode& root) {
  if (!root.IsMap()) {
    Error(!root.IsNull() ? Pos(root) : SourcePos{1, 1},
          "a pipeline must be a mapping with 'name' and 'steps'");
    return;
  }
  const YamlNode* steps_node = nullptr;
  const YamlNode* finally_node = nullptr;
  const YamlNode* env_node = nullptr;
  const YamlNode* templates_node = nullptr;
  const YamlNode* outputs_node = nullptr;
  const YamlNode* concurrency_node = nullptr;  // read after params, which it names
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
      LoadParamSpecs(v, "params", &p_.params);
    } else if (k == "env") {
      env_node = &v;
    } else if (k == "secrets") {
      LoadSecrets(v, "secrets", &p_.secrets);
    } else if (k == "defaults") {
      LoadDefaults(v);
    } else if (k == "steps") {
      steps_node = &v;
    } else if (k == "finally") {
      finally_node = &v;
    } else if (k == "timeout") {
      Millis t;
      if (Timeout(v, &t)) p_.timeout = t;
    } else if (k == "templates") {
      templates_node = &v;
    } else if (k == "outputs") {
      outputs_node = &v;
    } else if (k == "on") {
      LoadTriggers(v);
    } else if (k == "max_active_runs") {
      int64_t n;
      if (Int(v, "max_active_runs", 1, 10000, &n)) p_.max_active_runs = static_cast<int>(n);
    } else if (k == "concurrency") {
      concurrency_node = &v;
    }
  });
  if (concurrency_node) LoadConcurrency(*concurrency_node);
  if (!have_name) Error({1, 1}, "missing required key 'name'");
  if (!steps_node) Error({1, 1}, "missing required key 'steps'");
  if (env_node) p_.env = LoadEnv(*env_node, "env");
  if (templates_node) LoadTemplates(*templates_node);
  // Nodes of `root`, ours to take apart.
  if (steps_node) LoadSteps(const_cast<YamlNode&>(*steps_node), const_cast<YamlNode*>(finally_node));
  for (auto& [name, t] : p_.env) CheckRefs(t, nullptr, "env " + name);
  if (outputs_node && steps_node) LoadRunOutputs(*outputs_node);
  if (default_retry_.on_condition) {  // checked once here, not in every step that inherits it
    reading_attempt_ = true;
    CheckRefs(*default_retry_.on_condition, nullptr, "retry on");
    reading_attempt_ = false;
  }
  CheckWebhook();
  if (errors_.empty()) FindCycles();
  if (errors_.empty()) RewriteTemplates();
}

void Loader::LoadParamSpecs(const YamlNode& n, const std::string& where, std::vector<ParamSpec>* out) {
  if (n.IsNull()) return;
  ForEachKey(n, {}, where, [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
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
    out->push_back(std::move(ps));
  });
}

void Loader::LoadRetry(const YamlNode& n, RetryPolicy* r) {
  int64_t i;
  if (n.IsScalar()) {  // retry: 3
    if (Int(n, "retry", 0, 1000, &i)) r->limit = static_cast<int>(i);
    return;
  }
  ForEachKey(n, kRetryKeys, "retry", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "limit") {
      if (Int(v, "retry limit", 0, 1000, &i)) r->limit = static_cast<int>(i);
    } else if (k == "on") {
      LoadRetryOn(v, r);
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

void Loader::LoadRetryOn(const YamlNode& n, RetryPolicy* r) {
  r->on_exit_codes.clear();
  r->on_condition.reset();
  if (n.IsSequence()) {  // on: [137, 143]
    if (n.items.empty()) {
      Error(Pos(n), "retry on: [] retries nothing; leave 'on' out to retry every failure");
      return;
    }
    for (const YamlNode& e : n.items) {
      int64_t code;
      if (Int(e, "each entry of retry on (an exit status)", 0, 255, &code)) r->on_exit_codes.push_back(static_cast<int>(code));
    }
    return;
  }
  if (!n.IsScalar()) {
    Error(Pos(n), "retry on must be a list of exit statuses ([137, 143]) or a condition (${{ attempt.timed_out }})");
    return;
  }
  Template t;
  if (Condition(n, "retry on", &t)) r->on_condition = std::move(t);
}

void Loader::LoadWebhook(const YamlNode& v) {
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

void Loader::CheckWebhook() {
  if (!p_.webhook) return;
  for (const auto& [name, t] : p_.webhook->params) {
    if (!p_.FindParam(name)) Error(t.pos, "on.webhook sets unknown param " + Quote(name) + DidYouMean(name, ParamNames()));
    for (const Template::Part& part : t.parts) {
      if (!part.expr) continue;
      VisitExpr(*part.expr, [&](const Expr& e) {
        if (e.kind == Expr::Kind::kCall) {  // a call has no path; its arguments are visited on their own
          CheckCall(part.pos, e);
          return;
        }
        bool known = e.path[0] == "event" || (e.path[0] == "event_name" && e.path.size() == 1);
        if (!known)
          Error(part.pos, "unknown name " + Quote(Join(e.path, ".")) +
                              " (webhook params see event, the delivery's JSON, and event_name)");
      });
    }
  }
}

void Loader::LoadTriggers(const YamlNode& n) {
  ForEachKey(n, {"schedule", "webhook"}, "on", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "webhook") {
      LoadWebhook(v);
      return;
    }
    if (!v.IsSequence()) {
      Error(Pos(v), "on.schedule must be a list of {cron: \"...\", timezone: ..., catchup: ..., overlap: ...}");
      return;
    }
    for (const YamlNode& item : v.items) {
      Schedule sched;
      sched.pos = Pos(item);
      bool have_cron = false, ok = true;
      size_t errors_before = errors_.size();
      ForEachKey(item, {"cron", "timezone", "catchup", "overlap"}, "a schedule",
                 [&](const std::string& key, const YamlNode&, const YamlNode& value) {
                   std::string text;
                   if (key == "overlap") {
                     if (!Scalar(value, "overlap", &text)) ok = false;
                     else if (text == "allow") sched.overlap = Schedule::Overlap::kAllow;
                     else if (text == "forbid") sched.overlap = Schedule::Overlap::kForbid;
                     else if (text == "replace") sched.overlap = Schedule::Overlap::kReplace;
                     else {
                       Error(Pos(value), "overlap must be allow, forbid or replace, not " + Quote(text));
                       ok = false;
                     }
                   } else if (key == "catchup") {
                     bool on = true;
                     if (value.IsScalar() && value.scalar == "all") {
                       sched.catchup = Schedule::Catchup::kEvery;
                     } else if (value.IsScalar() && value.scalar != "true" && value.scalar != "True" &&
                                value.scalar != "false" && value.scalar != "False") {
                       Error(Pos(value), "catchup must be true, false or all, not " + Quote(value.scalar));
                       ok = false;
                     } else if (Bool(value, "catchup", &on)) {
                       sched.catchup = on ? Schedule::Catchup::kLatest : Schedule::Catchup::kNone;
                     } else {
                       ok = false;
                     }
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

void Loader::LoadDefaults(const YamlNode& n) {
  ForEachKey(n, kDefaultsKeys, "defaults", [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "timeout") {
      Millis d;
      if (Timeout(v, &d)) default_timeout_ = d;
    } else if (k == "cache") {
      Cache(v, &default_cache_, &default_cache_max_age_);
    } else if (k == "executor") {
      Executor(v, &default_executor_);
    } else if (k == "slurm") {
      LoadSlurm(v, &default_slurm_.emplace());
    } else {
      LoadRetry(v, &default_retry_);
    }
  });
}

void Loader::LoadSecrets(const YamlNode& n, const std::string& where, std::vector<std::string>* out) {
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

std::vector<std::pair<std::string, Template>> Loader::LoadEnv(const YamlNode& n, const std::string& where) {
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

}  // namespace internal

Result<Pipeline> ParsePipeline(const std::string& file, const std::string& text, bool read_template_files) {
  return internal::Loader(file, text, read_template_files).Load();
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
