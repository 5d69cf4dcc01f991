// The spec loader (spec/loader.h): what limits runs across processes, the
// pipeline's `concurrency:` group and a step's `pool:`; and the group's
// rendering when a run is created.
#include <cctype>

#include "spec/loader.h"
#include "spec/pipeline.h"
#include "util/strings.h"

namespace sluice::spec {

namespace {

// A pool's name: a letter or digit, then letters, digits, '_', '-', '.'.
bool IsPoolName(const std::string& s) {
  if (s.empty() || s.size() > 64 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// What the group sees: params.NAME, nothing else.
class ParamsOnly : public EvalContext {
 public:
  explicit ParamsOnly(const ParamValues& params) : params_(params) {}
  Result<Value> Lookup(const std::vector<std::string>& path) const override {
    if (path.size() == 2 && path[0] == "params")
      if (auto it = params_.find(path[1]); it != params_.end()) return it->second;
    return Status::NotFound("unknown name '" + Join(path, ".") + "'");
  }
  bool StatusFunction(std::string_view) const override { return false; }

 private:
  const ParamValues& params_;
};

}  // namespace

bool IsValidPoolName(const std::string& name) { return IsPoolName(name); }

Result<std::string> RenderConcurrencyGroup(const Pipeline& p, const ParamValues& params) {
  if (!p.concurrency) return std::string();
  const Template& t = p.concurrency->group;
  auto text = Render(t, ParamsOnly(params));
  if (!text.ok()) return Status::InvalidSpec(At(p.file, t.pos, "concurrency group: " + text.status().message()));
  if (text->empty())
    return Status::InvalidSpec(At(p.file, t.pos, "concurrency group " + Quote(t.source) + " renders to an empty string"));
  if (text->size() > kMaxGroupBytes)
    return Status::InvalidSpec(At(p.file, t.pos,
                                  "concurrency group " + Quote(t.source) + " renders to " + std::to_string(text->size()) +
                                      " bytes, over the limit of " + std::to_string(kMaxGroupBytes)));
  return std::move(*text);
}

namespace internal {

void Loader::LoadConcurrency(const YamlNode& n) {
  Concurrency c;
  const YamlNode* group = nullptr;
  if (n.IsScalar()) {
    group = &n;  // the short form, `concurrency: NAME`, as GitHub's
  } else if (!n.IsMap()) {
    Error(Pos(n), "concurrency must be a group name or {group: ..., cancel_in_progress: true|false}");
    return;
  } else {
    ForEachKey(n, {"group", "cancel_in_progress"}, "concurrency",
               [&](const std::string& k, const YamlNode&, const YamlNode& v) {
                 if (k == "group") group = &v;
                 else Bool(v, "cancel_in_progress", &c.cancel_in_progress);
               });
    if (!group) {
      Error(Pos(n), "concurrency needs a group (group: \"deploy-${{ params.env }}\")");
      return;
    }
  }
  if (!Tmpl(*group, "concurrency group", &c.group)) return;
  if (c.group.source.find_first_not_of(" \t") == std::string::npos) {
    Error(Pos(*group), "concurrency group must not be empty");
    return;
  }
  bool ok = true;
  for (const Template::Part& part : c.group.parts) {
    if (!part.expr) continue;
    VisitExpr(*part.expr, [&](const Expr& e) {
      if (e.kind == Expr::Kind::kCall) {
        CheckCall(part.pos, e);
        return;
      }
      if (e.path.size() == 2 && e.path[0] == "params" && p_.FindParam(e.path[1])) return;
      ok = false;
      if (e.path[0] == "params" && e.path.size() == 2)
        Error(part.pos, "concurrency group reads unknown param " + Quote(e.path[1]) + DidYouMean(e.path[1], ParamNames()));
      else
        Error(part.pos, "unknown name " + Quote(Join(e.path, ".")) +
                            " (a concurrency group sees params.NAME only: it is rendered when the run is created)");
    });
  }
  if (ok) p_.concurrency = std::move(c);
}

void Loader::LoadPool(const YamlNode* pool, const YamlNode* pool_slots, const std::string& where, Step* s) {
  if (pool_slots && !pool) {
    Error(Pos(*pool_slots), where + ": pool_slots needs a pool (pool: NAME)");
    return;
  }
  if (!pool) return;
  std::string name;
  if (!Scalar(*pool, "pool", &name)) return;
  if (name.find("${{") != std::string::npos) {
    Error(Pos(*pool), where + ": pool must be a literal name, not an expression");
    return;
  }
  if (!IsPoolName(name)) {
    Error(Pos(*pool), where + ": pool name " + Quote(name) +
                          " must be 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit");
    return;
  }
  s->pool = name;
  s->pool_pos = Pos(*pool);
  int64_t n = 1;
  if (pool_slots && Int(*pool_slots, "pool_slots", 1, 10000, &n)) s->pool_slots = static_cast<int>(n);
}

}  // namespace internal

}  // namespace sluice::spec
