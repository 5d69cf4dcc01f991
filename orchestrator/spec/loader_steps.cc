// The spec loader (spec/loader.h): the steps, and the checks across them
// (references to steps, params and outputs; dependency cycles).
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

std::string Loader::DepProblem(const std::string& dep) {
  if (dep.find_first_not_of(" \t") == std::string::npos) return "is empty";
  if (dep.find("${{") != std::string::npos) return "has an expression; deps are literal paths and globs";
  if (dep[0] == '/') return "is an absolute path; deps are relative to the spec's folder";
  if (dep[0] == '~') return "starts with ~; deps are relative to the spec's folder";
  std::string norm = std::filesystem::path(dep).lexically_normal().generic_string();
  if (norm == ".." || norm.rfind("../", 0) == 0) return "is outside the spec's folder; deps must stay under it";
  return "";
}

void Loader::LoadSteps(YamlNode& n) {
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
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    LoadStep(*bodies[i], &p_.steps[i]);
    *const_cast<YamlNode*>(bodies[i]) = YamlNode();  // a node of `n`: the step has what it needs of it
  }
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
  const YamlNode* secrets_node = nullptr;
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

void Loader::LoadRegister(const YamlNode& v, Step* s) {
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

void Loader::LoadCondition(const YamlNode& v, Step* s) {
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

void Loader::CheckRefs(const Template& t, const Step* step, const std::string& where, bool item_allowed) {
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
        CheckCall(pos, e);
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
      } else if (root == "run") {
        static const std::vector<std::string> kRunNames = {"scheduled_time", "interval_start", "interval_end"};
        if (path.size() != 2 || std::find(kRunNames.begin(), kRunNames.end(), path[1]) == kRunNames.end()) {
          std::string name = path.size() >= 2 ? path[1] : "";
          Error(pos, "unknown name " + Quote(Join(path, ".")) + " (a run has scheduled_time, interval_start and "
                     "interval_end)" + DidYouMean(name, kRunNames));
        }
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
        Error(pos, "unknown name " + Quote(Join(path, ".")) + " (expressions see params, steps, env, item and run)");
      }
    });
  }
}

std::vector<std::string> Loader::StepIds() const {
  std::vector<std::string> ids;
  for (const Step& s : p_.steps) ids.push_back(s.id);
  return ids;
}

std::vector<std::string> Loader::ParamNames() const {
  std::vector<std::string> names;
  for (const ParamSpec& ps : p_.params) names.push_back(ps.name);
  return names;
}

void Loader::CheckCall(SourcePos pos, const Expr& call) {
  const auto& known = KnownFunctions();
  if (std::find(known.begin(), known.end(), call.op) == known.end()) {
    Error(pos, "unknown function " + Quote(call.op + "()") + DidYouMean(call.op, known));
    return;
  }
  size_t want = (call.op == "fromJSON" || call.op == "toJSON") ? 1 : 0;
  if (call.args.size() != want)
    Error(pos, call.op + "() takes " + std::to_string(want) + " argument" + (want == 1 ? "" : "s"));
}

void Loader::CheckStepRefs(Step& s) {
  for (size_t i = 0; i < s.needs.size(); ++i) {
    auto it = p_.index.find(s.needs[i]);
    need_index_.push_back(it == p_.index.end() ? std::string::npos : it->second);
    if (s.needs[i] == s.id) Error(s.needs_pos[i], "step '" + s.id + "' needs itself");
    else if (it == p_.index.end())
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

void Loader::CheckWithRefs(const YamlNode& n, const Step& s) {
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

void Loader::FindCycles() {
  enum Color : char { kWhite, kGrey, kBlack };
  std::vector<Color> color(p_.steps.size(), kWhite);
  std::vector<size_t> first_need(p_.steps.size() + 1, 0);  // where each step's needs start in need_index_
  for (size_t i = 0; i < p_.steps.size(); ++i) first_need[i + 1] = first_need[i] + p_.steps[i].needs.size();
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
      size_t j = need_index_[first_need[i] + need];
      if (j == std::string::npos) continue;
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

}  // namespace sluice::spec::internal
