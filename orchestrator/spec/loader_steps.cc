// The spec loader (spec/loader.h): the steps, each on its own. The checks
// across them are in loader_refs.cc.
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
namespace sluice::spec::internal {

namespace {

// Whether a scalar anywhere in `n` holds `${{`. YAML nesting is bounded, so is the recursion.
bool HasExpression(const YamlNode& n) {
  if (n.IsScalar()) return n.scalar.find("${{") != std::string::npos;
  for (const auto& [k, v] : n.entries)
    if (HasExpression(v)) return true;
  for (const YamlNode& v : n.items)
    if (HasExpression(v)) return true;
  return false;
}

}  // namespace

void Loader::LoadDeps(const YamlNode& n, Step* s) {
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

std::string Loader::DepProblem(const std::string& dep) { return DepPatternProblem(dep); }

}  // namespace sluice::spec::internal

namespace sluice::spec {

std::string DepPatternProblem(const std::string& dep) {
  if (dep.find_first_not_of(" \t") == std::string::npos) return "is empty";
  if (dep.find("${{") != std::string::npos) return "has an expression; deps are literal paths and globs";
  if (dep[0] == '/') return "is an absolute path; deps are relative to the spec's folder";
  if (dep[0] == '~') return "starts with ~; deps are relative to the spec's folder";
  std::string norm = std::filesystem::path(dep).lexically_normal().generic_string();
  if (norm == ".." || norm.rfind("../", 0) == 0) return "is outside the spec's folder; deps must stay under it";
  return "";
}

}  // namespace sluice::spec

namespace sluice::spec::internal {

void Loader::LoadSteps(YamlNode& n, YamlNode* finally_node) {
  std::vector<const YamlNode*> bodies;
  size_t count = n.size() + (finally_node ? finally_node->size() : 0);
  p_.steps.reserve(count);
  bodies.reserve(count);
  p_.index.reserve(count);
  AddSteps(n, 0, &bodies);
  if (finally_node) {
    adding_finally_ = true;
    AddSteps(*finally_node, 0, &bodies);
    adding_finally_ = false;
  }
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    size_t scope = ScopeOfStep(i);
    if (scope == 0) {
      LoadStep(*bodies[i], &p_.steps[i]);
      *const_cast<YamlNode*>(bodies[i]) = YamlNode();  // a node of `n`: the step has what it needs of it
      continue;
    }
    // A template's step reports its problems under its own id, in its own
    // file; its body stays, for the template's next call.
    Step& s = p_.steps[i];
    std::string id = std::move(s.id);
    s.id = id.substr(scopes_[scope].prefix.size());
    cur_file_ = &FileOf(scope);
    LoadStep(*bodies[i], &s);
    cur_file_ = &file_;
    s.id = std::move(id);
  }
  if (scopes_.size() > 1) WireNeeds();
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    cur_scope_ = ScopeOfStep(i);
    cur_file_ = &FileOf(cur_scope_);
    CheckStepRefs(p_.steps[i]);
  }
  // A call's with: values and its if are read where the call is written, by
  // the call's first steps, which need what the call needs.
  for (size_t k = 1; k < scopes_.size(); ++k) {
    Scope& sc = scopes_[k];
    cur_scope_ = sc.parent;
    cur_file_ = sc.call_file;
    Step call;
    call.id = sc.call;
    call.needs = CallNeeds(k);
    // A call with foreach passes each item to its template through with:
    // (and may skip one by its if).
    call.has_foreach = sc.foreach != nullptr;
    call.is_finally = sc.is_finally;
    for (auto& [name, t] : sc.arg_templates) CheckRefs(t, &call, "with " + name, /*item_allowed=*/true);
    if (sc.if_condition) CheckRefs(*sc.if_condition, &call, "if", /*item_allowed=*/true);
    if (!sc.foreach) continue;
    if (sc.foreach->foreach_expr) CheckRefs(*sc.foreach->foreach_expr, &call, "foreach", /*item_allowed=*/false);
    if (sc.foreach->matrix)
      for (const Matrix::Axis& a : sc.foreach->matrix->axes)
        if (a.expr) CheckRefs(*a.expr, &call, "foreach matrix " + a.key, /*item_allowed=*/false);
  }
  if (scopes_.size() > 1) MarkChains();
  CheckServices();
  cur_scope_ = 0;
  cur_file_ = &file_;
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

void Loader::AddSteps(const YamlNode& n, size_t scope, std::vector<const YamlNode*>* bodies) {
  const std::string where = scope > 0 ? "the steps of template '" + scopes_[scope].def->name + "'"
                            : adding_finally_ ? "finally" : "steps";
  if (scope == 0 && (!n.IsMap() || n.size() == 0)) {
    Error(Pos(n), where + " must be a mapping of step ids to steps, with at least one step");
    return;
  }
  ForEachKey(n, {}, where, [&](const std::string& id, const YamlNode& key, const YamlNode& v) {
    if (!IsIdentifier(id)) {
      Error(Pos(key), "step id " + Quote(id) + " must match [A-Za-z_][A-Za-z0-9_-]*");
      return;
    }
    bool call = v.IsMap() && std::any_of(v.entries.begin(), v.entries.end(), [](const YamlEntry& e) {
                  return e.first.IsScalar() && e.first.Scalar() == "call";
                });
    if (scope > 0) {
      scopes_[scope].locals.push_back(id);
      scopes_[scope].local_is_call.push_back(call);
    }
    if (call) {
      ExpandCall(id, key, v, scope, bodies);
      return;
    }
    Step s;
    s.id = scopes_[scope].prefix + id;
    s.pos = Pos(key);
    s.is_finally = adding_finally_;
    if (adding_finally_ && p_.index.count(s.id)) {
      Error(Pos(key), "step id " + Quote(s.id) + " is used in both steps and finally");
      return;
    }
    p_.index[s.id] = p_.steps.size();
    p_.steps.push_back(std::move(s));
    if (scope > 0) {  // top-level steps have no entry: a spec without templates pays nothing
      step_scope_.resize(p_.steps.size() - 1, 0);
      step_scope_.push_back(scope);
    }
    bodies->push_back(&v);
  });
}

bool Loader::Executor(const YamlNode& v, std::string* out) {
  std::string e;
  if (!Scalar(v, "executor", &e)) return false;
  if (std::find(kExecutors.begin(), kExecutors.end(), e) == kExecutors.end()) {
    Error(Pos(v), "unknown executor " + Quote(e) + DidYouMean(e, kExecutors) + " (local or slurm)");
    return false;
  }
  *out = e;
  return true;
}

void Loader::LoadSlurm(const YamlNode& n, SlurmOptions* o) {
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

void Loader::LoadStep(const YamlNode& n, Step* s) {
  const std::string where = "step '" + s->id + "'";
  s->executor = default_executor_;
  s->slurm = default_slurm_;
  s->timeout = default_timeout_;
  s->retry = default_retry_;
  s->cache = default_cache_;
  s->cache_max_age = default_cache_max_age_;
  bool has_run = false, has_uses = false;
  const YamlNode* register_node = nullptr;
  const YamlNode *pool_node = nullptr, *pool_slots_node = nullptr;
  const YamlNode* secrets_node = nullptr;
  const YamlNode* foreach_options = nullptr;  // fail_fast or max_parallel
  const YamlNode* cache_node = nullptr;
  ForEachKey(n, kStepKeys, where, [&](const std::string& k, const YamlNode& key, const YamlNode& v) {
    if (k == "needs") {
      if (v.IsScalar()) {
        s->needs.push_back(v.Scalar());
        s->needs_pos.push_back(Pos(v));
      } else if (v.IsSequence()) {
        s->needs.reserve(v.items.size());
        s->needs_pos.reserve(v.items.size());
        for (const YamlNode& e : v.items) {
          if (!Single(e, "each entry of needs")) continue;
          const std::string& need = e.Scalar();
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
        s->run.reserve(v.items.size());
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
      LoadSlurm(v, s->slurm ? &*s->slurm : &s->slurm.emplace());
    } else if (k == "if") {
      LoadCondition(v, s);
    } else if (k == "foreach") {
      LoadForeach(v, s);
    } else if (k == "fail_fast") {
      Bool(v, "fail_fast", &s->fail_fast);
      foreach_options = &key;
    } else if (k == "max_parallel") {
      int64_t n = 0;
      if (Int(v, "max_parallel", 1, static_cast<int64_t>(kMaxForeachItems), &n)) s->max_parallel = static_cast<int>(n);
      foreach_options = &key;
    } else if (k == "continue_on_error") {
      Bool(v, "continue_on_error", &s->continue_on_error);
    } else if (k == "cache") {
      Cache(v, &s->cache, &s->cache_max_age);
      cache_node = &key;
    } else if (k == "service") {
      LoadService(key, v, s);
    } else if (k == "deps") {
      LoadDeps(v, s);
    } else if (k == "register") {
      register_node = &v;
    } else if (k == "pool") {
      pool_node = &v;
    } else if (k == "pool_slots") {
      pool_slots_node = &v;
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
  LoadPool(pool_node, pool_slots_node, where, s);
  s->secrets = p_.secrets;
  if (secrets_node) LoadSecrets(*secrets_node, where + " secrets", &s->secrets);
  if (!s->secrets.empty() && s->executor == "slurm")
    Error(secrets_node ? Pos(*secrets_node) : s->pos,
          where + ": secrets are not passed to Slurm steps (Slurm writes their logs, so Sluice cannot mask them)");
  if (foreach_options && !s->has_foreach)
    Error(Pos(*foreach_options), where + ": " + foreach_options->Scalar() + " is for a step with foreach");
  if (has_run && has_uses) Error(s->pos, where + " has both 'run' and 'uses'; a step does one of them");
  else if (!has_run && !has_uses) Error(s->pos, where + " has neither 'run' nor 'uses'");
  else if (has_run && s->with) Error(s->with->pos, where + ": with is for plugin steps (uses); a run step takes env or arguments");
  // One request per step (the approvals table's key): items would share it.
  if (s->uses == kApprovalType && s->has_foreach)
    Error(s->pos, where + ": sluice/approval asks once per step; it takes no foreach");
  if (s->uses == kApprovalType && s->with) LoadApproval(s);
  if (s->service) {
    CheckServiceStep(*s, cache_node);
    s->cache = false;  // defaults' cache does not apply: a service is stopped, not finished
  }
}

void Loader::LoadApproval(Step* s) {
  const std::string where = "step '" + s->id + "'";
  const YamlNode *values = nullptr, *on_timeout = nullptr;
  for (const YamlEntry& e : s->with->entries) {
    if (e.first.scalar == "values") values = &e.second;
    else if (e.first.scalar == "on_timeout") on_timeout = &e.second;
    else if (e.first.scalar == "timeout" && e.second.IsScalar() && e.second.scalar.find("${{") == std::string::npos) {
      Millis d;
      if (Duration(e.second, "the approval's timeout", &d) && d.count() <= 0)
        Error(Pos(e.second), where + ": the approval's timeout must be longer than 0 (leave it out to wait without one)");
    }
  }
  // The schema check (PluginsFor) reports a values that is not a mapping.
  if (!values || !values->IsMap()) return;
  LoadParamSpecs(*values, where + " values", &s->approval_values);
  for (const YamlEntry& e : values->entries) {
    const std::string& name = e.first.scalar;
    if (name == "approved" || name == "approver" || name == "comment")
      Error(Pos(e.first), where + ": value name " + Quote(name) + " is taken by the output the approval sets itself");
  }
  bool approves = on_timeout && on_timeout->IsScalar() && on_timeout->scalar == "approve";
  if (!approves) return;
  for (const ParamSpec& v : s->approval_values)
    if (!v.default_value)
      Error(v.pos, where + ": value '" + v.name + "' needs a default, since on_timeout approves without an approver");
}

void Loader::LoadForeach(const YamlNode& v, Step* s) {
  s->has_foreach = true;
  if (v.IsSequence()) {
    if (v.items.size() > kMaxForeachItems)
      Error(Pos(v.items[kMaxForeachItems]), "foreach has more than " + std::to_string(kMaxForeachItems) +
                                                " items (the limit)");
    for (size_t i = 0; i < v.items.size() && i < kMaxForeachItems; ++i) {
      const YamlNode& e = v.items[i];
      // Scalars stay strings, as they always were; lists and maps are typed
      // as YAML reads them, like a matrix's values.
      if (e.IsScalar()) s->foreach_items.push_back(Value::Str(e.Scalar()));
      else if (e.IsNull()) s->foreach_items.emplace_back();  // null (GCC 12 misreads a moved Value() as uninitialised)
      else s->foreach_items.push_back(YamlValue(e));
    }
  } else if (v.IsScalar() && v.Scalar().find("${{") != std::string::npos) {
    Template t;
    if (Tmpl(v, "foreach", &t)) {
      if (!t.SingleExpression()) Error(Pos(v), "foreach must be one ${{ }} expression that gives a list");
      else s->foreach_expr = std::move(t);
    }
  } else if (v.IsMap()) {
    LoadMatrix(v, s);
  } else {
    Error(Pos(v), "foreach must be a list, a ${{ }} expression that gives a list, or {matrix: ...}");
  }
}

void Loader::LoadMatrix(const YamlNode& v, Step* s) {
  const std::string where = "step '" + s->id + "' foreach";
  Matrix m;
  m.pos = Pos(v);
  bool has_matrix = false;
  auto entries = [&](const YamlNode& list, const std::string& what, std::vector<Map>* out) {
    if (!list.IsSequence()) {
      Error(Pos(list), where + ": " + what + " must be a list of mappings ({key: value, ...})");
      return;
    }
    for (const YamlNode& e : list.items) {
      if (!e.IsMap() || e.size() == 0) Error(Pos(e), where + ": each entry of " + what + " must be a mapping of matrix keys to values");
      else if (HasExpression(e)) Error(Pos(e), where + ": " + what + " entries are literal values; expressions go in the matrix");
      else out->push_back(YamlValue(e).as_map());
    }
  };
  ForEachKey(v, {"matrix", "include", "exclude"}, where, [&](const std::string& k, const YamlNode& key, const YamlNode& f) {
    if (k == "include") return entries(f, "include", &m.include);
    if (k == "exclude") return entries(f, "exclude", &m.exclude);
    has_matrix = true;
    m.pos = Pos(key);
    ForEachKey(f, {}, where + " matrix", [&](const std::string& name, const YamlNode& nkey, const YamlNode& values) {
      Matrix::Axis a;
      a.key = name;
      a.pos = Pos(nkey);
      if (values.IsSequence()) {
        for (const YamlNode& e : values.items) a.values.push_back(YamlValue(e));
        if (HasExpression(values))
          Error(Pos(values), where + ": matrix " + name + ": write the whole list as one ${{ }} expression, not expressions in it");
      } else if (values.IsScalar() && values.Scalar().find("${{") != std::string::npos) {
        Template t;
        if (!Tmpl(values, "matrix " + name, &t)) return;
        if (!t.SingleExpression()) {
          Error(Pos(values), where + ": matrix " + name + " must be a list or one ${{ }} expression that gives a list");
          return;
        }
        a.expr = std::move(t);
      } else {
        Error(Pos(values), where + ": matrix " + name + " must be a list or one ${{ }} expression that gives a list");
        return;
      }
      m.axes.push_back(std::move(a));
    });
  });
  if (!has_matrix && m.include.empty()) {
    Error(Pos(v), where + " must be a list, a ${{ }} expression that gives a list, or {matrix: ...}");
    return;
  }
  // Literal matrices are counted now, so the limit is a located error.
  bool literal = std::none_of(m.axes.begin(), m.axes.end(), [](const Matrix::Axis& a) { return a.expr.has_value(); });
  if (literal) {
    struct NoContext : EvalContext {
      Result<Value> Lookup(const std::vector<std::string>&) const override { return Status::Internal("no names"); }
      bool StatusFunction(std::string_view) const override { return false; }
    } none;
    auto items = ExpandMatrix(m, none);
    if (!items.ok()) Error(m.pos, where + ": " + items.status().message());
  }
  s->matrix = std::move(m);
}

void Loader::LoadRegister(const YamlNode& v, Step* s) {
  const std::string where = "step '" + s->id + "' register";
  ModelRegistration& r = s->registration.emplace();
  ForEachKey(v, {"name", "output"}, where, [&](const std::string& k, const YamlNode&, const YamlNode& f) {
    if (k == "name") {
      if (Scalar(f, "name", &r.name) && !IsPipelineName(r.name))
        Error(Pos(f), "model name " + Quote(r.name) + " must match [a-z0-9][a-z0-9-]*");
    } else {
      Scalar(f, "output", &r.output);
    }
  });
  if (!v.IsMap()) return;
  if (r.name.empty()) Error(Pos(v), where + " needs a name");
  std::vector<std::string> models;
  for (const auto& [name, kind] : s->outputs)
    if (kind == "model") models.push_back(name);
  if (r.output.empty()) {
    if (models.size() == 1) r.output = models[0];
    else Error(Pos(v), where + ": say which output to register (the step declares " + std::to_string(models.size()) +
                           " outputs of kind model)");
  } else if (std::find(models.begin(), models.end(), r.output) == models.end()) {
    Error(Pos(v), where + ": output '" + r.output + "' is not a declared output of kind model" +
                      DidYouMean(r.output, models));
  }
}

bool Loader::Condition(const YamlNode& v, std::string_view what, Template* out) {
  std::string text;
  if (!Scalar(v, what, &text)) return false;
  int shift = QuoteShift(v);
  if (text.find("${{") != std::string::npos) return Tmpl(v, what, out);
  // `if: success() && params.x` without ${{ }} is an expression too.
  std::unique_ptr<Expr> e;
  if (auto err = ParseExpr(text, &e)) {
    SourcePos p = Pos(v);
    p.column += shift + static_cast<int>(err->offset);
    Error(p, "bad expression " + Quote(text) + ": " + err->message);
    return false;
  }
  Template::Part part;
  part.expr = std::move(e);
  part.expr_text = text;
  part.pos = Pos(v);
  part.pos.column += shift - 3;  // as if `${{` stood before the text
  out->parts.push_back(std::move(part));
  out->source = text;
  out->pos = Pos(v);
  return true;
}

void Loader::LoadCondition(const YamlNode& v, Step* s) {
  Template t;
  if (!Condition(v, "if", &t)) return;
  for (const Template::Part& part : t.parts)
    if (part.expr && CallsStatusFunction(*part.expr)) s->if_checks_status = true;
  s->if_condition = std::move(t);
}

}  // namespace sluice::spec::internal
