// ResolveService: a parsed service.yaml (ServiceSpec) to the desired state
// the store keeps (store::ServiceState), as `sluice services apply` (and
// later the admin API's PUT) hands it to ServicesStore::Apply.
//
// What it decides (specs/services-design.md sections 1 and 2):
// - each model version is resolved **now** and pinned: NAME@VERSION,
//   NAME@ALIAS and NAME@latest through the registry to the artifact (hash,
//   uri, model name, number); a model file is taken as it is, by its
//   absolute path, and must exist. An alias moved later does not move the
//   version; applying the same file again follows it.
// - `spec` is the canonical JSON of the document (keys sorted, no spaces;
//   paths made absolute); `spec_hash` is the SHA-256 of it together with
//   what each model resolved to, so re-applying an unchanged file whose
//   alias moved is a change, and re-applying it otherwise is not.
// - a version's options (threads, max_batch, max_wait_ms, max_queue, those
//   given; ready_timeout_ms always) as one JSON object.
// - a document without `traffic`: one version gets 100; several are refused
//   for a new service, and keep an existing service's weights
//   (keep_weights), which must then still add up to 100 over the versions
//   named, leave the mirror target at 0 and a 0-replica version at 0.
//
// - `auth.token_env`: the variable is read from this process's environment
//   (the CLI's for `services apply`, the daemon's for the API's PUT); only
//   its SHA-256 (hex) goes to infer_token_hash, and into spec_hash so a new
//   token is a change, one that replaces no replica. Unset or empty is an
//   error at the variable's name.
//
// Errors: every problem as `FILE:LINE:COL: message` (at the model scalar
// for a model that does not resolve, at 1:1 for the document as a whole),
// one a line, in one InvalidSpec status; a store that cannot be read is its
// own status (IoError, ...), not a spec error.
//
// Reads the registry only; one thread at a time, like its store.
#pragma once

#include "serving/service_spec.h"
#include "store/registry.h"
#include "store/services.h"
#include "util/status.h"

namespace sluice::serving {

// `live`: the service's desired state now (ServicesStore::Get), or null
// when there is none (never applied, or deleted): it decides whether an
// omitted `traffic` keeps weights or is refused.
Result<store::ServiceState> ResolveService(const ServiceSpec& spec, store::RegistryStore& registry,
                                           const store::ServiceState* live);

// The canonical JSON of a document (what `spec` holds): keys sorted, no
// spaces. Durations in milliseconds (timeout_ms, ready_timeout_ms), weights
// and percents as numbers (12.5), paths absolute.
// `auth` keeps the variable's name only; `cache` is {entries, ttl_ms}.
std::string CanonicalSpecJson(const ServiceSpec& spec);

// What the gateway's routes take from a canonical spec JSON (the store's
// `services.spec`): timeout_ms, max_inflight, cache and stats.sample, each
// clamped to the spec's bounds; a key missing or not a number keeps the
// default, and no `cache` is no cache.
struct RouteSettings {
  Millis timeout{30'000};
  int max_inflight = 64;
  std::optional<CacheSpec> cache;
  double stats_sample = 1.0;
};
RouteSettings RouteSettingsOfSpecJson(const std::string& spec_json);

}  // namespace sluice::serving
