// The spec loader (spec/loader.h): templates. A call of a template is
// expanded where the spec loads: the template's steps join the run as
// CALL.STEP, ordinary steps for the engine and the store, and their
// expressions are rewritten into the pipeline's terms once every name has
// been checked in the template's own. specs/pipeline.md, "Templates".
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "spec/loader.h"
#include "spec/pipeline.h"
#include "util/strings.h"

namespace sluice::spec::internal {

namespace {

std::shared_ptr<Expr> Literal(const Value& v) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kLiteral;
  e->literal = v;
  return e;
}

std::unique_ptr<Expr> Node(Expr::Kind kind, std::string op = "") {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->op = std::move(op);
  return e;
}

std::unique_ptr<Expr> Clone(const Expr& e) {
  auto out = std::make_unique<Expr>();
  out->kind = e.kind;
  out->literal = e.literal;
  out->path = e.path;
  out->op = e.op;
  out->offset = e.offset;
  for (const auto& a : e.args) out->args.push_back(Clone(*a));
  return out;
}

// What an `if` means on its own: one that calls no status function is
// `success() && (if)`; none at all is `success()`.
std::unique_ptr<Expr> EffectiveCondition(const Expr* e) {
  if (e && CallsStatusFunction(*e)) return Clone(*e);
  auto success = Node(Expr::Kind::kCall, "success");
  if (!e) return success;
  auto both = Node(Expr::Kind::kAnd);
  both->args.push_back(std::move(success));
  both->args.push_back(Clone(*e));
  return both;
}

bool CanTake(ParamSpec::Type from, ParamSpec::Type to) {
  return from == to || (from == ParamSpec::Type::kInt && to == ParamSpec::Type::kFloat);
}

}  // namespace

void Loader::LoadTemplates(const YamlNode& n) {
  if (n.IsNull()) return;
  ForEachKey(n, {}, "templates", [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
    if (!IsIdentifier(name)) {
      Error(Pos(key), "template name " + Quote(name) + " must match [A-Za-z_][A-Za-z0-9_-]*");
      return;
    }
    TemplateDef& def = templates_[name];
    def.name = name;
    def.file = file_;
    def.pos = Pos(key);
    LoadTemplateBody(v, &def, /*from_file=*/false);
  });
}

void Loader::LoadTemplateBody(const YamlNode& n, TemplateDef* def, bool from_file) {
  const std::string where = "template '" + def->name + "'";
  std::vector<std::string> keys = kTemplateKeys;
  if (from_file) keys.pop_back();  // a file's template is the template: no uses: of another file
  const YamlNode* outputs = nullptr;
  bool ok = ForEachKey(n, keys, where, [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "params") {
      LoadParamSpecs(v, "params", &def->params);
    } else if (k == "steps") {
      if (!v.IsMap() || v.size() == 0) Error(Pos(v), where + ": steps must be a mapping of step ids to steps, with at least one step");
      else def->steps = &v;
    } else if (k == "outputs") {
      outputs = &v;
    } else if (k == "uses") {
      def->uses_pos = Pos(v);
      if (Scalar(v, "uses", &def->uses)) {
        // The rule of deps: (a literal path inside the spec's folder); its
        // message without the part that speaks of deps.
        std::string problem = DepProblem(def->uses);
        if (!problem.empty()) {
          Error(Pos(v), where + ": uses " + Quote(def->uses) + " " + problem.substr(0, problem.find(';')) +
                            " (a template file is a path relative to the spec's folder, inside it)");
          def->uses.clear();
          def->read = true;
        }
      }
    } else {
      std::string text;
      Scalar(v, "description", &text);
    }
  });
  if (!ok) return;
  if (!from_file && (!def->uses.empty() || def->uses_pos.line > 0)) {
    if (def->steps || outputs || !def->params.empty())
      Error(def->uses_pos, where + " has uses: and its own params, steps or outputs; the file holds them all");
    return;
  }
  if (!def->steps) {
    Error(from_file ? SourcePos{1, 1} : def->pos, where + " needs steps (or uses: a template file)");
    return;
  }
  if (!outputs) return;
  std::vector<std::string> locals;
  for (const YamlEntry& e : def->steps->entries) locals.push_back(e.first.Scalar());
  ForEachKey(*outputs, {}, where + " outputs", [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
    Template t;
    if (!Tmpl(v, "output " + name, &t)) return;
    const Expr* e = t.SingleExpression();
    bool ref = e && e->kind == Expr::Kind::kRef && e->path.size() == 4 && e->path[0] == "steps" && e->path[2] == "outputs";
    if (!ref) {
      Error(Pos(v), where + ": output '" + name + "' must be one ${{ steps.<id>.outputs.<name> }} of the template's steps");
      return;
    }
    if (std::find(locals.begin(), locals.end(), e->path[1]) == locals.end()) {
      Error(Pos(v), where + ": output '" + name + "' reads unknown step " + Quote(e->path[1]) + DidYouMean(e->path[1], locals));
      return;
    }
    t.pos = Pos(key);
    def->outputs.emplace_back(name, std::move(t));
  });
}

