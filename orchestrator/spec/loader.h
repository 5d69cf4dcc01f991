// The spec loader's class, internal to spec/ (the module's interface is
// ParsePipeline and LoadPipeline in spec/pipeline.h). YAML -> Pipeline: every
// problem, from malformed YAML to a cycle, becomes a FILE:LINE:COL
// diagnostic, and the loader keeps going after an error where it can, so one
// run of `sluice validate` shows every problem. Its methods are split by
// what they read: loader.cc the file, params, env, secrets, triggers and
// defaults; loader_steps.cc the steps and the checks across them
// (references, cycles).
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "spec/pipeline.h"
#include "spec/yaml_tree.h"
#include "util/strings.h"

namespace sluice::spec::internal {

inline const std::vector<std::string> kTopKeys = {"name", "description", "params", "env", "secrets", "defaults", "steps", "on",
                                                  "max_active_runs", "timeout", "finally", "templates",
                                                  "outputs", "concurrency"};
inline const std::vector<std::string> kStepKeys = {"needs", "run", "uses", "with", "isolation", "env", "workdir", "timeout",
                                                   "retry", "resources", "if", "foreach", "continue_on_error", "outputs", "cache", "register",
                                                   "executor", "slurm", "secrets", "deps", "fail_fast", "max_parallel",
                                                   "pool", "pool_slots", "service"};
inline const std::vector<std::string> kServiceKeys = {"ready", "timeout"};
inline const std::vector<std::string> kReadyKinds = {"tcp", "http", "run"};
inline const std::vector<std::string> kParamKeys = {"type", "default", "min", "max", "enum", "description"};
inline const std::vector<std::string> kDefaultsKeys = {"timeout", "retry", "cache", "executor", "slurm"};
inline const std::vector<std::string> kExecutors = {"local", "slurm"};
inline const std::vector<std::string> kSlurmKeys = {"partition", "account", "qos", "time", "extra"};
inline const std::vector<std::string> kRetryKeys = {"limit", "backoff", "on"};
// What `retry.on`'s expression sees of the failed attempt (besides params and env).
inline const std::vector<std::string> kAttemptFields = {"exit_code", "signal", "timed_out", "reason"};
// What a finally step's expressions see of the run.
inline const std::vector<std::string> kRunFields = {"state", "failed_steps"};
inline const std::vector<std::string> kRunTimes = {"scheduled_time", "interval_start", "interval_end"};
inline const std::vector<std::string> kBackoffKeys = {"initial", "factor", "max", "jitter"};
inline const std::vector<std::string> kResourceKeys = {"cpu", "memory", "gpu"};
inline const std::vector<std::string> kParamTypes = {"int", "float", "string", "bool"};
inline const std::vector<std::string> kTemplateKeys = {"description", "params", "steps", "outputs", "uses"};
inline const std::vector<std::string> kCallKeys = {"call", "with", "needs", "if", "foreach"};
inline constexpr size_t kMaxErrors = 50;
// How deep template calls may nest: a call in `steps:` is depth 1.
inline constexpr int kMaxTemplateDepth = 8;

// One entry of `templates:` (specs/pipeline.md, "Templates"). Its steps stay
// YAML until a call expands them, once per call.
struct TemplateDef {
  std::string name;
  std::string file;                    // where its steps are written: the spec, or its uses: file
  SourcePos pos;                       // of its key in `templates:`
  std::vector<ParamSpec> params;
  const YamlNode* steps = nullptr;     // the `steps:` map
  std::vector<std::pair<std::string, Template>> outputs;   // name -> ${{ steps.X.outputs.Y }}
  YamlNode tree;                       // a uses: file's own tree, which `steps` points into
  bool read = false;                   // the uses: file has been read (once, whatever it held)
  std::string uses;                    // the file, as written
  SourcePos uses_pos;
};

// Where names in an expression resolve: the top level, or the body of one
// call of a template. The steps of a call are CALL.STEP in the pipeline.
struct Scope {
  std::string prefix;                  // "" at the top level; "train." for the call train
  TemplateDef* def = nullptr;          // null at the top level
  size_t parent = 0;                   // the scope the call is written in
  std::string call;                    // the call's full id ("train", "outer.train")
  std::string local_call;              // its id where it is written ("train")
  const std::string* call_file = nullptr;   // the file the call is written in
  SourcePos call_pos;
  int depth = 0;                       // 0 at the top level
  std::vector<std::string> chain;      // template names from the top, for messages
  // params.X inside the template: the value from with: (a literal) or the
  // caller's expression, in the caller's scope.
  std::map<std::string, std::shared_ptr<const Expr>> args;
  std::vector<std::pair<std::string, Template>> arg_templates;   // with: expressions, checked in the caller's scope
  std::vector<std::string> needs;      // the call's needs as written, in the caller's scope
  std::vector<SourcePos> needs_pos;
  std::optional<Template> if_condition;   // the call's if, in the caller's scope
  // The call's foreach (a step holding only it), in the caller's scope; and
  // the scope of the call with foreach this one is in (itself, or an
  // enclosing call's), 0 if none.
  std::shared_ptr<Step> foreach;
  size_t chain_root = 0;
  bool is_finally = false;             // the call is a step of finally: (its with: and if read as one)
  std::vector<std::string> locals;     // the template's step ids (calls included), in file order
  std::vector<bool> local_is_call;
  std::optional<std::vector<std::string>> resolved_needs;   // the call's needs as step ids, once computed
};

class Loader {
 public:
  Loader(const std::string& file, const std::string& text, bool read_files = true)
      : file_(file), text_(text), read_files_(read_files) {}

