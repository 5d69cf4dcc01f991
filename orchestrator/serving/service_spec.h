// ServiceSpec: a service.yaml (specs/services-design.md section 1) as a typed
// value: the service's name, its versions (a model, by registry reference or
// file, or a command that speaks OIP v2), their replicas, the traffic
// weights, sticky routing and the mirror.
//
// ParseServiceSpec checks the document's shape and every limit and reports
// each problem as `FILE:LINE:COL: message` at the offending node, up to 50,
// one a line, in one InvalidSpec status (as spec/loader.cc does for
// pipelines; the same bounded YAML parser, spec::ParseYaml). It touches
// nothing outside the text: a model reference is resolved against the store
// by whoever applies the spec, and an omitted `traffic` on a service with
// several versions is refused or filled in there (it depends on whether the
// service exists). Pure: any thread.
//
// `auth` names the environment variable that holds the infer token; the
// parser does not read it (ResolveService does, at apply). `cache` sizes
// the gateway's prediction cache.
//
// Not yet parsed (design section 1, to come with the gateway): health,
// drain; they are refused as unknown keys until then.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spec/source.h"
#include "util/duration.h"
#include "util/status.h"

namespace sluice::serving {

// The most versions a service may have and replicas a version may have.
inline constexpr int kMaxVersions = 16;
inline constexpr int kMaxReplicas = 16;

struct VersionSpec {
  enum class Kind { kModel, kCommand };

  std::string name;                  // [a-z0-9][a-z0-9_-]{0,31}
  spec::SourcePos pos;               // of its key
  Kind kind = Kind::kModel;
  // kModel: `model` as written: NAME@VERSION, NAME@ALIAS, NAME@latest, or a
  // file; a file is also given as a path made from the YAML's folder.
  std::string model;
  spec::SourcePos model_pos;         // of the model scalar, for resolution errors
  std::string model_file;            // empty for a registry reference
  // Options passed to the model server; 0: its default.
  int threads = 0, max_batch = 0, max_wait_ms = 0, max_queue = 0;
  // kCommand: argv (no shell), its environment, folder and port variable.
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string workdir;               // default: the YAML's folder
  std::string port_env = "PORT";
  int replicas = 1;                  // 0 to kMaxReplicas
  Millis ready_timeout{120'000};
  int weight_bp = 0;                 // basis points, 0..10000
};

struct StickySpec {
  std::string header;                // lower case; or
  std::vector<std::string> field;    // a path of 1 to 4 object keys in the JSON body
  std::string salt;                  // default: the service's name
};

struct MirrorSpec {
  std::string version;               // takes no live traffic and has replicas
  int percent_bp = 10'000;           // (0, 10000]
};

struct AuthSpec {
  std::string token_env;             // [A-Za-z_][A-Za-z0-9_]*: read by whoever applies
  spec::SourcePos token_env_pos;     // of the scalar, for "not set" errors
};

// The prediction cache's limits (the gateway bounds its bytes too).
inline constexpr int kMaxCacheEntries = 1'000'000;
inline constexpr Millis kMinTimeout{1}, kMaxTimeout{600'000};  // `timeout`: one request to a replica
inline constexpr int kMaxInflight = 4096;                       // `max_inflight`: per replica
inline constexpr Millis kMinCacheTtl{1'000};
inline constexpr Millis kMaxCacheTtl{86'400'000};

struct CacheSpec {
  int entries = 10'000;              // 1 to kMaxCacheEntries
  Millis ttl{60'000};                // kMinCacheTtl to kMaxCacheTtl
};

struct ServiceSpec {
  std::string file;                  // as given to the parser
  std::string name;                  // [a-z0-9][a-z0-9-]{0,62}: the route /v2/models/{name}
  std::vector<VersionSpec> versions; // in file order, 1 to kMaxVersions
  // Whether the document has `traffic`. Without it one version gets 10000
  // and several get 0 each: the applier keeps an existing service's
  // weights, and refuses a new service with several versions.
  bool traffic_given = false;
  std::optional<StickySpec> sticky;
  std::optional<MirrorSpec> mirror;
  Millis timeout{30'000};            // one request to a replica: 1ms to 10m
  int max_inflight = 64;             // per replica: 1 to 4096
  std::optional<AuthSpec> auth;      // none: infer is open
  std::optional<CacheSpec> cache;    // none: no prediction cache
  // stats.sample: the share of answered infer requests the payload profile
  // sees (serving/profiler.h), 0 to 1.
  double stats_sample = 1.0;

  const VersionSpec* FindVersion(const std::string& name) const;
};

// Parses `text`, the contents of `file` (named in messages; relative model
// files and workdir are taken from its folder).
Result<ServiceSpec> ParseServiceSpec(const std::string& file, const std::string& text);
// Reads and parses the file at `path`.
Result<ServiceSpec> LoadServiceSpec(const std::string& path);

// "90", "12.5", "0.01": basis points as weights and percents are written.
std::string FormatPercent(int basis_points);
// The reverse, as the spec reads weights and percents: digits with at most
// two decimals ("90", "12.5", "0.01") to basis points; nullopt for anything
// else (a sign, an exponent, a third decimal). Not bounded to 10000.
std::optional<int> ParseBasisPoints(const std::string& text);

}  // namespace sluice::serving
