// sluice/plugin.hpp: write Sluice step plugins as C++ classes.
//
//   #include <sluice/plugin.hpp>
//
//   struct Clean : sluice::Step {
//     void run(sluice::Context& ctx) override {
//       double threshold = ctx.param<double>("threshold");
//       ctx.log() << "cleaning with threshold " << threshold;
//       ctx.output("rows", "42");
//     }
//   };
//
//   SLUICE_PLUGIN("acme", "1.0.0",
//                 sluice::StepType<Clean>("clean", 1, "Drops rows under a threshold",
//                                         R"({"type": "object", "properties": {"threshold": {"type": "number"}},
//                                             "required": ["threshold"], "additionalProperties": false})"))
//
// A new Step object serves each attempt. Every exception thrown by run()
// becomes a failed attempt with the exception's message; throwing
// sluice::Cancelled (or calling ctx.stop_if_cancelled()) ends it as cancelled.
// Nothing C++ crosses into the host: the wrapper speaks only sluice/plugin.h.
#pragma once

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__has_include)
#if !__has_include(<nlohmann/json.hpp>)
#error "sluice/plugin.hpp needs nlohmann-json 3 (Debian: apt-get install nlohmann-json3-dev); a C plugin needs only sluice/plugin.h"
#endif
#endif
#include <nlohmann/json.hpp>

#include "sluice/plugin.h"

namespace sluice {

// Thrown to end an attempt as cancelled.
struct Cancelled {};

class Context;

// One line of the attempt's log, sent when the LogLine goes out of scope.
class LogLine {
 public:
  explicit LogLine(const sluice_host* h) : h_(h) {}
  LogLine(LogLine&& o) noexcept : h_(o.h_), s_(std::move(o.s_)) { o.h_ = nullptr; }
  ~LogLine() {
    if (!h_) return;
    std::string line = s_.str();
    h_->log(h_->host, sluice_str{line.data(), line.size()});
  }
  template <typename T>
  LogLine& operator<<(const T& v) {
    s_ << v;
    return *this;
  }

 private:
  const sluice_host* h_;
  std::ostringstream s_;
};

// What a step sees of its attempt. Valid during run() only.
class Context {
 public:
  Context(const sluice_host* host, const sluice_step_call* call)
      : h_(host),
        params_(nlohmann::json::parse(std::string_view(call->params.data, call->params.size))),
        output_dir_(call->output_dir.data, call->output_dir.size),
        workdir_(call->workdir.data, call->workdir.size),
        attempt_(call->attempt) {
    // Members appended to sluice_step_call after 1.0 exist only if its size covers them.
    if (call->struct_size >= offsetof(sluice_step_call, cpu) + sizeof call->cpu) {
      state_dir_.assign(call->state_dir.data, call->state_dir.size);
      cpu_ = call->cpu > 0 ? call->cpu : 1;
    }
  }

  // The step's `with:`, resolved.
  const nlohmann::json& params() const { return params_; }
  // One param as T; throws (failing the attempt) if it is missing or of another type.
  template <typename T>
  T param(const std::string& name) const {
    auto it = params_.find(name);
    if (it == params_.end()) throw std::runtime_error("missing param '" + name + "'");
    try {
      return it->template get<T>();
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error("param '" + name + "' has the wrong type: " + it->dump());
    }
  }
  template <typename T>
  T param(const std::string& name, T fallback) const {
    return params_.contains(name) ? param<T>(name) : fallback;
  }

  // The attempt's own folder for files; created on first use.
  const std::string& output_dir() {
    if (!made_output_dir_) {
      std::filesystem::create_directories(output_dir_);
      made_output_dir_ = true;
    }
    return output_dir_;
  }
  const std::string& workdir() const { return workdir_; }
  int attempt() const { return attempt_; }
  // A folder kept across the step's attempts within one run, for checkpoints
  // that a retried attempt resumes from; created on first use. Empty if the
  // host is older than the ABI 1.1 call.
  const std::string& state_dir() {
    if (!state_dir_.empty() && !made_state_dir_) {
      std::filesystem::create_directories(state_dir_);
      made_state_dir_ = true;
    }
    return state_dir_;
  }
  // The step's resources.cpu (1 if the host does not say).
  int cpu() const { return cpu_; }