  Result<Pipeline> Load();

 private:
  static SourcePos Pos(const YamlNode& n) { return n.pos; }
  void Error(SourcePos pos, const std::string& message);
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
    if (big) seen.reserve(n.entries.size());
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

  // `what` names the value in messages; it is made into a string only for
  // one, since these run for every value of a spec.
  // True if `n` is a scalar; else reports that `what` must be a single value.
  bool Single(const YamlNode& n, std::string_view what);
  bool Scalar(const YamlNode& n, std::string_view what, std::string* out);
  bool Bool(const YamlNode& n, std::string_view what, bool* out);
  bool Number(const YamlNode& n, std::string_view what, double* out);
  bool Int(const YamlNode& n, std::string_view what, int64_t lo, int64_t hi, int64_t* out);
  bool Duration(const YamlNode& n, std::string_view what, Millis* out);
  // A timeout of 0 would kill the step at once: refused, not a silent kill.
  bool Timeout(const YamlNode& n, Millis* out);
  // cache: true | false | {max_age: 7d}. A map turns the cache on; `true`
  // keeps the max_age it had (from defaults), `false` turns it off.
  void Cache(const YamlNode& n, bool* on, std::optional<Millis>* max_age);

  // deps: a path or a list of paths and globs under the spec's folder. They
  // are literal: an expression would make the files unknown until run time.
  void LoadDeps(const YamlNode& n, Step* s);
  static std::string DepProblem(const std::string& dep);

  bool Tmpl(const YamlNode& n, std::string_view what, Template* out);

  // Takes the tree apart as it goes: each step's body is freed once the step
  // is loaded, so the tree and the pipeline are never both whole in memory
  // (a 100,000-step spec's tree is about as big as its pipeline).
  void LoadRoot(YamlNode& root);

  // A `params:`-shaped mapping (name -> {type, default, min, max, enum,
  // description}) into `out`; `where` names it in errors. Pipeline params,
  // a template's params and the values a sluice/approval step asks for are
  // read by this one.
  void LoadParamSpecs(const YamlNode& n, const std::string& where, std::vector<ParamSpec>* out);
  // The `with:` of a sluice/approval step: its values are typed like params,
  // become the step's outputs, and have defaults where on_timeout approves.
  void LoadApproval(Step* s);

  // templates: {name: {params, steps, outputs} | {uses: ./file.yaml}} (loader_templates.cc).
  void LoadTemplates(const YamlNode& n);
  void LoadTemplateBody(const YamlNode& n, TemplateDef* def, bool from_file);
  // Reads a uses: template file, once.
  bool ReadTemplateFile(TemplateDef* def);
  // Adds the steps of the call `local` in scope `scope` (its body `n`), and
  // of the calls inside them, to p_.steps; `bodies` gets each step's YAML.
  void ExpandCall(const std::string& local, const YamlNode& key, const YamlNode& n, size_t scope,
                  std::vector<const YamlNode*>* bodies);
  // Adds the entries of a steps map to p_.steps (calls expanded), flagged
  // is_finally while adding_finally_.
  void AddSteps(const YamlNode& n, size_t scope, std::vector<const YamlNode*>* bodies);
  // with: against the template's params; `with` is null when the call has none.
  void CheckCallArgs(const YamlNode* with, Scope* inner);
  // Marks each step of a call with foreach (Step::chain, item_needs), once
  // needs are wired; reports a foreach or an approval inside one.
  void MarkChains();
  // A step of a call with foreach (`root` its scope), once rewritten: its
  // `if` is decided per item, and a first step takes the call's foreach.
  void ForEachOfCall(Step* s, size_t root);
  // Replaces each step's local needs by step ids (a call by its last steps)
  // and gives the first steps of a call what the call needs.
  void WireNeeds();
  std::vector<std::string> CallLeaves(const std::string& call);
  const std::vector<std::string>& CallNeeds(size_t scope);
  // The step id and output a template output stands for (through nested calls).
  std::optional<std::pair<std::string, std::string>> ResolveCallOutput(const std::string& call, const std::string& output,
                                                                       std::string* problem);
  // Expressions of template steps, in the pipeline's terms: params.X becomes
  // the call's value, steps.X the step id, a call's output its step's.
  void RewriteTemplates();
  std::shared_ptr<const Expr> Rewrite(const Expr& e, size_t scope);
  void RewriteTemplate(Template* t, size_t scope);
  size_t ScopeOfStep(size_t i) const { return i < step_scope_.size() ? step_scope_[i] : 0; }
  const std::string& FileOf(size_t scope) const { return scopes_[scope].def ? scopes_[scope].def->file : file_; }