bool Loader::ReadTemplateFile(TemplateDef* def) {
  def->read = true;
  if (!read_files_) {
    Error(def->uses_pos, "template '" + def->name + "': uses: " + Quote(def->uses) +
                             " is not read for a spec sent to the API; validate it with sluice validate");
    return false;
  }
  namespace fs = std::filesystem;
  fs::path path = (fs::path(file_).parent_path() / def->uses).lexically_normal();
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || fs::is_directory(path, ec)) {
    Error(def->uses_pos, "template '" + def->name + "': cannot read " + Quote(path.string()) +
                             (fs::exists(path, ec) ? "" : ": no such file"));
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  def->file = path.string();
  const std::string* caller = cur_file_;
  cur_file_ = &def->file;
  if (text.size() > kMaxSpecBytes) {
    Error({1, 1}, "the template file is " + std::to_string(text.size()) + " bytes, over the limit of " +
                      std::to_string(kMaxSpecBytes) + " bytes (16 MiB)");
  } else if (auto parsed = ParseYaml(text); auto* err = std::get_if<YamlError>(&parsed)) {
    Error(err->pos, (err->malformed ? "malformed YAML: " : "") + err->message);
  } else {
    def->tree = std::move(std::get<YamlNode>(parsed));
    if (!def->tree.IsMap()) Error(def->tree.IsNull() ? SourcePos{1, 1} : def->tree.pos,
                                  "a template file must be a mapping with steps (and params, outputs)");
    else LoadTemplateBody(def->tree, def, /*from_file=*/true);
  }
  cur_file_ = caller;
  return def->steps != nullptr;
}