  // ctx.log() << "epoch " << e << " loss " << loss;   (one line per statement)
  LogLine log() { return LogLine(h_); }
  void progress(double fraction, std::string_view message = {}) {
    h_->progress(h_->host, fraction, sluice_str{message.data(), message.size()});
  }
  // `index`: the epoch or batch the value was measured at.
  void metric(std::string_view name, double value, int64_t index = 0) {
    h_->metric(h_->host, sluice_str{name.data(), name.size()}, value, index);
  }
  void output(std::string_view key, std::string_view value) {
    h_->output(h_->host, sluice_str{key.data(), key.size()}, sluice_str{value.data(), value.size()});
  }
  bool cancelled() const { return h_->cancelled(h_->host) != 0; }
  // Throws Cancelled once the attempt should stop: call it between units of work.
  void stop_if_cancelled() const {
    if (cancelled()) throw Cancelled{};
  }

 private:
  const sluice_host* h_;
  nlohmann::json params_;
  std::string output_dir_, workdir_, state_dir_;
  int attempt_;
  int cpu_ = 1;
  bool made_output_dir_ = false;
  bool made_state_dir_ = false;
};

class Step {
 public:
  virtual ~Step() = default;
  virtual void run(Context& ctx) = 0;
};

namespace detail {

inline sluice_status Fail(const sluice_host* h, const char* what) {
  h->fail(h->host, sluice_str{what, std::strlen(what)});
  return SLUICE_STATUS_FAILED;
}

template <class S>
sluice_status Run(const sluice_host* h, const sluice_step_call* call) noexcept {
  try {
    Context ctx(h, call);
    S step;
    step.run(ctx);
    return SLUICE_STATUS_OK;
  } catch (const Cancelled&) {
    return SLUICE_STATUS_CANCELLED;
  } catch (const std::exception& e) {
    return Fail(h, e.what());
  } catch (...) {
    return Fail(h, "unknown exception");
  }
}

}  // namespace detail

// One step type of a plugin: a Step class, its id ([a-z0-9-]+), revision,
// description, the JSON Schema of its params, the outputs it sets (a JSON
// object of name: kind; empty: not declared) and its SLUICE_STEP_* flags.
template <class S>
constexpr sluice_step_type StepType(std::string_view id, uint32_t revision, std::string_view description,
                                    std::string_view params_schema, std::string_view outputs = {},
                                    uint32_t flags = 0) {
  return sluice_step_type{sizeof(sluice_step_type),
                          {id.data(), id.size()},
                          revision,
                          {description.data(), description.size()},
                          {params_schema.data(), params_schema.size()},
                          &detail::Run<S>,
                          {outputs.data(), outputs.size()},
                          flags};
}

}  // namespace sluice

// Defines the plugin's entry point: its name ([a-z0-9-]+), version and step types.
#define SLUICE_PLUGIN(NAME, VERSION, ...)                                                                   \
  extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin* sluice_plugin_entry(uint32_t) {                      \
    static const sluice_step_type sluice_step_types_[] = {__VA_ARGS__};                                     \
    static const sluice_plugin sluice_plugin_ = {sizeof(sluice_plugin),                                     \
                                                 SLUICE_PLUGIN_ABI_MAJOR,                                   \
                                                 SLUICE_STR(NAME),                                          \
                                                 SLUICE_STR(VERSION),                                       \
                                                 sizeof(sluice_step_types_) / sizeof(sluice_step_types_[0]), \
                                                 sluice_step_types_};                                       \
    return &sluice_plugin_;                                                                                 \
  }
