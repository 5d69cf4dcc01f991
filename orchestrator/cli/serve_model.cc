// `sluice serve-model`: runs the torch plugin's `serve` step type in this
// process, in the foreground, until SIGINT or SIGTERM. The model is a file
// or a registry reference (fashion@production, fashion@3, fashion@latest).
// With --port-file, the port the plugin reports (its `url` output, once it
// listens) is written to a file, for a supervisor that starts it with
// --port 0 (the serving gateway).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "exec/plugin_catalog.h"
#include "exec/plugin_descriptor.h"
#include "util/duration.h"
#include "util/strings.h"

namespace fs = std::filesystem;

namespace sluice::cli {
namespace {

volatile std::sig_atomic_t stop_requested = 0;

void OnStopSignal(int) { stop_requested = 1; }

std::string Str(sluice_str s) { return std::string(s.data, s.size); }

struct Host {
  std::string failure;
  std::string port_file;          // empty: none
  std::string port_file_failure;  // why it could not be written
};

// Writes the port of `url` (http://HOST:PORT) to `file`: to file.tmp first,
// then renamed over `file`, so a reader sees the whole number or no file.
// Returns why not, or "".
std::string WritePortFile(const std::string& file, const std::string& url) {
  size_t colon = url.rfind(':');
  std::string port = colon == std::string::npos ? "" : url.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
    return "no port in the server's url " + Quote(url);
  std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << port << "\n";
    out.flush();
    if (!out) return "write " + tmp + ": " + std::strerror(errno);
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) return "rename " + tmp + " to " + file + ": " + ec.message();
  return "";
}

}  // namespace

int ServeModel(const ServeModelOptions& o) {
  auto timeout = ParseDuration(o.read_timeout);
  if (!timeout || timeout->count() <= 0) {
    std::cerr << "sluice: bad duration " << Quote(o.read_timeout) << " for --read-timeout (use 500ms, 10s, 1m)\n";
    return kExitUsage;
  }
  nlohmann::json params = {{"listen", o.listen}, {"port", o.port}, {"max_batch", o.max_batch},
                           {"max_wait_ms", o.max_wait_ms}, {"read_timeout_ms", timeout->count()},
                           {"connections", o.max_connections}};
  if (o.threads > 0) params["threads"] = o.threads;
  if (o.max_queue >= 0) params["max_queue"] = o.max_queue;
  if (!o.token_env.empty()) params["token_env"] = o.token_env;
  if (!o.allowed_hosts.empty()) params["allowed_hosts"] = o.allowed_hosts;
  std::error_code ec;
  if (fs::is_regular_file(o.model, ec)) {
    params["model"] = fs::absolute(o.model).string();
    params["name"] = o.name.empty() ? "model" : o.name;
    if (o.model_version > 0) params["version"] = std::to_string(o.model_version);
  } else {
    auto store = OpenStore();
    if (!store) return kExitFailed;
    auto m = store->registry().ResolveModel(o.model);
    if (!m.ok()) {
      std::cerr << "sluice: serve-model: " << o.model << " is not a model file, and " << m.status().message() << "\n";
      return kExitFailed;
    }
    if (o.model_version > 0 && o.model_version != m->version) {
      std::cerr << "sluice: serve-model: --model-version " << o.model_version << " contradicts " << o.model
                << ", which is version " << m->version << " (--model-version is for a model file)\n";
      return kExitUsage;
    }
    params["model"] = m->uri;
    params["name"] = o.name.empty() ? m->name : o.name;
    params["version"] = std::to_string(m->version);
  }

  exec::PluginCatalog catalog =
      exec::PluginCatalog::LoadFor(exec::PluginCatalog::SearchPath(fs::current_path().string()), {"torch"});
  const exec::PluginInfo* torch = catalog.Find("torch");
  std::shared_ptr<exec::PluginInfo> library;  // the torch plugin's, loaded when read from its descriptor
  if (torch && torch->described()) {
    auto opened = exec::OpenDescribedLibrary(*torch);
    if (!opened.ok()) {
      std::cerr << "sluice: serve-model: " << opened.status().message() << "\n";
      return kExitFailed;
    }
    library = std::move(*opened);
    torch = library.get();
  }
  const exec::StepTypeInfo* serve = torch ? torch->Find("serve") : nullptr;
  if (!serve) {
    std::cerr << "sluice: serve-model needs the torch plugin (libsluice-torch.so) with step type 'serve'; not found";
    for (const std::string& r : catalog.refused()) std::cerr << "\n  " << r;
    std::cerr << "\n  (sluice plugins lists the search path)\n";
    return kExitFailed;
  }

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Host state;
  state.port_file = o.port_file;
  sluice_host host{};
  host.struct_size = sizeof host;
  host.abi_major = SLUICE_PLUGIN_ABI_MAJOR;
  host.host = &state;
  host.log = [](void*, sluice_str line) {
    std::string l = Str(line);
    std::fprintf(stderr, "%s\n", l.c_str());
  };
  host.progress = [](void*, double, sluice_str) {};
  host.metric = [](void*, sluice_str, double, int64_t) {};
  host.output = [](void* h, sluice_str key, sluice_str value) {
    auto* state = static_cast<Host*>(h);
    if (Str(key) != "url" || state->port_file.empty()) return;
    state->port_file_failure = WritePortFile(state->port_file, Str(value));
    if (!state->port_file_failure.empty()) stop_requested = 1;  // a supervisor would wait for it in vain
  };
  host.fail = [](void* h, sluice_str message) { static_cast<Host*>(h)->failure = Str(message); };
  host.cancelled = [](void*) -> int32_t { return stop_requested ? 1 : 0; };
  std::string text = params.dump(), type = "serve", cwd = fs::current_path().string();
  sluice_step_call call{};
  call.struct_size = sizeof call;
  call.step_type = {type.data(), type.size()};
  call.params = {text.data(), text.size()};
  call.workdir = {cwd.data(), cwd.size()};
  call.attempt = 1;
  call.cpu = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  sluice_status status = serve->run(&host, &call);
  if (!state.port_file_failure.empty()) {
    std::cerr << "sluice: serve-model: --port-file: " << state.port_file_failure << "\n";
    return kExitFailed;
  }
  if (status == SLUICE_STATUS_FAILED) {
    std::cerr << "sluice: serve-model: " << state.failure << "\n";
    return kExitFailed;
  }
  return kExitOk;  // stopped by a signal
}

}  // namespace sluice::cli