void Loader::ExpandCall(const std::string& local, const YamlNode& key, const YamlNode& n, size_t scope,
                        std::vector<const YamlNode*>* bodies) {
  Scope inner;
  {
    const Scope& parent = scopes_[scope];
    inner.parent = scope;
    inner.call = parent.prefix + local;
    inner.local_call = local;
    inner.prefix = inner.call + ".";
    inner.call_file = &FileOf(scope);
    inner.call_pos = Pos(key);
    inner.depth = parent.depth + 1;
    inner.chain = parent.chain;
    inner.is_finally = adding_finally_;
  }
  const std::string where = "call '" + local + "'";
  std::string name;
  const YamlNode* with = nullptr;
  ForEachKey(n, kCallKeys, where, [&](const std::string& k, const YamlNode&, const YamlNode& v) {
    if (k == "call") {
      inner.call_pos = Pos(v);
      Scalar(v, "call", &name);
    } else if (k == "with") {
      with = &v;
    } else if (k == "foreach") {
      inner.foreach = std::make_shared<Step>();
      inner.foreach->id = local;
      inner.foreach->pos = Pos(v);
      LoadForeach(v, inner.foreach.get());
    } else if (k == "if") {
      Step tmp;
      tmp.id = local;
      LoadCondition(v, &tmp);
      if (tmp.if_condition && !tmp.if_condition->SingleExpression())
        Error(Pos(v), where + ": if must be one expression (it joins the if of every step of the template)");
      else if (tmp.if_condition) inner.if_condition = std::move(*tmp.if_condition);
    } else if (v.IsScalar()) {
      inner.needs.push_back(v.Scalar());
      inner.needs_pos.push_back(Pos(v));
    } else if (v.IsSequence()) {
      for (const YamlNode& e : v.items)
        if (Single(e, "each entry of needs")) {
          inner.needs.push_back(e.Scalar());
          inner.needs_pos.push_back(Pos(e));
        }
    } else {
      Error(Pos(v), "needs must be a step id or a list of step ids");
    }
  });
  auto it = templates_.find(name);
  if (it == templates_.end()) {
    std::vector<std::string> names;
    for (const auto& [t, def] : templates_) names.push_back(t);
    if (!name.empty()) Error(inner.call_pos, where + " calls unknown template " + Quote(name) + DidYouMean(name, names));
    return;
  }
  std::vector<std::string> chain = inner.chain;
  chain.push_back(name);
  if (std::find(inner.chain.begin(), inner.chain.end(), name) != inner.chain.end()) {
    Error(inner.call_pos, where + ": template '" + name + "' calls itself: " + Join(chain, " -> "));
    return;
  }
  if (inner.depth > kMaxTemplateDepth) {
    Error(inner.call_pos, where + ": template calls nest deeper than " + std::to_string(kMaxTemplateDepth) +
                              " levels (the limit): " + Join(chain, " -> "));
    return;
  }
  TemplateDef& def = it->second;
  if (!def.uses.empty() && !def.read) ReadTemplateFile(&def);
  if (!def.steps) return;
  inner.def = &def;
  inner.chain = std::move(chain);
  CheckCallArgs(with, &inner);
  size_t k = scopes_.size();
  scopes_.push_back(std::move(inner));
  calls_[scopes_[k].call] = k;
  if (size_t outer = scopes_[scope].chain_root; outer > 0 && scopes_[k].foreach)
    Error(scopes_[k].foreach->pos, where + " has foreach inside call '" + scopes_[outer].local_call +
                                       "', which has a foreach too; give the outer call one list (a matrix of both)");
  scopes_[k].chain_root = scopes_[k].foreach ? k : scopes_[scope].chain_root;
  const std::string* caller = cur_file_;
  cur_file_ = &def.file;
  AddSteps(*def.steps, k, bodies);
  cur_file_ = caller;
}

void Loader::CheckCallArgs(const YamlNode* with, Scope* inner) {
  const TemplateDef& def = *inner->def;
  const Scope& caller = scopes_[inner->parent];
  const auto& caller_params = caller.def ? caller.def->params : p_.params;
  std::vector<std::string> names;
  for (const ParamSpec& ps : def.params) names.push_back(ps.name);
  auto param = [&](const std::vector<ParamSpec>& v, const std::string& n) -> const ParamSpec* {
    for (const ParamSpec& ps : v)
      if (ps.name == n) return &ps;
    return nullptr;
  };
  if (with && !with->IsMap() && !with->IsNull()) Error(Pos(*with), "call '" + inner->local_call + "': with must be a mapping of the template's params");
  if (with && with->IsMap())
    ForEachKey(*with, {}, "with", [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
      const ParamSpec* ps = param(def.params, name);
      if (!ps) {
        Error(Pos(key), "template '" + def.name + "' has no param " + Quote(name) + DidYouMean(name, names));
        return;
      }
      if (!Single(v, "with " + name)) return;
      if (v.Scalar().find("${{") == std::string::npos) {
        auto value = CheckParam(*ps, v.Scalar(), "");
        if (!value.ok()) Error(Pos(v), "template '" + def.name + "': " + value.status().message());
        else inner->args[name] = Literal(*value);
        return;
      }
      Template t;
      if (!Tmpl(v, "with " + name, &t)) return;
      const Template::Part* single = nullptr;
      for (const Template::Part& part : t.parts)
        if (part.expr) single = &part;
      if (!t.SingleExpression() || !single) {
        Error(Pos(v), "with " + name + ": a template param takes a value or one ${{ }} expression, not text around one");
        return;
      }
      // A caller's param has a known type: check it now. Other values
      // (outputs, env) are known only when the step runs.
      const Expr& e = *single->expr;
      if (e.kind == Expr::Kind::kRef && e.path.size() == 2 && e.path[0] == "params")
        if (const ParamSpec* from = param(caller_params, e.path[1]); from && !CanTake(from->type, ps->type))
          Error(Pos(v), "with " + name + ": params." + from->name + " is " + ParamTypeName(from->type) +
                            ", but template param '" + name + "' is " + ParamTypeName(ps->type));
      inner->args[name] = single->expr;
      inner->arg_templates.emplace_back(name, std::move(t));
    });
  for (const ParamSpec& ps : def.params) {
    if (inner->args.count(ps.name)) continue;
    if (ps.default_value) inner->args[ps.name] = Literal(*ps.default_value);
    else if (!with || !with->IsMap() || std::none_of(with->entries.begin(), with->entries.end(), [&](const YamlEntry& e) {
               return e.first.IsScalar() && e.first.Scalar() == ps.name;
             }))
      Error(inner->call_pos, "call '" + inner->local_call + "' of template '" + def.name + "' is missing required param '" +
                                 ps.name + "' (give it in with:)");
  }
}

