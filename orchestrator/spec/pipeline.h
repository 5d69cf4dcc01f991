// Pipeline: the typed form of a pipeline.yaml, as the loader produced it.
// It owns its Steps; nothing in it changes after loading, so a Pipeline may
// be read from any thread. The language itself is described in
// specs/pipeline.md and specs/pipeline.schema.json.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/source.h"
#include "spec/template.h"
#include "spec/value.h"
#include "spec/yaml_tree.h"
#include "schedule/cron.h"
#include "schedule/timezone.h"
#include "util/duration.h"
#include "util/heap_optional.h"

namespace sluice::spec {

struct ParamSpec {
  enum class Type { kInt, kFloat, kString, kBool };
  std::string name;
  Type type = Type::kString;
  std::optional<Value> default_value;   // none: the param is required
  std::optional<double> min, max;
  std::vector<Value> allowed;           // enum; empty: anything of the type
  std::string description;
  SourcePos pos;
};
const char* ParamTypeName(ParamSpec::Type t);

struct Backoff {
  Millis initial{1000};
  double factor = 2;
  Millis max{30000};
  bool jitter = false;   // multiply each delay by a uniform factor in [0.5, 1]
};

struct RetryPolicy {
  int limit = 0;         // retries after the first attempt
  Backoff backoff;
  // `on`: which failures are retried. Neither set: every failure is. A
  // failure that does not match is final at once.
  std::vector<int> on_exit_codes;        // on: [137, 143] - the exit status as a shell's $? (128+N for signal N)
  HeapOptional<Template> on_condition;   // on: ${{ attempt.exit_code == 137 || attempt.timed_out }}
};

// Where a Slurm step goes: `slurm:` in defaults or on a step (a step's
// keys replace the defaults' one by one).
struct SlurmOptions {
  std::string partition, account, qos;
  std::string time;                  // Slurm's own format: 30, 2:00:00, 1-00:00:00, or a duration (2h)
  std::vector<std::string> extra;    // more sbatch arguments, each one argv element
};

// One entry of a step's `deps:`: a path or glob relative to the spec's
// folder, as written (the loader refused absolute ones and ones that leave
// the folder).
struct Dep {
  std::string pattern;
  SourcePos pos;
};
// Why `pattern` cannot be a dep (or a hashFiles() glob): "is empty", "is an
// absolute path; ...", "is outside the spec's folder; ..."; "" when it can.
std::string DepPatternProblem(const std::string& pattern);

// The most items one foreach step may have: its list, the list its
// expression gives, or its matrix's combinations. Each item is a unit the
// engine tracks and a row in the store.
inline constexpr size_t kMaxForeachItems = 10000;

// `foreach: {matrix: {k: [...], ...}, include: [...], exclude: [...]}`:
// the cross product of the keys' values (the first key outermost, as
// written), with GitHub Actions' exclude and include rules
// (specs/pipeline.md, "foreach and matrix"). Each combination is a map.
struct Matrix {
  struct Axis {
    std::string key;
    List values;                    // a literal list
    std::optional<Template> expr;   // or one expression giving a list
    SourcePos pos;
  };
  std::vector<Axis> axes;
  std::vector<Map> include, exclude;
  SourcePos pos;
};

// The combinations of `m`, its expressions evaluated with `ctx`. Errors: an
// expression that fails or gives no list, more than kMaxForeachItems
// combinations.
Result<List> ExpandMatrix(const Matrix& m, const EvalContext& ctx);

// A YAML value without expressions as a Value: maps and lists as they are,
// plain scalars typed as YAML reads them (3, 0.5, true), quoted ones strings.
Value YamlValue(const YamlNode& n);

// `service:` (specs/pipeline.md "Services"): a step that stays up while the
// steps that need it run, then is stopped. It becomes ready when its check
// passes, on the loopback port Sluice picked for the attempt.
struct ServiceSpec {
  enum class Ready { kTcp, kHttp, kRun } ready = Ready::kTcp;
  std::string http_path = "/";           // ready: {http: PATH}: a GET answered 2xx or 3xx
  std::vector<std::string> run;          // ready: {run: [argv]}: exits 0 (literal argv)
  Millis timeout{30000};                 // how long it may take to become ready
  SourcePos pos;                         // of the `service` key
};
// The longest a service may take to become ready.
inline constexpr Millis kMaxServiceReadyTimeout{3600000};
// How often a service's readiness is checked until it passes.
inline constexpr Millis kServiceProbeInterval{200};

// The keys of `register:`: the model registry name and which declared model
// output is registered under it.
struct ModelRegistration {
  std::string name;
  std::string output;
};

// One step as loaded. A 100,000-step spec holds 100,000 of these at once, so
// what few steps have (Slurm's options, a registration, a service) is on the
// heap, and the flags and small numbers are together, without padding
// between them.
struct Step {
  std::string id;
  SourcePos pos;                         // of the step's key
  SourcePos uses_pos;
  SourcePos pool_pos;
  enum class Isolation { kProcess, kInProcess } isolation = Isolation::kProcess;
  int cpu = 1;
  int gpu = 0;                           // resources.gpu: Slurm's --gres=gpu:N
  int max_parallel = 0;                  // at most this many items run at once; 0: no limit
  int pool_slots = 1;
  bool shell = false;                    // run: "line" (sh -c) vs run: [argv]
  bool if_checks_status = false;         // the if calls always(), success() or failure(); else success() && if
  bool has_foreach = false;
  bool if_reads_item = false;            // a foreach step's `if` reads item: decided per item
  bool fail_fast = false;                // once an item fails, items not started are cancelled
  bool continue_on_error = false;
  // A step of the top-level `finally:` map: it runs once every step of
  // `steps:` is final, whatever the run came to, and may need only other
  // finally steps.
  bool is_finally = false;
  bool cache = false;                    // reuse an earlier attempt with the same fingerprint
  std::vector<std::string> needs;
  std::vector<SourcePos> needs_pos;
  std::vector<Template> run;             // one template for a shell line
  std::string uses;                      // <plugin>/<step type>, for a plugin step
  HeapOptional<YamlNode> with;           // the plugin step's params, as written
  std::vector<std::pair<std::string, Template>> env;
  std::vector<std::string> secrets;      // variables of sluice's environment it receives (the pipeline's too)
  HeapOptional<Template> workdir;
  std::optional<Millis> timeout;
  RetryPolicy retry;
  std::string memory;                    // resources.memory: 512M, 16G (Slurm's --mem); empty: not set
  std::string executor = "local";        // local or slurm
  HeapOptional<SlurmOptions> slurm;      // none: no slurm: keys in defaults or on the step
  HeapOptional<Template> if_condition;   // none: success()
  std::vector<Value> foreach_items;      // a literal list
  HeapOptional<Template> foreach_expr;   // or one expression giving a list
  HeapOptional<Matrix> matrix;           // or a matrix
  // A step of a template called with foreach (specs/pipeline.md, "A foreach
  // of a template"): `chain` is that call's id and every step of it runs
  // once per item of the call's list. `item_needs` are its needs inside the
  // same call: its item k waits for their item k alone, and reads their
  // item k's outputs. Its first steps (no item_needs) hold the call's list.
  std::string chain;
  std::vector<std::string> item_needs;
  // `pool:` a named pool of slots shared by every run (`sluice pool set`):
  // each attempt leases `pool_slots` of them while it runs. Empty: none.
  std::string pool;
  // Declared outputs: files or folders the step writes under
  // $SLUICE_OUTPUTS_DIR/<name>, published as artifacts (kinds file, dir,
  // dataset, model, metrics), and values it sets in $SLUICE_OUTPUT (kind
  // value). A run step that declares outputs declares all it has.
  std::vector<std::pair<std::string, std::string>> outputs;
  std::optional<Millis> cache_max_age;   // cache: {max_age: 7d}: an older result is not reused
  std::vector<Dep> deps;                 // files the step reads, hashed into its fingerprint
  HeapOptional<ModelRegistration> registration;   // `register:`
  // uses: sluice/approval: the values its approver gives (with.values),
  // typed like params; each is also an output of the step.
  std::vector<ParamSpec> approval_values;
  HeapOptional<ServiceSpec> service;     // `service:`: it serves its dependants (see ServiceSpec)
};

// The built-in step type that waits for a person's decision (specs/pipeline.md "Manual approval").
inline constexpr const char* kApprovalType = "sluice/approval";

// The kinds a declared output may have.
const std::vector<std::string>& OutputKinds();

// A `steps.<producer>.outputs.<name>` in a reader step's expression.
struct OutputRef {
  std::string reader;
  std::string producer;
  std::string name;
  SourcePos pos;
  std::string file;   // the template file the reader is written in; empty: the spec
  bool run_output = false;   // the reader is a run output (`reader` its name), not a step
};

// The names of the outputs `s` declares in the spec (and `registered`, with register:).
std::vector<std::string> DeclaredOutputs(const Step& s);

// An error for each ref of `refs` to `producer` whose name is not in `known`
// (the outputs the producer declares), with a "did you mean". It is located
// in `file`, or in the ref's own file when it has one (a template file).
void CheckOutputRefs(const std::string& file, const std::vector<OutputRef>& refs, const std::string& producer,
                     const std::vector<std::string>& known, std::vector<std::string>* errors);

// One entry of `on.schedule`.
struct Schedule {
  schedule::Cron cron;
  std::string timezone = "UTC";   // an IANA name
  schedule::TimeZone zone;
  // Fire times missed while no server ran: kLatest (catchup: true, the
  // default) starts one run, for the newest; kEvery (catchup: all) one run
  // per missed time, at most kMaxCatchupRuns; kNone (false) none.
  enum class Catchup { kNone, kLatest, kEvery } catchup = Catchup::kLatest;
  // A fire while a run of the pipeline is active (queued, pending or
  // running): kAllow starts another; kForbid skips the fire; kReplace
  // cancels the active runs and starts the new one (Argo's concurrencyPolicy).
  enum class Overlap { kAllow, kForbid, kReplace } overlap = Overlap::kAllow;
  static constexpr int kMaxCatchupRuns = 1000;
  SourcePos pos;
};
// `catchup` as the spec writes it: true, false or "all".
nlohmann::json CatchupJson(Schedule::Catchup c);
// `overlap` as the spec writes it: allow, forbid or replace.
const char* OverlapName(Schedule::Overlap o);

// `on.webhook`: a signed POST /hooks/<pipeline> starts a run. Each of
// `params` is a template over `event`, the delivery's JSON payload.
struct Webhook {
  std::string secret_env;   // the environment variable holding the HMAC secret
  std::vector<std::string> events;  // event names that start a run (X-GitHub-Event); empty: every one but ping
  std::vector<std::pair<std::string, Template>> params;
  SourcePos pos;
};

// One entry of the top-level `outputs:`: a value of the whole run, rendered
// once every step (finally steps included) is final. It may read params,
// env, run.scheduled_time and every step, without needing it.
struct RunOutput {
  std::string name;
  Template value;
  SourcePos pos;   // of its key
};
// `concurrency:`: runs of the pipeline whose group renders to the same text
// share it: at most one runs and one waits (GitHub Actions' concurrency).
struct Concurrency {
  Template group;                   // over params.*, rendered when a run is created
  bool cancel_in_progress = false;  // a new run cancels the one running in its group
};
// The longest a rendered concurrency group may be, in bytes.
inline constexpr size_t kMaxGroupBytes = 256;

struct Pipeline {
  std::string file;                      // as given on the command line
  std::string text;                      // the file's bytes, stored with each run
  std::string name;
  std::string description;
  SourcePos params_pos;                  // of the `params` key (or `name` if absent)
  std::vector<ParamSpec> params;
  std::vector<std::pair<std::string, Template>> env;
  std::vector<std::string> secrets;      // `secrets:` for every step
  std::vector<Step> steps;               // in file order: those of `steps:`, then those of `finally:`
  std::optional<Millis> timeout;         // `timeout:` of the whole run, from its first start
  std::vector<Schedule> schedules;       // on.schedule
  std::optional<Webhook> webhook;        // on.webhook
  int max_active_runs = 0;               // runs `sluice serve` drives at once (0: only its global cap)
  std::vector<RunOutput> outputs;        // `outputs:` of the run, in file order
  std::optional<Concurrency> concurrency;
  std::vector<OutputRef> output_refs;    // every steps.X.outputs.Y read, in file order
  std::unordered_map<std::string, size_t> index;   // step id -> position in steps

