// Fingerprint: what identifies the work of a step's attempt, and so its
// cache key.
//
// A step's identity is a JSON document of everything its result depends on
// that Sluice can see: the rendered command or plugin call, env, declared
// outputs, the artifacts it reads, and the content of files: its `deps:`
// and the files its command names (specs/pipeline.md, "Caching", lists it
// exactly). The fingerprint is the SHA-256 of that text. The engine computes
// it before each attempt; `sluice plan` computes the one a step would have
// now and compares it with the store's (DescribeChange).
//
// Files are read through a FileSystem, so tests give a fake; RealFileSystem
// remembers the hashes it computed, by path, size and modification time,
// for its own lifetime (one run). Neither is thread-safe: one thread (the
// engine's, or `sluice plan`'s) uses them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/executor.h"
#include "engine/types.h"
#include "spec/pipeline.h"
#include "util/duration.h"
#include "util/status.h"

namespace sluice::engine {

// The file system reads a fingerprint needs.
class FileSystem {
 public:
  enum class Kind { kMissing, kFile, kDir, kOther };  // kOther: FIFO, socket, device
  struct Entry {
    std::string name;
    Kind kind = Kind::kMissing;  // following symbolic links (kMissing: a dangling one)
    bool link = false;           // the entry itself is a symbolic link
  };
  virtual ~FileSystem() = default;
  // What `path` is, following symbolic links.
  virtual Kind Stat(const std::string& path) = 0;
  // The entries of folder `path`, in any order, without . and ..
  virtual Result<std::vector<Entry>> List(const std::string& path) = 0;
  // The SHA-256 of a file's bytes, hex. An IoError if it cannot be read.
  virtual Result<std::string> HashFile(const std::string& path) = 0;
};

// The real one. Hashes are remembered by path, size and modification time
// (nanoseconds), so the items of a foreach step read a file once.
class RealFileSystem : public FileSystem {
 public:
  Kind Stat(const std::string& path) override;
  Result<std::vector<Entry>> List(const std::string& path) override;
  Result<std::string> HashFile(const std::string& path) override;

 private:
  struct Known {
    int64_t size = 0, mtime_ns = 0, inode = 0;
    std::string sha256;
  };
  std::map<std::string, Known> known_;
};

// Bounds on what one step's deps and command may make Sluice read: files
// hashed (deps and files named by the command together), and names looked
// at while expanding globs and walking folders.
inline constexpr size_t kMaxDepFiles = 10000;
inline constexpr size_t kMaxDepNames = 100000;

// hashFiles(patterns...): the hex SHA-256 of the hex SHA-256s of the regular
// files the globs match under `spec_dir`, in path order ('' when none
// match), as GitHub Actions' hashFiles. Globs are deps' (`*`, `?`, `[...]`,
// `**`), refused when absolute or leaving the folder; the files and names
// looked at are bounded by kMaxDepFiles and kMaxDepNames (their bytes are not:
// a file's hash is remembered by size and modification time, as for deps).
Result<std::string> HashGlobs(FileSystem& files, const std::string& spec_dir, const std::vector<std::string>& patterns,
                              const std::string& step);

// An attempt of a step as rendered from its spec: what it runs and with
// what. The engine builds its AttemptRequest from it; `sluice plan` builds
// the identity the step would have.
struct RenderedStep {
  std::vector<std::string> argv;                                  // subprocess steps; /bin/sh -c LINE for a shell line
  std::vector<std::pair<std::string, std::string>> shell_values;  // a shell line's ${{ }} values: SLUICE_EXPR_<n>, value
  std::optional<PluginCall> plugin;                               // plugin steps: plugin, step type, params
  std::map<std::string, std::string> env;                         // the step's own env, rendered
  std::string workdir;                                            // absolute
};

// Renders `s` with `ctx`: its run line or argv, or its plugin call (the
// rendered `with:` checked against the step type's params schema, which
// `executor` knows, and its defaults filled in), its env and its workdir
// (relative to `spec_dir`, the spec's folder, absolute). `executor` may be
// null (no schema check). An error names the
// part that failed: "run: ...", "with: ...", "env NAME: ...", "workdir: ...".
Result<RenderedStep> RenderStep(const spec::Step& s, const spec::EvalContext& ctx, const std::string& spec_dir,
                                Executor* executor);

// Adds to `inputs` the artifacts behind value `v` of `producer`'s output
// `name`, if that output is declared (a path whose last part is its hash;
// a foreach step's output is a list of them).
void RecordInputs(const spec::Step& producer, const std::string& name, const spec::Value& v,
                  std::vector<LineageEdge>* inputs);

// Everything a step's identity is made of, besides files.
struct IdentityParts {
  const spec::Step* step = nullptr;
  const RenderedStep* rendered = nullptr;
  nlohmann::json code_identity;                                 // plugin steps: Executor::CodeIdentity()
  const std::map<std::string, std::string>* pipeline_env = nullptr;  // the pipeline's env, rendered
  std::vector<LineageEdge> inputs;                              // the artifacts its expressions read
  std::string spec_dir;                                         // absolute: deps are relative to it
};

struct Fingerprint {
  std::string identity;  // JSON text
  std::string sha256;    // of `identity`: the cache key
};

// The step's identity and fingerprint. Files are hashed only for a step
// with cache on (their hash is used only there); a step without still has
// each of its deps checked to match something. Errors (the step fails
// before it starts): InvalidSpec for a dep that matches nothing or deps
// that hold too many files, naming the step and the dep; IoError for a
// file that cannot be read.
Result<Fingerprint> ComputeFingerprint(const IdentityParts& parts, FileSystem& files);

// The words of a command that may name files the step reads: each argv
// element, the shell words of the element after -c when argv[0] is a shell
// (sh, bash, dash, zsh, ksh; so also a `run:` line, with its ${{ }} values in
// place), and each ${{ }} value of a shell line; for a word holding `=`
// (--config=a.yaml, X=a.txt), also the part after the first `=`.
std::vector<std::string> CommandWords(const std::vector<std::string>& argv,
                                      const std::vector<std::pair<std::string, std::string>>& shell_values);

// The literal words of a shell line, unquoted; a ${NAME} of `vars` (a
// rendered line's ${{ }} values) is replaced by its value. Left out: words
// with another expansion ($, `, an unquoted * ? [ or a leading ~), the
// target of an output redirection (> >> >| &> 2>), a here-document's
// delimiter and comments. Not a shell parser: enough to find file names.
std::vector<std::string> ShellWords(std::string_view line,
                                    const std::vector<std::pair<std::string, std::string>>& vars = {});

// What differs between two identities (JSON text), for `sluice plan`:
// "deps changed: train.py; env changed: SCALE". With `deps_only`, only the
// deps and the files `after` names are compared (the rest of `after` is not
// known yet). Empty if nothing compared differs.
std::string DescribeChange(const std::string& before, const std::string& after, bool deps_only = false);

// An age or a max_age for messages, to the second: "40s", "12m", "3h05m",
// "7d", "8d02h", "1h00m01s".
std::string FormatAge(Millis age);

}  // namespace sluice::engine