void Loader::MarkChains() {
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    size_t scope = ScopeOfStep(i);
    size_t root = scopes_[scope].chain_root;
    if (root == 0) continue;
    Step& s = p_.steps[i];
    const Scope& call = scopes_[root];
    const std::string local = s.id.substr(scopes_[scope].prefix.size());
    cur_file_ = &FileOf(scope);
    if (s.has_foreach)
      Error(s.pos, "step '" + local + "' has its own foreach, but call '" + call.local_call +
                       "' runs its template once per item; give the call one list (a matrix of both)");
    else if (s.uses == kApprovalType)
      Error(s.pos, "step '" + local + "': sluice/approval asks once per step, but call '" + call.local_call +
                       "' runs its template once per item");
    s.chain = call.call;
    s.has_foreach = true;
    for (const std::string& n : s.needs)
      if (n.compare(0, call.prefix.size(), call.prefix) == 0) s.item_needs.push_back(n);
  }
  cur_file_ = &file_;
}

std::vector<std::string> Loader::CallLeaves(const std::string& call) {
  const Scope& sc = scopes_[calls_.at(call)];
  std::set<std::string> needed;
  for (size_t i = 0; i < sc.locals.size(); ++i) {
    std::string full = sc.prefix + sc.locals[i];
    if (sc.local_is_call[i]) {
      if (auto c = calls_.find(full); c != calls_.end()) needed.insert(scopes_[c->second].needs.begin(), scopes_[c->second].needs.end());
    } else if (const Step* s = p_.FindStep(full)) {
      needed.insert(s->needs.begin(), s->needs.end());
    }
  }
  std::vector<std::string> leaves;
  for (size_t i = 0; i < sc.locals.size(); ++i) {
    if (needed.count(sc.locals[i])) continue;
    std::string full = sc.prefix + sc.locals[i];
    if (!sc.local_is_call[i]) leaves.push_back(full);
    else if (calls_.count(full))
      for (std::string& l : CallLeaves(full)) leaves.push_back(std::move(l));
  }
  return leaves;
}

