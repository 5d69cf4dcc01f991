// sluice: the command line. Parses arguments and hands each subcommand to
// cli/commands.h.
#include <csignal>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "deploy/step_types.h"
#include "exec/builtin.h"
#include "exec/slurm_executor.h"
#include "exec/plugin_runner.h"
#include "runs/approval.h"
#include "steps/approval.h"

namespace {

// "key=value" -> pair; CLI11 checks the shape.
sluice::cli::Overrides SplitParams(const std::vector<std::string>& raw) {
  sluice::cli::Overrides out;
  for (const std::string& kv : raw) {
    size_t eq = kv.find('=');
    out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice::cli;
  // `sluice run | head` must not kill the run halfway: writes to a closed
  // pipe fail instead. Steps get the default disposition back.
  std::signal(SIGPIPE, SIG_IGN);
  // deploy/* drive the store and the gateway and only wait: no local slot.
  sluice::exec::RegisterBuiltinPlugin(
      {sluice::deploy::DeployPlugin(), {"canary", "blue-green", "rollback", "shadow", "ab-test"}});
  // sluice/approval waits on the store's approvals table.
  static sluice::runs::StoreApprovalDesk approval_desk;
  sluice::steps::SetApprovalDesk(&approval_desk);
  CLI::App app{"sluice: ML pipelines from YAML specs, with state in one SQLite file"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sluice " SLUICE_VERSION);

  auto param_check = CLI::Validator(
      [](std::string& s) { return s.find('=') == std::string::npos || s[0] == '=' ? "expected key=value" : ""; },
      "KEY=VALUE");
  int default_jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::vector<std::string> files;
  auto* validate = app.add_subcommand("validate", "Check specs; print FILE:LINE:COL errors (exit 2)");
  validate->add_option("files", files, "pipeline.yaml files")->required();

  std::string file, format = "text", grace = "10s", run_id, step, from;
  std::vector<std::string> raw_params;
  int jobs = default_jobs, limit = 20, attempt = 0;
  bool follow = false, no_cache = false;

  auto* plan = app.add_subcommand("plan", "Show the resolved DAG before running");
  plan->add_option("file", file, "pipeline.yaml")->required();
  plan->add_option("-p,--param", raw_params, "override a param")->check(param_check);
  plan->add_option("--format", format, "text, dot or json")->check(CLI::IsMember({"text", "dot", "json"}));

  auto* run = app.add_subcommand("run", "Run a pipeline");
  run->add_option("file", file, "pipeline.yaml")->required();
  run->add_option("-p,--param", raw_params, "override a param")->check(param_check);
  run->add_option("-j,--jobs", jobs, "slots for running steps (default: cores)")->check(CLI::Range(1, 4096));
  run->add_option("--grace", grace, "SIGTERM to SIGKILL delay for timeouts and cancel");
  run->add_flag("--no-cache", no_cache, "run every step, even those with cache: true");

  auto* resume = app.add_subcommand("resume", "Finish a run whose sluice process died");
  resume->add_option("run", run_id, "run id, or latest")->required();
  resume->add_option("--grace", grace, "SIGTERM to SIGKILL delay");
  resume->add_flag("--no-cache", no_cache, "run every step, even those with cache: true");

  bool reload = false;
  auto* retry = app.add_subcommand("retry", "Run a finished run's failed (or named) steps and their dependants again");
  retry->add_option("run", run_id, "run id, or latest")->required();
  retry->add_option("--from", from, "run this step and everything after it again, fresh (not from the cache)");
  retry->add_option("--grace", grace, "SIGTERM to SIGKILL delay");
  retry->add_flag("--no-cache", no_cache, "run every step, even those with cache: true");
  retry->add_flag("--reload", reload,
                  "use the spec file as it is now (checked first) instead of the spec stored with the run; "
                  "steps whose definition changed run again too");

  auto* cancel = app.add_subcommand("cancel", "Cancel a run");
  cancel->add_option("run", run_id, "run id, or latest")->required();

  std::vector<std::string> raw_values;
  std::string comment;
  auto* approve = app.add_subcommand("approve", "Approve a step waiting for approval (sluice/approval)");
  approve->add_option("run", run_id, "run id, or latest")->required();
  approve->add_option("step", step, "the waiting step's id")->required();
  approve->add_option("-v,--value", raw_values, "a value the step asks for")->check(param_check);
  approve->add_option("--comment", comment, "why, recorded with the decision");
  auto* reject = app.add_subcommand("reject", "Reject a step waiting for approval; the step fails");
  reject->add_option("run", run_id, "run id, or latest")->required();
  reject->add_option("step", step, "the waiting step's id")->required();
  reject->add_option("--reason", comment, "why, recorded with the decision");

  std::string pipeline_filter, state_filter;
  auto* runs = app.add_subcommand("runs", "List runs, newest first");
  runs->add_option("-n,--limit", limit, "how many")->check(CLI::Range(1, 1000000));
  runs->add_option("--pipeline", pipeline_filter, "only this pipeline's runs");
  runs->add_option("--state", state_filter, "only runs in this state (an interrupted run is running)")
      ->check(CLI::IsMember({"queued", "pending", "running", "succeeded", "failed", "cancelled"}));
  runs->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* show = app.add_subcommand("show", "Show a run's steps, attempts and outputs");
  show->add_option("run", run_id, "run id, or latest")->required();
  show->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* logs = app.add_subcommand("logs", "Print an attempt's output");
  logs->add_option("run", run_id, "run id, or latest")->required();
  logs->add_option("step", step, "step id, or step[item] for a foreach item")->required();
  logs->add_option("-a,--attempt", attempt, "attempt number (default: the latest)");
  logs->add_flag("-f,--follow", follow, "keep printing until the attempt ends");

  std::string plugin_dir = ".";
  auto* plugins = app.add_subcommand("plugins", "List the step plugins found, their versions, step types and params");
  plugins->add_option("--dir", plugin_dir, "a spec's folder: also look in its plugins/ (default: here)");
  plugins->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  std::string plugin_file;
  auto* plugins_install = plugins->add_subcommand("install", "Check a built plugin library and copy it into a plugins folder");
  plugins_install->add_option("library", plugin_file, "lib<name>.so")->required();
  plugins_install->add_option("--dir", plugin_dir, "the folder whose plugins/ gets it: a spec's folder (default: here)");
  auto* plugins_describe = plugins->add_subcommand(
      "describe", "Write LIB.json beside a plugin library: its step types, read without loading it");
  plugins_describe->add_option("library", plugin_file, "lib<name>.so")->required();

  std::string target;
  bool downstream = false, upstream = false;
  auto* lineage = app.add_subcommand("lineage", "What made an artifact (--upstream) or what it fed (--downstream)");
  lineage->add_option("target", target, "an artifact (hash or .sluice/artifacts/ path), RUN/STEP or service:NAME/VERSION")->required();
  auto* up_flag = lineage->add_flag("--upstream", upstream, "inputs, their producers and theirs (the default)");
  lineage->add_flag("--downstream", downstream, "consumers, their outputs and theirs")->excludes(up_flag);
  lineage->add_option("--format", format, "table, json or dot")->check(CLI::IsMember({"text", "table", "json", "dot"}));

  std::string model_name, alias, model_ref, artifact;
  int model_version = 0;
  bool all_versions = false, remove_alias = false;
  auto* models = app.add_subcommand("models", "Registered models: versions, aliases, producing runs and metrics");
  models->add_option("name", model_name, "only this model");
  models->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  models->add_flag("--all", all_versions, "archived versions too");
  auto* promote = models->add_subcommand("promote", "Point an alias (staging, production, ...) at a version, or --remove it");
  promote->add_option("name", model_name, "model name")->required();
  promote->add_option("version", model_version, "version number (with --remove: only if the alias points there)")
      ->check(CLI::PositiveNumber);
  promote->add_option("--alias", alias, "the alias")->required();
  promote->add_flag("--remove", remove_alias, "remove the alias instead");
  auto* archive = models->add_subcommand(
      "archive", "Archive a version: left out of listings and of NAME@latest, still served as NAME@VERSION");
  archive->add_option("ref", model_ref, "NAME@VERSION, e.g. fashion@3")->required();
  auto* unarchive = models->add_subcommand("unarchive", "Bring an archived version back into use");
  unarchive->add_option("ref", model_ref, "NAME@VERSION")->required();
  auto* del = models->add_subcommand(
      "delete", "Delete a version: it no longer resolves, its number is not given again, sluice gc may remove its file");
  del->add_option("ref", model_ref, "NAME@VERSION")->required();
  auto* reg = models->add_subcommand("register", "Register a published artifact as a new model version");
  reg->add_option("artifact", artifact, "a hash or a path under .sluice/artifacts")->required();
  reg->add_option("--name", model_name, "model name")->required();
  auto* path = models->add_subcommand("path", "Print the file of NAME@VERSION or NAME@ALIAS");
  path->add_option("ref", model_ref, "fashion@3 or fashion@production")->required();

  std::string older_than;
  bool dry_run = false;
  auto* gc = app.add_subcommand("gc", "Remove artifacts no registered model and no kept run depends on");
  gc->add_option("--older-than", older_than, "runs created this long ago are not kept, e.g. 30d")->required();
  gc->add_flag("-n,--dry-run", dry_run, "only list what would be removed");

  std::vector<std::string> schedule_paths;
  int schedule_count = 3;
  auto* schedules = app.add_subcommand("schedules", "The on.schedule entries of specs and their next fire times");
  schedules->add_option("paths", schedule_paths, "spec files or folders of them")->required();
  schedules->add_option("-n,--count", schedule_count, "fire times to show")->capture_default_str()->check(CLI::Range(1, 1000));
  schedules->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));

  std::string backfill_from, backfill_to, reprocess = "failed";
  int backfill_schedule = 1, backfill_active = 2;
  auto* backfill = app.add_subcommand("backfill", "One run per fire time of a pipeline's schedule over a past range");
  backfill->add_option("file", file, "pipeline.yaml")->required();
  backfill->add_option("--from", backfill_from, "first time: 2026-11-01, 2026-11-01T03:00 (the schedule's clock; Z: UTC)")
      ->required();
  backfill->add_option("--to", backfill_to, "last time, included (a date alone: to its end)")->required();
  backfill->add_option("--schedule", backfill_schedule, "which of on.schedule, from 1")->capture_default_str();
  backfill->add_option("--max-active", backfill_active, "runs at once")->capture_default_str()->check(CLI::Range(1, 64));
  backfill->add_option("--reprocess", reprocess, "failed: only intervals with no run, or whose newest failed or was "
                                                 "cancelled; all: every interval")
      ->capture_default_str()->check(CLI::IsMember({"failed", "all"}));
  backfill->add_option("-p,--param", raw_params, "override a param")->check(param_check);
  backfill->add_flag("-n,--dry-run", dry_run, "only list the fire times and their intervals");

  std::string pool_name;
  int pool_slots = 1;
  auto* pool = app.add_subcommand("pool", "Named pools of slots that steps of every run share (a step's pool:)");
  pool->require_subcommand(1);
  auto* pool_set = pool->add_subcommand("set", "Create a pool or change its slots");
  pool_set->add_option("name", pool_name, "the pool's name")->required();
  pool_set->add_option("--slots", pool_slots, "how many slots (0 to 10000)")->required();
  auto* pool_list = pool->add_subcommand("list", "List pools, their slots and who holds them");
  pool_list->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* pool_delete = pool->add_subcommand("delete", "Delete a pool no running step holds");
  pool_delete->add_option("name", pool_name, "the pool's name")->required();

  std::string token_name = "token", token_scope;
  int64_t token_id = 0;
  auto* token = app.add_subcommand("token", "API tokens for sluice serve: create, list, revoke");
  token->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Create a token and print it (only its hash is kept)");
  token_create->add_option("--scope", token_scope, "read, run (start, cancel, retry, approve) or admin")
      ->required()
      ->check(CLI::IsMember({"read", "run", "admin"}));
  token_create->add_option("--name", token_name, "what it is for")->capture_default_str();
  auto* token_list = token->add_subcommand("list", "List tokens (never their text)");
  token_list->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token by id");
  token_revoke->add_option("id", token_id, "its id in sluice token list")->required();

  std::string service_file, service_name, service_reason;
  bool services_json = false;
  int history_limit = 20;
  auto* services = app.add_subcommand("services", "Deployed models: versions, weights, replicas (apply, show, history, delete, promote, abort)");
  services->add_flag("--json", services_json, "JSON instead of a table");
  auto* services_apply = services->add_subcommand(
      "apply", "Make a service.yaml the service's desired state (models resolved and pinned now; FILE:LINE:COL errors exit 2)");
  services_apply->add_option("file", service_file, "service.yaml")->required();
  services_apply->add_option("--reason", service_reason, "why, for its history (default: apply FILE)");
  int apply_port = 8080;
  bool no_gateway = false;
  services_apply->add_option("--port", apply_port, "the port of a gateway started in the background, if none runs")
      ->capture_default_str()->check(CLI::Range(1, 65535));
  services_apply->add_flag("--no-gateway", no_gateway, "record the desired state only; start no gateway");
  bool apply_wait = false;
  std::string apply_wait_timeout = "2m";
  services_apply->add_flag("--wait", apply_wait, "wait until every replica is ready (exit 1 naming those that are not)")
      ->excludes("--no-gateway");
  services_apply->add_option("--wait-timeout", apply_wait_timeout, "how long --wait waits")->capture_default_str();

  GatewayCliOptions gateway_options;
  auto* gateway = app.add_subcommand("gateway", "Run the serving gateway of this store in the foreground (/v2 routes, /metrics)");
  gateway->add_option("--listen", gateway_options.listen, "address to listen on")->capture_default_str();
  gateway->add_option("--port", gateway_options.port, "0 picks a free port")->capture_default_str()->check(CLI::Range(0, 65535));
  gateway->add_option("--threads", gateway_options.threads, "I/O threads")->capture_default_str()->check(CLI::Range(1, 64));
  gateway->add_flag("--background", gateway_options.background)->group("");  // set by services apply
  auto* gateway_stop = gateway->add_subcommand("stop", "Stop the store's gateway and its replicas (drained first)");
  auto* services_show = services->add_subcommand("show", "One service: its versions, settings, applied spec and its active (or last) rollout");
  services_show->add_option("service", service_name, "the service's name")->required();
  services_show->add_flag("--json", services_json, "JSON instead of text");
  auto* services_history = services->add_subcommand("history", "A service's changes, newest first");
  services_history->add_option("service", service_name, "the service's name")->required();
  services_history->add_option("-n,--limit", history_limit, "how many")->capture_default_str()->check(CLI::Range(1, 100000));
  auto* services_delete = services->add_subcommand("delete", "Delete a service (its history stays)");
  services_delete->add_option("service", service_name, "the service's name")->required();
  services_delete->add_option("--reason", service_reason, "why, for its history (default: delete SERVICE)");
  auto* services_promote = services->add_subcommand("promote", "Ask the service's active rollout to promote its candidate");
  services_promote->add_option("service", service_name, "the service's name")->required();
  auto* services_abort = services->add_subcommand("abort", "Ask the service's active rollout to abort (traffic back to stable)");
  services_abort->add_option("service", service_name, "the service's name")->required();

  ServeModelOptions serving;
  auto* serve_model = app.add_subcommand("serve-model", "Serve a TorchScript model over the Open Inference Protocol v2");
  serve_model->add_option("model", serving.model, "a model file, or fashion@production, fashion@3, fashion@latest")
      ->required();
  serve_model->add_option("--name", serving.name, "the model's name in URLs (default: its registry name)");
  serve_model->add_option("--listen", serving.listen, "address to listen on")->capture_default_str();
  serve_model->add_option("--port", serving.port, "0 picks a free port")->capture_default_str()->check(CLI::Range(0, 65535));
  serve_model->add_option("--threads", serving.threads, "requests that run the model at once")->check(CLI::Range(1, 256));
  serve_model->add_option("--max-queue", serving.max_queue, "requests that may wait for a thread; beyond it 503 (default 64)")
      ->check(CLI::Range(0, 100000));
  serve_model->add_option("--token-env", serving.token_env,
                          "an environment variable holding a bearer token that every route but health needs");
  serve_model->add_option("--allow-host", serving.allowed_hosts,
                          "a Host name to answer besides IP addresses and localhost (repeatable)");
  serve_model->add_option("--max-batch", serving.max_batch, "micro-batch up to this many images (1: off)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  serve_model->add_option("--max-wait-ms", serving.max_wait_ms, "how long a micro-batch waits to fill")
      ->capture_default_str()->check(CLI::Range(0.0, 1000.0));
  serve_model->add_option("--read-timeout", serving.read_timeout,
                          "drop a client whose request has not all arrived this long after its first byte, or idle this long")
      ->capture_default_str();
  serve_model->add_option("--max-connections", serving.max_connections, "open connections at most; beyond it 503")
      ->capture_default_str()->check(CLI::Range(4, 100000));
  serve_model->add_option("--port-file", serving.port_file,
                          "once listening, write the bound port to FILE (through FILE.tmp and a rename)");
  serve_model->add_option("--model-version", serving.model_version,
                          "the version a model file is reported as (model_version; default 1)")
      ->check(CLI::Range(1, 1000000000));

  ServeOptions server;
  auto* serve = app.add_subcommand(
      "serve", "Serve the web UI, the HTTP API, schedules and webhooks for a folder of pipelines, and the store's services (/v2)");
  serve->add_option("--dir", server.dir, "the folder of pipeline.yaml files")->capture_default_str();
  serve->add_option("--listen", server.listen, "address to listen on")->capture_default_str();
  serve->add_option("--port", server.port, "0 picks a free port")->capture_default_str()->check(CLI::Range(0, 65535));
  serve->add_option("--threads", server.threads, "request threads (default: cores)")->check(CLI::Range(1, 256));
  serve->add_option("--max-body", server.max_body, "largest request body in bytes")->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
  serve->add_option("--max-connections", server.max_connections, "open connections at most")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  serve->add_option("--max-active-runs", server.max_active_runs,
                    "runs the server drives at once; more are queued (state queued) and start in order")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  serve->add_option("--read-timeout", server.read_timeout, "drop a client that sends nothing for this long")
      ->capture_default_str();

  // Not for people: what a Slurm job runs (exec/slurm_executor.h).
  std::string exec_request;
  auto* exec_step = app.add_subcommand("exec-step", "")->group("");
  exec_step->add_option("request", exec_request)->required();
  bool exec_array = false;
  exec_step->add_flag("--array", exec_array);

  // Not for people: the process that runs isolated plugin steps.
  auto* host = app.add_subcommand("plugin-host", "")->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  Overrides params = SplitParams(raw_params);
  if (*validate) return Validate(files);
  if (*plan) return Plan(file, params, format);
  if (*run) return Run(file, params, jobs, grace, no_cache);
  if (*resume) return Resume(run_id, grace, no_cache);
  if (*retry) return Retry(run_id, from, grace, no_cache, reload);
  if (*cancel) return Cancel(run_id);
  if (*approve) return DecideApproval(run_id, step, true, SplitParams(raw_values), comment);
  if (*reject) return DecideApproval(run_id, step, false, {}, comment);
  if (*runs) return Runs(limit, pipeline_filter, state_filter, format);
  if (*show) return Show(run_id, format);
  if (*logs) return Logs(run_id, step, attempt, follow);
  if (*plugins_install) return InstallPlugin(plugin_file, plugin_dir);
  if (*plugins_describe) return DescribePlugin(plugin_file);
  if (*plugins) return Plugins(plugin_dir, format);
  if (*lineage) return Lineage(target, downstream, format);
  if (*promote) return PromoteModel(model_name, model_version, alias, remove_alias);
  if (*archive) return ArchiveModel(model_ref, true);
  if (*unarchive) return ArchiveModel(model_ref, false);
  if (*del) return DeleteModel(model_ref);
  if (*reg) return RegisterModel(artifact, model_name);
  if (*path) return ModelPath(model_ref);
  if (*models) return Models(model_name, all_versions, format);
  if (*gc) return Gc(older_than, dry_run);
  if (*serve_model) return ServeModel(serving);
  if (*serve) return Serve(server);
  if (*pool_set) return SetPool(pool_name, pool_slots);
  if (*pool_list) return ListPools(format);
  if (*pool_delete) return DeletePool(pool_name);
  if (*token_create) return CreateToken(token_name, token_scope);
  if (*token_list) return ListTokens(format);
  if (*token_revoke) return RevokeToken(token_id);
  if (*schedules) return Schedules(schedule_paths, schedule_count, format);
  if (*backfill) return Backfill(file, backfill_from, backfill_to, backfill_schedule, backfill_active, reprocess, dry_run, params);
  if (*services_apply) return ServicesApply(service_file, service_reason, apply_port, no_gateway, apply_wait ? apply_wait_timeout : "");
  if (*gateway_stop) return StopGateway();
  if (*gateway) return RunGateway(gateway_options);
  if (*services_show) return ShowService(service_name, services_json);
  if (*services_history) return ServiceHistory(service_name, history_limit);
  if (*services_delete) return DeleteService(service_name, service_reason);
  if (*services_promote) return AskRollout(service_name, "promote");
  if (*services_abort) return AskRollout(service_name, "abort");
  if (*services) return Services(services_json);
  if (*host) return sluice::exec::PluginHostMain(3);
  if (*exec_step) return sluice::exec::ExecStepMain(exec_request, exec_array);
  return kExitUsage;
}
