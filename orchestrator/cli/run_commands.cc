// run, resume, retry, cancel: parse, ask the run verbs (runs/verbs.h),
// print, and drive the run in this process. The decisions (which verb
// applies, what retry runs again, taking over a run) are the run verbs';
// what is here is wording, exit codes and the wiring of executor, engine
// and observers.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/openlineage.h"
#include "cli/plugins.h"
#include "cli/progress.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "exec/local_executor.h"
#include "exec/plugin_catalog.h"
#include "exec/process.h"
#include "exec/routing_executor.h"
#include "exec/slurm_executor.h"
#include "runs/approval.h"
#include "runs/concurrency.h"
#include "runs/verbs.h"
#include "spec/pipeline.h"
#include "store/artifacts.h"
#include "util/strings.h"

extern char** environ;

namespace sluice::cli {

namespace fs = std::filesystem;
using engine::RunState;
using engine::StepRecord;

InterruptHandler::InterruptHandler(void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptHandler::~InterruptHandler() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

std::string HomeDir() {
  const char* home = std::getenv("SLUICE_HOME");
  return home && *home ? home : ".sluice";
}

std::unique_ptr<store::Store> OpenStore() {
  std::error_code ec;
  fs::create_directories(HomeDir(), ec);
  if (ec) {
    std::cerr << "sluice: create " << HomeDir() << ": " << ec.message() << "\n";
    return nullptr;
  }
  auto s = store::Store::Open(HomeDir() + "/sluice.db");
  if (!s.ok()) {
    std::cerr << "sluice: " << s.status().message() << "\n";
    return nullptr;
  }
  runs::UseProcessTable((*s)->concurrency());
  return std::move(s.value());
}

int Fail(const std::string& message, int code) {
  std::cerr << message << "\n";
  return code;
}

bool ParseRunId(const std::string& text, int64_t* id) {
  if (text == "latest") {
    auto store = OpenStore();
    if (!store) return false;
    auto runs = store->runs().ListRuns(1);
    if (!runs.ok() || runs->empty()) {
      std::cerr << "sluice: there are no runs in " << HomeDir() << " yet\n";
      return false;
    }
    *id = runs->front().id;
    return true;
  }
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0) {
    std::cerr << "sluice: " << Quote(text) << " is not a run id (runs are numbered 1, 2, ...; `latest` is the newest; see sluice runs)\n";
    return false;
  }
  *id = v;
  return true;
}

namespace {

std::atomic<engine::Engine*> g_engine{nullptr};
std::atomic<int> g_interrupts{0};

void OnInterrupt(int) {
  int n = ++g_interrupts;
  if (engine::Engine* e = g_engine.load()) e->RequestCancel(n >= 2);
}

// A run of a pipeline with `concurrency:` waits here, before anything of it
// starts, until it holds its group; it says once what it waits for, and
// again when that changes. -1 once it holds it, else the exit code.
int WaitForGroup(store::Store& store, const runs::StoredRun& run) {
  const std::string name = "run " + std::to_string(run.row.id);
  const std::string group = "concurrency group " + Quote(run.row.group);
  runs::GroupWaitHooks hooks;
  hooks.entered = [&](const store::GroupEntry& e) {
    for (int64_t id : e.replaced)
      std::printf("%s replaces run %lld, which waited in %s: cancelled\n", name.c_str(), static_cast<long long>(id),
                  group.c_str());
    if (e.replaced_by)
      std::printf("%s is replaced by run %lld, which waits in %s\n", name.c_str(), static_cast<long long>(e.replaced_by),
                  group.c_str());
    for (int64_t id : e.cancelling)
      std::printf("%s cancels run %lld, running in %s (cancel_in_progress)\n", name.c_str(), static_cast<long long>(id),
                  group.c_str());
    std::fflush(stdout);
  };
  bool waited = false;
  hooks.waiting = [&](int64_t holder) {
    waited = true;
    std::printf("%s waits: %s is held by run %lld (Ctrl-C cancels this run)\n", name.c_str(), group.c_str(),
                static_cast<long long>(holder));
    std::fflush(stdout);
  };
  hooks.interrupted = [] { return g_interrupts.load() > 0; };
  g_interrupts = 0;
  bool cancel_in_progress = run.pipeline.concurrency && run.pipeline.concurrency->cancel_in_progress;
  auto turn = [&] {
    InterruptHandler interrupts(OnInterrupt);
    return runs::WaitForGroup(store.concurrency(), store.runs(), run.row, cancel_in_progress, hooks);
  }();
  if (!turn.ok()) return Fail("sluice: " + name + ": " + turn.status().message(), kExitFailed);
  if (*turn == store::GroupTurn::What::kCancelled) {
    std::printf("%s cancelled before it started (it waited in %s)\n", name.c_str(), group.c_str());
    return kExitCancelled;
  }
  if (waited) std::printf("%s holds %s: starting\n", name.c_str(), group.c_str());
  std::fflush(stdout);
  return -1;
}

// Runs (or goes on with) a stored run in this process until it ends.
// `started_ms`: when the run first started (resume), from which its
// timeout counts; 0: now (a new run, or a retry, which gets the whole timeout).
int Drive(store::Store& store, const runs::StoredRun& run, std::vector<StepRecord> records, std::chrono::milliseconds grace,
          bool use_cache = true, std::vector<engine::AttemptRecord> adopt = {}, int64_t started_ms = 0) {
  auto plugins = PluginsFor(run.pipeline);
  if (!plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  if (Status pools = runs::CheckPools(store.concurrency(), run.pipeline); !pools.ok())
    return Fail(pools.message(), pools.code() == Code::kInvalidSpec ? kExitUsage : kExitFailed);
  Status st = runs::RunVerbs(store.runs(), HomeDir()).BecomeDriver(run.row.id);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  if (!run.row.group.empty())
    if (int code = WaitForGroup(store, run); code >= 0) return code;
  engine::Plan plan = engine::MakePlan(run.pipeline);
  engine::EngineOptions options;
  options.jobs = run.row.jobs;
  options.grace = grace;
  options.seed = static_cast<uint64_t>(run.row.id) * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(::getpid());
  options.workdir = run.row.workdir;
  options.log_dir = fs::absolute(HomeDir()).lexically_normal().string() + "/logs/" + std::to_string(run.row.id);
  store::ArtifactStore artifacts(fs::absolute(HomeDir()).lexically_normal().string() + "/artifacts");
  options.artifacts = &artifacts;
  options.use_cache = use_cache;
  options.adopt = std::move(adopt);
  options.started_ms = started_ms;
  options.interval = run.row.interval;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SLUICE_HOME=", 12) != 0) options.base_env.emplace_back(*e);
  options.base_env.push_back("SLUICE_HOME=" + fs::absolute(HomeDir()).lexically_normal().string());

  exec::LocalExecutor local(&*plugins);
  // A Slurm executor when a step asks for one; the router sends each attempt
  // where its placement says and waits in local's Wait(), which a Slurm
  // job's end wakes.
  std::unique_ptr<exec::SlurmExecutor> slurm;
  if (std::any_of(run.pipeline.steps.begin(), run.pipeline.steps.end(), [](const spec::Step& s) {
        return exec::RoutingExecutor::Route(s.executor) == exec::RoutingExecutor::Where::kSlurm;
      })) {
    std::error_code ec;
    slurm = std::make_unique<exec::SlurmExecutor>(
        fs::read_symlink("/proc/self/exe", ec).string(),
        exec::PluginCatalog::SearchPath(fs::absolute(run.pipeline.file).parent_path().string()),
        [&local] { local.Wake(); });
  }
  exec::RoutingExecutor executor(&local, slurm.get());
  engine::SystemClock clock;
  bool terminal = ::isatty(STDOUT_FILENO);
  Progress progress(run.row.id, static_cast<int>(run.pipeline.steps.size()), stdout, terminal);
  local.SetProgressSink([&progress](int64_t attempt, double fraction, const std::string& message) {
    progress.StepProgress(attempt, fraction, message);
  });
  // OpenLineage events, to $SLUICE_OPENLINEAGE_FILE and/or $SLUICE_OPENLINEAGE_URL.
  engine::Observer* observer = &progress;
  std::unique_ptr<OpenLineageEvents> lineage_events;
  const char* lineage_file = std::getenv("SLUICE_OPENLINEAGE_FILE");
  const char* lineage_url = std::getenv("SLUICE_OPENLINEAGE_URL");
  if ((lineage_file && *lineage_file) || (lineage_url && *lineage_url)) {
    std::unique_ptr<OpenLineageHttp> http;
    if (lineage_url && *lineage_url) {
      OpenLineageHttp::Options o;
      o.url = lineage_url;
      if (const char* key = std::getenv("SLUICE_OPENLINEAGE_API_KEY")) o.api_key = key;
      http = std::make_unique<OpenLineageHttp>(o);
      if (!http->error().empty()) return Fail("sluice: SLUICE_OPENLINEAGE_URL: " + http->error(), kExitUsage);
    }
    const char* ns = std::getenv("SLUICE_OPENLINEAGE_NAMESPACE");
    std::string path = lineage_file ? lineage_file : "";
    lineage_events = std::make_unique<OpenLineageEvents>(path, std::move(http), ns && *ns ? ns : "sluice",
                                                         run.pipeline.name,
                                                         fs::absolute(HomeDir()).lexically_normal().string(), &store.lineage(),
                                                         &progress);
    if (!lineage_events->ok()) return Fail("sluice: cannot open " + path + " for OpenLineage events", kExitFailed);
    observer = lineage_events.get();
  }
  engine::Engine eng(plan, run.params, run.row.id, &store.runs(), &executor, &clock, observer, options, std::move(records));

  g_interrupts = 0;
  g_engine = &eng;
  auto interrupts = std::make_unique<InterruptHandler>(OnInterrupt);
  if (!terminal)
    std::printf("%s run=%lld event=run-started pipeline=%s steps=%zu jobs=%d\n", IsoTime(clock.WallMs()).c_str(),
                static_cast<long long>(run.row.id), run.pipeline.name.c_str(), run.pipeline.steps.size(), run.row.jobs);
  auto t0 = std::chrono::steady_clock::now();
  auto result = eng.Run();
  progress.Finish();
  g_engine = nullptr;
  interrupts.reset();
  if (!result.ok()) return Fail("sluice: run " + std::to_string(run.row.id) + ": " + result.status().message(), kExitFailed);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  auto counts = eng.counts();
  std::string why = eng.EndReason().empty() ? "" : " (" + eng.EndReason() + ")";
  std::printf("run %lld %s in %s%s: %s, %d failed (sluice show %lld)\n", static_cast<long long>(run.row.id),
              engine::Name(*result), FormatDuration(elapsed).c_str(), why.c_str(), Plural(counts.total, "step").c_str(),
              counts.failed, static_cast<long long>(run.row.id));
  std::fflush(stdout);
  switch (*result) {
    case RunState::kSucceeded: return kExitOk;
    case RunState::kCancelled: return kExitCancelled;
    default: return kExitFailed;
  }
}

bool ParseGrace(const std::string& text, std::chrono::milliseconds* out) {
  auto d = ParseDuration(text);
  if (!d) {
    std::cerr << "sluice: bad duration " << Quote(text) << " for --grace (use a number and a unit: 500ms, 10s, 5m)\n";
    return false;
  }
  *out = *d;
  return true;
}

}  // namespace

int Run(const std::string& file, const Overrides& overrides, int jobs, const std::string& grace_text, bool no_cache) {
  std::chrono::milliseconds grace;
  if (!ParseGrace(grace_text, &grace)) return kExitUsage;
  auto p = spec::LoadPipeline(file);
  if (!p.ok()) return Fail((p.status().code() == Code::kIoError ? "sluice: " : "") + p.status().message(), kExitUsage);
  auto params = spec::ResolveParams(*p, overrides);
  if (!params.ok()) return Fail(params.status().message(), kExitUsage);
  if (auto plugins = PluginsFor(*p); !plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  if (auto group = spec::RenderConcurrencyGroup(*p, *params); !group.ok()) return Fail(group.status().message(), kExitUsage);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  // An unknown pool is refused before the run is recorded.
  if (Status pools = runs::CheckPools(store->concurrency(), *p); !pools.ok())
    return Fail(pools.message(), pools.code() == Code::kInvalidSpec ? kExitUsage : kExitFailed);
  auto id = runs::RunVerbs(store->runs(), HomeDir()).Create(*p, *params, jobs);
  if (!id.ok()) return Fail("sluice: " + id.status().message(), kExitFailed);
  auto row = store->runs().GetRun(*id);
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  runs::StoredRun run{std::move(*row), std::move(*p), std::move(*params)};
  return Drive(*store, run, {}, grace, !no_cache);
}

namespace {

// What `resume` and `retry` start from: the store and the stored run.
struct Reopened {
  int64_t id = 0;
  std::string name;    // "run 7", for messages (never "run latest")
  std::string number;  // "7", for the commands messages suggest
  std::chrono::milliseconds grace{0};
  std::unique_ptr<store::Store> store;
  std::optional<runs::StoredRun> run;
};

// 0 when `out` is ready, else the exit code (the error is printed).
int Reopen(const std::string& run_text, const std::string& grace_text, Reopened* out) {
  if (!ParseRunId(run_text, &out->id) || !ParseGrace(grace_text, &out->grace)) return kExitUsage;
  out->number = std::to_string(out->id);
  out->name = "run " + out->number;
  out->store = OpenStore();
  if (!out->store) return kExitFailed;
  auto run = runs::LoadStoredRun(out->store->runs(), out->id);
  if (!run.ok()) return Fail("sluice: " + run.status().message(), kExitFailed);
  out->run = std::move(*run);
  return 0;
}

// One line on stderr when the run's spec file is no longer the spec stored
// with the run, which is what `doing` (resuming, retrying) goes on with.
void WarnIfSpecChanged(const Reopened& r, const std::string& doing, const std::string& hint) {
  const std::string& path = r.run->row.spec_path;
  switch (runs::CompareSpecFile(r.run->row)) {
    case runs::SpecFile::kGone:
      std::cerr << "sluice: " << path << " is gone; " << doing << " with the spec stored with the run\n";
      break;
    case runs::SpecFile::kChanged:
      std::cerr << "sluice: " << path << " changed since " << r.name << " started; " << doing
                << " with the spec stored with the run" << hint << "\n";
      break;
    case runs::SpecFile::kSame: break;
  }
}

// A refused resume or retry, worded with the command that would apply.
std::string RefusalText(const runs::Refusal& no, const Reopened& r, bool retrying) {
  using Why = runs::Refusal::Why;
  const std::string& name = r.name;
  const std::string& number = r.number;
  switch (no.why) {
    case Why::kQueued:
      return name + " is queued by sluice serve and has not started; sluice resume " + number + " starts it now";
    case Why::kQueuedForRetry:
      return name + " is queued by sluice serve for a retry; sluice retry " + number + " runs it now";
    case Why::kDriven:
      return retrying ? name + " has not finished (pid " + std::to_string(no.driver_pid) + " runs it)"
                      : name + " is still being run by pid " + std::to_string(no.driver_pid);
    case Why::kUnfinished: return name + " has not finished; sluice resume " + number + " finishes it";
    case Why::kFinished:
      return name + " already " + engine::Name(no.state) + "; nothing to resume (sluice retry " + number +
             " runs failed steps again)";
    case Why::kNothingToRetry: return name + " has no failed or cancelled steps; name one with --from STEP";
    case Why::kNoSuchStep:
    case Why::kNone: break;
  }
  return name + ": " + engine::Name(no.state);
}

}  // namespace

int Resume(const std::string& run_text, const std::string& grace_text, bool no_cache) {
  Reopened r;
  if (int code = Reopen(run_text, grace_text, &r)) return code;
  runs::RunVerbs verbs(r.store->runs(), HomeDir());
  auto resumed = verbs.Resume(&r.run->row);
  if (!resumed.ok()) return Fail("sluice: " + resumed.status().message(), kExitFailed);
  if (resumed->claimed) std::printf("%s was queued by sluice serve; starting it now\n", r.name.c_str());
  if (resumed->refused) return Fail("sluice: " + RefusalText(resumed->refused, r, false), kExitFailed);
  WarnIfSpecChanged(r, "resuming", "");
  return Drive(*r.store, *r.run, std::move(resumed->records), r.grace, !no_cache, std::move(resumed->adopt),
               r.run->row.started_ms);
}

int Retry(const std::string& run_text, const std::string& from, const std::string& grace_text, bool no_cache,
          bool reload) {
  Reopened r;
  if (int code = Reopen(run_text, grace_text, &r)) return code;
  const std::string& name = r.name;
  runs::StoredRun& run = *r.run;
  runs::RunVerbs verbs(r.store->runs(), HomeDir());
  auto no = verbs.CheckRetry(&run.row, !from.empty() || reload);
  if (!no.ok()) return Fail("sluice: " + no.status().message(), kExitFailed);
  if (*no) return Fail("sluice: " + RefusalText(*no, r, true), kExitFailed);
  // The spec: the one stored with the run, or with --reload the file as it
  // is now (checked as `sluice run` checks it, the run's params carried
  // over), whose changed steps run again too.
  std::optional<spec::Pipeline> current;
  spec::ParamValues params;
  if (reload) {
    auto p = runs::ReloadSpec(run.row);
    if (!p.ok()) {
      const Status& st = p.status();
      if (st.code() == Code::kIncompatible)
        return Fail("sluice: " + st.message() + "; start a new run with sluice run", kExitUsage);
      return Fail((st.code() == Code::kIoError ? "sluice: " : "") + st.message(), kExitUsage);
    }
    if (auto plugins = PluginsFor(*p); !plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
    auto carried = runs::CarryParams(run.row, *p, "by " + name);
    if (!carried.ok()) return Fail(carried.status().message(), kExitUsage);
    current = std::move(*p);
    params = std::move(*carried);
  } else {
    WarnIfSpecChanged(r, "retrying", " (--reload uses the file as it is now)");
  }
  auto start = verbs.Retry(&run, from, std::move(current), std::move(params));
  if (!start.ok()) return Fail("sluice: " + start.status().message(), kExitFailed);
  const runs::RetryPlan& plan = start->plan;
  if (plan.refused.why == runs::Refusal::Why::kNoSuchStep)
    return Fail("sluice: " + name + " has no step " + Quote(from) + plan.refused.hint, kExitUsage);
  if (plan.refused)
    return Fail("sluice: " + name + " has no failed or cancelled steps" + (reload ? " and no changed ones" : "") +
                    "; name one with --from STEP",
                kExitFailed);
  std::string again = Plural(static_cast<int64_t>(plan.steps()), "step") + " again";
  if (reload)
    std::printf("retrying %s with the current %s: %s%s\n", name.c_str(), fs::path(run.row.spec_path).filename().c_str(),
                again.c_str(),
                plan.changed.empty() ? " (no step changed)" : (" (changed: " + Join(plan.changed, ", ") + ")").c_str());
  else
    std::printf("retrying %s: %s\n", name.c_str(), again.c_str());
  // --from: the named step and what follows run fresh, not from the cache.
  return Drive(*r.store, run, std::move(start->records), r.grace, !no_cache && from.empty());
}

int Cancel(const std::string& run_text) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  const std::string name = "run " + std::to_string(id);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto row = store->runs().GetRun(id);
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  runs::RunVerbs verbs(store->runs(), HomeDir());
  auto cancel = verbs.Cancel(*row);
  if (!cancel.ok()) return Fail("sluice: " + cancel.status().message(), kExitFailed);
  if (cancel->was_queued) {
    std::printf("%s cancelled (it was queued)\n", name.c_str());
    return kExitOk;
  }
  if (cancel->refused) return Fail("sluice: " + name + " already " + engine::Name(cancel->refused.state), kExitFailed);
  if (cancel->driven) {
    // The driver notices within its cancel poll; wait for it to finish.
    std::printf("cancel requested; sluice (pid %lld) is stopping %s\n", static_cast<long long>(cancel->driver_pid),
                name.c_str());
    std::fflush(stdout);
    while (true) {
      auto now = store->runs().GetRun(id);
      if (!now.ok()) return Fail("sluice: " + now.status().message(), kExitFailed);
      if (now->state != RunState::kRunning && now->state != RunState::kPending) {
        std::printf("%s %s\n", name.c_str(), engine::Name(now->state));
        return kExitOk;
      }
      if (!runs::DriverAlive(*now)) break;  // it died meanwhile: cancel it here
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Nobody drives the run: cancel it in the store and kill leftovers.
  Status st = verbs.CancelUndriven(id);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("%s cancelled\n", name.c_str());
  return kExitOk;
}

int DecideApproval(const std::string& run_text, const std::string& step, bool approve, const Overrides& values,
                   const std::string& comment) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  auto store = OpenStore();
  if (!store) return kExitFailed;
  runs::ApprovalDecision d{.approve = approve, .values = values, .comment = comment, .by = Actor(), .via = "with -v"};
  auto outcome = runs::Decide(*store, id, step, d, WallClockMs());
  if (!outcome.ok()) return Fail("sluice: " + outcome.status().message(), kExitFailed);
  using Why = runs::DecisionOutcome::Why;
  switch (outcome->why) {
    case Why::kRecorded: break;
    case Why::kBadValues: return Fail("sluice: " + outcome->message + "\nsluice: the step keeps waiting", kExitUsage);
    case Why::kNoRun:
    case Why::kNotWaiting: return Fail("sluice: " + outcome->message, kExitFailed);
  }
  std::printf("run %lld step %s %s by %s\n", static_cast<long long>(id), step.c_str(), approve ? "approved" : "rejected",
              d.by.c_str());
  return kExitOk;
}

}  // namespace sluice::cli