void Loader::WireNeeds() {
  // Leaves first: they read the needs as written.
  std::map<std::string, std::vector<std::string>> leaves;
  for (const auto& [call, k] : calls_) leaves[call] = CallLeaves(call);
  auto resolve = [&](size_t scope, const std::string& need, SourcePos pos, const std::string& who,
                     std::vector<std::string>* ids, std::vector<SourcePos>* at) {
    std::string full = scopes_[scope].prefix + need;
    if (auto l = leaves.find(full); l != leaves.end()) {
      ids->insert(ids->end(), l->second.begin(), l->second.end());
      at->insert(at->end(), l->second.size(), pos);
    } else if (scope == 0 || p_.FindStep(full)) {
      ids->push_back(full);  // an unknown one at the top level is reported by CheckStepRefs
      at->push_back(pos);
    } else {
      size_t saved = cur_scope_;
      cur_scope_ = scope;
      Error(pos, who + " needs unknown step " + Quote(need) + DidYouMean(need, StepIds()));
      cur_scope_ = saved;
    }
  };
  for (size_t k = 1; k < scopes_.size(); ++k) {
    Scope& sc = scopes_[k];
    std::vector<std::string> ids;
    std::vector<SourcePos> at;
    cur_file_ = sc.call_file;
    for (size_t j = 0; j < sc.needs.size(); ++j) resolve(sc.parent, sc.needs[j], sc.needs_pos[j], "call '" + sc.local_call + "'", &ids, &at);
    sc.resolved_needs = std::move(ids);
  }
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    Step& s = p_.steps[i];
    size_t scope = ScopeOfStep(i);
    cur_file_ = &FileOf(scope);
    std::vector<std::string> ids;
    std::vector<SourcePos> at;
    for (size_t j = 0; j < s.needs.size(); ++j)
      resolve(scope, s.needs[j], s.needs_pos[j], "step '" + s.id.substr(scopes_[scope].prefix.size()) + "'", &ids, &at);
    if (scope > 0 && s.needs.empty()) {  // a first step of the call: it needs what the call needs
      ids = CallNeeds(scope);
      at.assign(ids.size(), scopes_[scope].call_pos);
    }
    s.needs = std::move(ids);
    s.needs_pos = std::move(at);
  }
  cur_file_ = &file_;
}

const std::vector<std::string>& Loader::CallNeeds(size_t scope) {
  Scope& sc = scopes_[scope];
  if (!sc.needs.empty() || sc.parent == 0) {
    if (!sc.resolved_needs) sc.resolved_needs.emplace();
    return *sc.resolved_needs;
  }
  return CallNeeds(sc.parent);  // a first call of its template: what the enclosing call needs
}

std::optional<std::pair<std::string, std::string>> Loader::ResolveCallOutput(const std::string& call, const std::string& output,
                                                                             std::string* problem) {
  const Scope& sc = scopes_[calls_.at(call)];
  std::vector<std::string> names;
  for (const auto& [name, t] : sc.def->outputs) {
    if (name == output) {
      const Expr& e = *t.SingleExpression();
      std::string inner = sc.prefix + e.path[1];
      if (calls_.count(inner)) return ResolveCallOutput(inner, e.path[3], problem);
      return std::make_pair(inner, e.path[3]);
    }
    names.push_back(name);
  }
  *problem = "template '" + sc.def->name + "' (called as '" + sc.local_call + "') has no output " + Quote(output) +
             DidYouMean(output, names) + " (it declares " + (names.empty() ? std::string("none") : Join(names, ", ")) + ")";
  return std::nullopt;
}

std::shared_ptr<const Expr> Loader::Rewrite(const Expr& e, size_t scope) {
  const Scope& sc = scopes_[scope];
  if (e.kind == Expr::Kind::kRef && e.path.size() == 2 && e.path[0] == "params" && sc.def) {
    // The caller's value, in the caller's terms; an expression's value is
    // checked against the param when the step runs (a literal was, at load).
    std::shared_ptr<const Expr> value = Rewrite(*sc.args.at(e.path[1]), sc.parent);
    bool expression = std::any_of(sc.arg_templates.begin(), sc.arg_templates.end(),
                                  [&](const auto& a) { return a.first == e.path[1]; });
    if (!expression) return value;
    const auto& ps = sc.def->params;
    auto spec = std::find_if(ps.begin(), ps.end(), [&](const ParamSpec& p) { return p.name == e.path[1]; });
    return TemplateParamCheck(Clone(*value), *spec, "call '" + sc.local_call + "' of template '" + sc.def->name + "'");
  }
  std::shared_ptr<Expr> out = Clone(e);
  if (e.kind == Expr::Kind::kRef && e.path.size() >= 3 && e.path[0] == "steps") {
    std::string full = sc.prefix + e.path[1];
    if (calls_.count(full) && e.path.size() == 4) {
      std::string problem;
      auto inner = ResolveCallOutput(full, e.path[3], &problem);
      out->path = {"steps", inner->first, "outputs", inner->second};
    } else {
      out->path[1] = full;
    }
  }
  for (size_t i = 0; i < e.args.size(); ++i) {
    auto a = Rewrite(*e.args[i], scope);
    out->args[i] = Clone(*a);
  }
  return out;
}