  void LoadRetry(const YamlNode& n, RetryPolicy* r);
  // retry.on: a list of exit statuses, or a condition over the failed attempt.
  void LoadRetryOn(const YamlNode& n, RetryPolicy* r);
  // A condition: `${{ expr }}`, or a bare expression (`success() && x`).
  bool Condition(const YamlNode& v, std::string_view what, Template* out);

  // on.webhook: {secret_env: NAME, params: {name: "${{ event.x }}"}}. The
  // param names are checked once all params are known (CheckWebhook).
  void LoadWebhook(const YamlNode& v);

  void CheckWebhook();

  // outputs: {name: "${{ ... }}"}: the run's outputs (loader_steps.cc).
  // Loaded once every step is, since they may read any step.
  void LoadRunOutputs(const YamlNode& n);

  // on: {schedule: [{cron, timezone, catchup}], webhook: {...}}
  void LoadTriggers(const YamlNode& n);
  // `concurrency:` (loader_concurrency.cc).
  void LoadConcurrency(const YamlNode& n);
  // A step's `pool:` and `pool_slots:` (loader_concurrency.cc); `pool_slots`
  // may be null, `pool` too (then `pool_slots` is an error).
  // `service:` of step `s` (loader_service.cc): true, or {ready, timeout}.
  void LoadService(const YamlNode& key, const YamlNode& v, Step* s);
  // What a service step may not be: a foreach or finally step, cached
  // (`cache` its own cache key, or null), a plugin step, on Slurm.
  void CheckServiceStep(const Step& s, const YamlNode* cache);
  // A service no step needs. After every step is loaded.
  void CheckServices();
  void LoadPool(const YamlNode* pool, const YamlNode* pool_slots, const std::string& where, Step* s);

  void LoadDefaults(const YamlNode& n);

  // `secrets: [NAME, ...]`: variables of sluice's environment a step receives.
  void LoadSecrets(const YamlNode& n, const std::string& where, std::vector<std::string>* out);

  std::vector<std::pair<std::string, Template>> LoadEnv(const YamlNode& n, const std::string& where);

  // `steps:` and `finally:` (null when absent): one list of steps, the
  // finally ones last, flagged.
  void LoadSteps(YamlNode& n, YamlNode* finally_node);

  bool Executor(const YamlNode& v, std::string* out);

  // slurm: {partition, account, qos, time, extra: [...]}; keys given replace those in *o.
  void LoadSlurm(const YamlNode& n, SlurmOptions* o);

  void LoadStep(const YamlNode& n, Step* s);

  // register: {name: fashion, output: model} - output may be left out when
  // the step declares exactly one output of kind model.
  void LoadRegister(const YamlNode& v, Step* s);

  void LoadCondition(const YamlNode& v, Step* s);

  // foreach: a list, one expression giving a list, or a matrix.
  void LoadForeach(const YamlNode& v, Step* s);
  // foreach: {matrix: {key: [values] | ${{ list }}}, include: [...], exclude: [...]}
  void LoadMatrix(const YamlNode& v, Step* s);

  // Checks names in a template's expressions. `step` is null for the
  // pipeline's env, which sees params and env only.
  void CheckRefs(const Template& t, const Step* step, const std::string& where, bool item_allowed = true);

  // Reports a call of an unknown function or with the wrong number of arguments.
  void CheckCall(SourcePos pos, const Expr& call);

  std::vector<std::string> StepIds() const;
  std::vector<std::string> ParamNames() const;

  void CheckStepRefs(Step& s);

  // Expressions in `with:` leaves are checked like those of `run`.
  void CheckWithRefs(const YamlNode& n, const Step& s);

  // Depth-first search with an explicit stack: specs with long chains of
  // steps must not overflow the call stack.
  // REQUIRES: CheckStepRefs ran for every step, in order.
  void FindCycles();

  const std::string& file_;
  const std::string& text_;
  const bool read_files_;                  // templates' uses: files may be read
  const std::string* cur_file_ = &file_;   // the file messages point into
  size_t cur_scope_ = 0;                   // where names in expressions resolve
  std::map<std::string, TemplateDef> templates_;
  std::deque<Scope> scopes_{Scope{}};      // [0]: the top level
  std::vector<size_t> step_scope_;         // p_.steps[i]'s scope
  std::map<std::string, size_t> calls_;    // a call's full id -> the scope of its body
  Pipeline p_;
  std::vector<std::string> errors_;
  // Every step's needs as positions in p_.steps, step after step (npos for
  // an unknown one): looked up once, by CheckStepRefs.
  std::vector<size_t> need_index_;
  std::optional<Millis> default_timeout_;
  RetryPolicy default_retry_;
  bool default_cache_ = false;
  // Set while the names of a `retry.on` condition are checked: `attempt` is defined there only.
  bool reading_attempt_ = false;
  // Set while the names of a run output are checked: it reads any step without needing it.
  bool reading_run_outputs_ = false;
  bool adding_finally_ = false;  // AddSteps is adding the steps of finally:
  std::optional<Millis> default_cache_max_age_;
  std::string default_executor_ = "local";
  HeapOptional<SlurmOptions> default_slurm_;
};

}  // namespace sluice::spec::internal