  const Step* FindStep(const std::string& id) const {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &steps[it->second];
  }
  const ParamSpec* FindParam(const std::string& name) const {
    for (const ParamSpec& p : params)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// True if the variable `name` of sluice's environment is a secret for this
// pipeline: it looks like one (util/secrets.h), a `secrets:` list names it,
// it holds the webhook's HMAC secret, or it is SLUICE_OPENLINEAGE_API_KEY.
// Steps receive a secret only through `secrets:`; `${{ env.X }}` never reads one.
bool IsSecretName(const Pipeline& p, std::string_view name);

// Resolved param values, by name.
using ParamValues = std::map<std::string, Value>;

// Loads and checks a spec. On failure the Status (InvalidSpec or IoError) holds
// one "FILE:LINE:COL: message" line per problem found.
Result<Pipeline> LoadPipeline(const std::string& path);
// The same from text in memory; `file` names it in messages, and its folder
// is where templates' `uses:` files are read from. A spec from elsewhere (the
// API's validate, whose `file` the caller names) reads no file: such a uses:
// is an error.
Result<Pipeline> ParsePipeline(const std::string& file, const std::string& text, bool read_template_files = true);

// Applies `-p key=value` overrides to the defaults and checks every value
// against its param's type, range and enum. Errors name the param's place.
// `via` says where the overrides came from, for messages: "with -p" (the
// CLI), "in the request" (the API), "by on.webhook.params".
Result<ParamValues> ResolveParams(const Pipeline& p, const std::vector<std::pair<std::string, std::string>>& overrides,
                                  const std::string& via = "with -p");

// The run's concurrency group: `concurrency.group` rendered with `params`;
// "" when the pipeline has none. An InvalidSpec error located at the group
// when it renders to nothing, to more than kMaxGroupBytes, or fails.
Result<std::string> RenderConcurrencyGroup(const Pipeline& p, const ParamValues& params);

// A pool's name as `pool:` and `sluice pool set` take it: 1 to 64 letters,
// digits, '_', '-' or '.', starting with a letter or digit.
bool IsValidPoolName(const std::string& name);

// {"epochs": 3, ...}: how a run's params are stored and shown.
nlohmann::json ParamsJson(const ParamValues& values);

// Converts the text of a param value to the param's type ("3" -> int 3).
// The error says what was expected: "param 'epochs': 'abc' is not an int".
Result<Value> CoerceParam(const ParamSpec& ps, const std::string& text);
// CoerceParam, then the min/max and enum checks. `what` prefixes the value
// in messages ("default ").
Result<Value> CheckParam(const ParamSpec& ps, const std::string& text, const std::string& what = "");

// The call of kTemplateParamCheck (expr.h) around `value`, a template
// param's value known only when the step runs; `where` names the call in
// its error ("call 'train' of template 'fit'").
std::unique_ptr<Expr> TemplateParamCheck(std::unique_ptr<Expr> value, const ParamSpec& ps, const std::string& where);
// A param as JSON: {name, type, description, default (null if none),
// required, min, max, enum}. The API's pipeline params, and the values a
// waiting approval asks for, are given this way (specs/api.yaml ParamSpec).
nlohmann::json ParamSpecJson(const ParamSpec& ps);
// The inverse, for a param named `name` written as JSON: ParamSpecJson's
// shape, or a `params:` entry of a plugin step's `with:` as RenderWith gives
// it ({type: int, default: 2, min: 1}). Checked as the loader checks a param.
Result<ParamSpec> ParamSpecFromJson(const std::string& name, const nlohmann::json& j);
// The text of a JSON scalar as a param value is written ("abc", 3, 2.5,
// true); nullopt for null, arrays and objects.
std::optional<std::string> ParamText(const nlohmann::json& j);
// `given` (name -> text) against `specs`: each checked by CheckParam, an
// unknown name refused, a left-out one given its default (or an error if it
// has none). Errors are unlocated, one per line; `via` says how values are
// given ("with -v", for "give it with -v NAME=VALUE").
Result<ParamValues> ResolveValues(const std::vector<ParamSpec>& specs,
                                  const std::vector<std::pair<std::string, std::string>>& given, const std::string& via);

// The plugin and step type of `uses: plugin/type`.
std::pair<std::string, std::string> SplitUses(const std::string& uses);

// A plugin step's `with:` as JSON: expressions evaluated (one `${{ }}` keeps
// its value's type), plain scalars typed as YAML reads them (3 is a number,
// true a bool), quoted ones strings.
Result<nlohmann::json> RenderWith(const YamlNode& with, const EvalContext& ctx);

// Every step id that `id` depends on, directly or not.
std::vector<std::string> Ancestors(const Pipeline& p, const std::string& id);

}  // namespace sluice::spec
