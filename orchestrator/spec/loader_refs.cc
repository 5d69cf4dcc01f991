// The spec loader (spec/loader.h): the checks across steps (references to
// steps, params and outputs; calls of functions; dependency cycles).
#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "spec/loader.h"
#include "spec/pipeline.h"
#include "spec/yaml_tree.h"
#include "util/strings.h"

namespace sluice::spec::internal {

void Loader::CheckRefs(const Template& t, const Step* step, const std::string& where, bool item_allowed) {
  std::optional<std::vector<std::string>> ancestors;  // computed on the first steps.* reference
  auto needs = [&](const std::string& id) {
    if (reading_run_outputs_) return true;  // evaluated once every step is final
    // A finally step runs after every step of `steps:`: it may read any of them.
    if (step->is_finally && !p_.FindStep(id)->is_finally) return true;
    if (std::find(step->needs.begin(), step->needs.end(), id) != step->needs.end()) return true;
    if (!ancestors) {
      ancestors = Ancestors(p_, step->id);
      if (!p_.FindStep(step->id))  // a call: what its needs need
        for (const std::string& n : step->needs)
          for (std::string& a : Ancestors(p_, n)) ancestors->push_back(std::move(a));
    }
    return std::find(ancestors->begin(), ancestors->end(), id) != ancestors->end();
  };
  for (const Template::Part& part : t.parts) {
    if (!part.expr) continue;
    VisitExpr(*part.expr, [&](const Expr& e) {
      SourcePos pos = part.pos;
      if (pos.line == t.pos.line) pos.column += 3 + static_cast<int>(e.offset);
      if (e.kind == Expr::Kind::kCall) {
        if (reading_attempt_ && IsStatusFunction(e.op))
          Error(pos, e.op + "() has no meaning in retry on, which is asked about one failed attempt");
        else if (reading_run_outputs_ && IsStatusFunction(e.op))
          Error(pos, e.op + "() has no meaning in a run output, which is rendered once every step is final; "
                     "read steps.<id>.state");
        else CheckCall(pos, e);
        return;
      }
      const auto& path = e.path;
      const std::string& root = path[0];
      const Scope& scope = scopes_[cur_scope_];
      if (root == "params") {
        if (path.size() != 2) Error(pos, "expected params.<name>");
        else if (scope.def) {
          const auto& ps = scope.def->params;
          if (std::none_of(ps.begin(), ps.end(), [&](const ParamSpec& x) { return x.name == path[1]; }))
            Error(pos, "template '" + scope.def->name + "' has no param " + Quote(path[1]) + DidYouMean(path[1], ParamNames()));
        } else if (!p_.FindParam(path[1]))
          Error(pos, "unknown param " + Quote(path[1]) + DidYouMean(path[1], ParamNames()));
      } else if (root == "env") {
        if (path.size() != 2) Error(pos, "expected env.<NAME>");
        else if (IsSecretName(p_, path[1]))
          Error(pos, "env." + path[1] + " is a secret, and secrets are never rendered into a spec's values; list it "
                     "under secrets: and read $" + path[1] + " in the step");
      } else if (root == "item") {
        if (path.size() != 1) Error(pos, "expected item");
        else if (reading_run_outputs_)
          Error(pos, "a run output cannot read 'item', which is only defined inside a step with foreach");
        else if (!step || !step->has_foreach || !item_allowed)
          Error(pos, "'item' is only defined inside a step with foreach");
      } else if (root == "attempt") {
        if (!reading_attempt_)
          Error(pos, "'attempt' is only defined in retry on (the failed attempt)");
        else if (path.size() != 2 || std::find(kAttemptFields.begin(), kAttemptFields.end(), path[1]) == kAttemptFields.end())
          Error(pos, "unknown name " + Quote(Join(path, ".")) + " (retry on sees attempt.exit_code, attempt.signal, "
                     "attempt.timed_out and attempt.reason)" + (path.size() == 2 ? DidYouMean(path[1], kAttemptFields) : ""));
      } else if (reading_attempt_) {
        Error(pos, "retry on sees attempt, params and env, not " + Quote(Join(path, ".")));
      } else if (root == "run") {
        std::string name = path.size() == 2 ? path[1] : "";
        bool finally_field = std::find(kRunFields.begin(), kRunFields.end(), name) != kRunFields.end();
        bool time_field = std::find(kRunTimes.begin(), kRunTimes.end(), name) != kRunTimes.end();
        if (finally_field && (!step || !step->is_finally)) {
          Error(pos, Quote(Join(path, ".")) + " is only defined in finally steps");
        } else if (!finally_field && !time_field) {
          std::vector<std::string> all = kRunTimes;
          all.insert(all.end(), kRunFields.begin(), kRunFields.end());
          Error(pos, "unknown name " + Quote(Join(path, ".")) + " (a run has scheduled_time, interval_start and "
                     "interval_end, and in finally steps state and failed_steps)" + DidYouMean(name, all));
        }
      } else if (root == "service") {
        if (path.size() != 2 || path[1] != "port") Error(pos, "unknown name " + Quote(Join(path, ".")) + " (a service sees service.port)");
        else if (!step || !step->service) Error(pos, "'service.port' is only defined in a service: step (others read steps.<id>.port)");
      } else if (root == "steps") {
        std::string full = path.size() >= 2 ? scope.prefix + path[1] : "";
        auto call = calls_.find(full);
        std::string producer = full, output = path.size() == 4 ? path[3] : "";
        if (step && call != calls_.end() && path.size() == 4 && path[2] == "outputs") {
          std::string problem;
          auto inner = ResolveCallOutput(full, path[3], &problem);
          if (!inner) {
            Error(pos, problem);
            return;
          }
          std::tie(producer, output) = *inner;
        }
        if (!step) {
          Error(pos, where + " cannot read step outputs");
        } else if (call != calls_.end() && !(path.size() == 4 && path[2] == "outputs")) {
          const Scope& c = scopes_[call->second];
          Error(pos, "'" + path[1] + "' calls template '" + c.def->name + "'; read its outputs: steps." + path[1] +
                         ".outputs.<name> (it declares " + (c.def->outputs.empty() ? std::string("none") : [&] {
                           std::vector<std::string> names;
                           for (const auto& o : c.def->outputs) names.push_back(o.first);
                           return Join(names, ", ");
                         }()) + ")");
        } else if (path.size() < 2 || (call == calls_.end() && !p_.FindStep(full))) {
          std::string id = path.size() >= 2 ? path[1] : "";
          Error(pos, "unknown step " + Quote(id) + DidYouMean(id, StepIds()));
        } else if (!((path.size() == 4 && path[2] == "outputs") ||
                     (path.size() == 3 && (path[2] == "state" || path[2] == "exit_code" || path[2] == "port")))) {
          const Step* read = call == calls_.end() ? p_.FindStep(full) : nullptr;
          const std::string& id = path[1];
          Error(pos, "expected steps." + id + ".outputs.<name>, steps." + id + ".state" +
                         (read && read->service ? ", steps." + id + ".exit_code or steps." + id + ".port"
                                                : " or steps." + id + ".exit_code"));
        } else if (path[2] == "port" && (call != calls_.end() || !p_.FindStep(full)->service)) {
          Error(pos, "steps." + path[1] + ".port: step '" + path[1] + "' is not a service (only a service: step has a port)");
        } else if (!needs(producer)) {
          Error(pos, (p_.FindStep(step->id) ? "step '" : "call '") + step->id.substr(scope.prefix.size()) + "' reads steps." + path[1] +
                         " but does not need it (add '" + path[1] + "' to its needs)");
        } else if (path.size() == 4) {
          p_.output_refs.push_back(
              {step->id, producer, output, pos, cur_file_ == &file_ ? "" : *cur_file_, reading_run_outputs_});
        }
      } else {
        Error(pos, "unknown name " + Quote(Join(path, ".")) + " (expressions see params, steps, env, item, run and, in a service, service)");
      }
    });
  }
}

std::vector<std::string> Loader::StepIds() const {
  if (cur_scope_ > 0) return scopes_[cur_scope_].locals;
  std::vector<std::string> ids;
  for (size_t i = 0; i < p_.steps.size(); ++i)
    if (ScopeOfStep(i) == 0) ids.push_back(p_.steps[i].id);
  for (size_t k = 1; k < scopes_.size(); ++k)
    if (scopes_[k].parent == 0) ids.push_back(scopes_[k].call);
  return ids;
}

std::vector<std::string> Loader::ParamNames() const {
  std::vector<std::string> names;
  for (const ParamSpec& ps : scopes_[cur_scope_].def ? scopes_[cur_scope_].def->params : p_.params) names.push_back(ps.name);
  return names;
}

void Loader::CheckCall(SourcePos pos, const Expr& call) {
  const auto& known = KnownFunctions();
  if (std::find(known.begin(), known.end(), call.op) == known.end()) {
    Error(pos, "unknown function " + Quote(call.op + "()") + DidYouMean(call.op, known));
    return;
  }
  auto [min, max] = FunctionArity(call.op);
  int n = static_cast<int>(call.args.size());
  if (n < min || (max >= 0 && n > max)) {
    std::string count = max == min ? std::to_string(min) + (min == 1 ? " argument" : " arguments")
                        : max < 0  ? std::to_string(min) + " or more arguments"
                                   : std::to_string(min) + " or " + std::to_string(max) + " arguments";
    Error(pos, call.op + "() takes " + count + ", not " + std::to_string(n));
    return;
  }
  // hashFiles() globs are literal: check them as deps are.
  if (call.op == "hashFiles")
    for (const auto& a : call.args)
      if (a->kind == Expr::Kind::kLiteral && a->literal.is_string()) {
        std::string problem = DepProblem(a->literal.as_string());
        if (!problem.empty()) Error(pos, "hashFiles(): " + Quote(a->literal.as_string()) + " " + problem);
      }
}

void Loader::CheckStepRefs(Step& s) {
  for (size_t i = 0; i < s.needs.size(); ++i) {
    auto it = p_.index.find(s.needs[i]);
    need_index_.push_back(it == p_.index.end() ? std::string::npos : it->second);
    if (s.needs[i] == s.id) Error(s.needs_pos[i], "step '" + s.id + "' needs itself");
    else if (it == p_.index.end())
      Error(s.needs_pos[i], "step '" + s.id + "' needs unknown step " + Quote(s.needs[i]) + DidYouMean(s.needs[i], StepIds()));
    else if (!s.is_finally && p_.steps[it->second].is_finally)
      Error(s.needs_pos[i], "step '" + s.id + "' needs " + Quote(s.needs[i]) +
                                ", a finally step (finally steps run after every step of steps:)");
    else if (s.is_finally && !p_.steps[it->second].is_finally)
      Error(s.needs_pos[i], "finally step '" + s.id + "' needs " + Quote(s.needs[i]) +
                                ", a step of steps: (finally steps run after all of them and may read their "
                                "outputs without needs)");
  }
  // Ancestors() follows needs, so check names only once the graph is sound.
  for (const Template& t : s.run) CheckRefs(t, &s, "run");
  for (auto& [name, t] : s.env) CheckRefs(t, &s, "env " + name);
  if (s.workdir) CheckRefs(*s.workdir, &s, "workdir");
  if (s.if_condition) {
    // A foreach step's `if` that reads item is decided for each item.
    CheckRefs(*s.if_condition, &s, "if", /*item_allowed=*/true);
    for (const Template::Part& part : s.if_condition->parts)
      if (part.expr)
        VisitExpr(*part.expr, [&](const Expr& e) {
          if (e.kind == Expr::Kind::kRef && e.path[0] == "item") s.if_reads_item = true;
        });
  }
  if (s.foreach_expr) CheckRefs(*s.foreach_expr, &s, "foreach", /*item_allowed=*/false);
  if (s.matrix)
    for (const Matrix::Axis& a : s.matrix->axes)
      if (a.expr) CheckRefs(*a.expr, &s, "foreach matrix " + a.key, /*item_allowed=*/false);
  if (s.with) CheckWithRefs(*s.with, s);
  // A condition inherited from defaults is checked once, at its place there.
  if (s.retry.on_condition && !(default_retry_.on_condition && s.retry.on_condition->pos == default_retry_.on_condition->pos)) {
    reading_attempt_ = true;
    CheckRefs(*s.retry.on_condition, &s, "retry on", /*item_allowed=*/false);
    reading_attempt_ = false;
  }
}

void Loader::CheckWithRefs(const YamlNode& n, const Step& s) {
  if (n.IsMap())
    for (const auto& [k, v] : n.entries) CheckWithRefs(v, s);
  else if (n.IsSequence())
    for (const YamlNode& v : n.items) CheckWithRefs(v, s);
  else if (n.IsScalar() && n.scalar.find("${{") != std::string::npos) {
    Template t;
    if (auto err = ParseTemplate(n.scalar, n.pos, QuoteShift(n), &t)) {
      Error(err->first, err->second);
      return;
    }
    CheckRefs(t, &s, "with");
    // A plugin's with: is rendered from its text when the step runs, so it
    // cannot be rewritten into the pipeline's terms as run: and env: are.
    bool call_output = false;
    for (const Template::Part& part : t.parts)
      if (part.expr)
        VisitExpr(*part.expr, [&](const Expr& e) {
          if (e.kind == Expr::Kind::kRef && e.path.size() >= 2 && e.path[0] == "steps" && calls_.count(e.path[1])) call_output = true;
        });
    if (cur_scope_ > 0)
      Error(n.pos, "step '" + s.id.substr(scopes_[cur_scope_].prefix.size()) +
                       "': a plugin step inside a template cannot use ${{ }} in with: yet; pass the value to a run step");
    else if (call_output)
      Error(n.pos, "step '" + s.id + "': with: cannot read a template's outputs yet; read them in a run step");
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
        cur_file_ = &FileOf(ScopeOfStep(i));
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