void Loader::RewriteTemplate(Template* t, size_t scope) {
  for (Template::Part& part : t->parts)
    if (part.expr) part.expr = Rewrite(*part.expr, scope);
}

void Loader::RewriteTemplates() {
  if (scopes_.size() == 1) return;
  for (RunOutput& o : p_.outputs) RewriteTemplate(&o.value, 0);
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    Step& s = p_.steps[i];
    size_t scope = ScopeOfStep(i);
    for (Template& t : s.run) RewriteTemplate(&t, scope);
    for (auto& [name, t] : s.env) RewriteTemplate(&t, scope);
    if (s.workdir) RewriteTemplate(&*s.workdir, scope);
    if (s.foreach_expr) RewriteTemplate(&*s.foreach_expr, scope);
    if (s.matrix)
      for (Matrix::Axis& a : s.matrix->axes)
        if (a.expr) RewriteTemplate(&*a.expr, scope);
    if (s.if_condition) RewriteTemplate(&*s.if_condition, scope);
    // Each enclosing call's `if` joins the step's own: a call skipped by its
    // condition skips every step of it, not just the first ones.
    std::string source = s.if_condition ? s.if_condition->source : "";
    for (size_t k = scope; k > 0; k = scopes_[k].parent) {
      const Scope& sc = scopes_[k];
      if (!sc.if_condition) continue;
      if (s.if_condition && !s.if_condition->SingleExpression()) {
        cur_file_ = &FileOf(scope);
        Error(s.if_condition->pos, "step '" + s.id.substr(scopes_[scope].prefix.size()) +
                                       "': if must be one expression in a template called with an if");
        cur_file_ = &file_;
        break;
      }
      Template call_if = *sc.if_condition;
      RewriteTemplate(&call_if, sc.parent);
      auto both = Node(Expr::Kind::kAnd);
      both->args.push_back(EffectiveCondition(call_if.SingleExpression()));
      both->args.push_back(EffectiveCondition(s.if_condition ? s.if_condition->SingleExpression() : nullptr));
      Template::Part part;
      part.expr = std::move(both);
      part.pos = call_if.pos;
      Template joined;
      joined.parts.push_back(std::move(part));
      source = source.empty() ? call_if.source : "(" + call_if.source + ") && (" + source + ")";
      joined.source = source;
      joined.pos = call_if.pos;
      s.if_condition = std::move(joined);
      s.if_checks_status = true;
    }
    if (!s.chain.empty()) ForEachOfCall(&s, scopes_[scope].chain_root);
  }
}

void Loader::ForEachOfCall(Step* s, size_t root) {
  // Every step of the call decides its `if` per item; its first steps make
  // the items from the call's foreach, read where the call is written.
  if (s->if_condition) s->if_reads_item = true;
  if (!s->item_needs.empty()) return;
  const Step& f = *scopes_[root].foreach;
  size_t caller = scopes_[root].parent;
  s->foreach_items = f.foreach_items;
  if (f.foreach_expr) {
    s->foreach_expr = *f.foreach_expr;
    RewriteTemplate(&*s->foreach_expr, caller);
  }
  if (f.matrix) {
    s->matrix = *f.matrix;
    for (Matrix::Axis& a : s->matrix->axes)
      if (a.expr) RewriteTemplate(&*a.expr, caller);
  }
}

}  // namespace sluice::spec::internal
