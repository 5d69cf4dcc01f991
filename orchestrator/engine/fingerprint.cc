// What identifies an attempt (engine/fingerprint.h). About 660 lines, in
// sections: the real file system, the identity's rendering, the files a
// command's words name, deps, and the words for a change. They are one job,
// and they share the identity's JSON shape: split, each part would repeat it.
#include "engine/fingerprint.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>
#include <tuple>

#include "spec/schema_check.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::engine {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------- files

FileSystem::Kind RealFileSystem::Stat(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Kind::kMissing;
  if (S_ISREG(st.st_mode)) return Kind::kFile;
  if (S_ISDIR(st.st_mode)) return Kind::kDir;
  return Kind::kOther;
}

Result<std::vector<FileSystem::Entry>> RealFileSystem::List(const std::string& path) {
  std::vector<Entry> out;
  std::error_code ec;
  fs::directory_iterator it(path, ec), end;
  if (ec) return Status::IoError("list " + path + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::IoError("list " + path + ": " + ec.message());
    Entry e;
    e.name = it->path().filename().string();
    e.link = it->is_symlink(ec);
    e.kind = Stat(it->path().string());
    out.push_back(std::move(e));
  }
  if (ec) return Status::IoError("list " + path + ": " + ec.message());
  return out;
}

Result<std::string> RealFileSystem::HashFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("hash " + path, errno);
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  auto it = known_.find(path);
  if (it != known_.end() && it->second.size == st.st_size && it->second.mtime_ns == mtime_ns &&
      it->second.inode == static_cast<int64_t>(st.st_ino))
    return it->second.sha256;
  auto h = Sha256File(path);
  if (!h.ok()) return h.status();
  known_[path] = {static_cast<int64_t>(st.st_size), mtime_ns, static_cast<int64_t>(st.st_ino), *h};
  return *h;
}

// ---------------------------------------------------------------- rendering

Result<RenderedStep> RenderStep(const spec::Step& s, const spec::EvalContext& ctx, const std::string& spec_dir,
                                Executor* executor) {
  RenderedStep r;
  if (!s.uses.empty()) {
    auto params = s.with ? spec::RenderWith(*s.with, ctx) : Result<json>(json::object());
    if (!params.ok()) return Status::InvalidSpec("with: " + params.status().message());
    auto [plugin, type] = spec::SplitUses(s.uses);
    PluginCall call;
    call.plugin = plugin;
    call.step_type = type;
    call.isolated = s.isolation == spec::Step::Isolation::kProcess;
    AttemptRequest req;
    req.plugin = std::move(call);
    // The loader checked what it could see; values from ${{ }} are
    // checked here, before the attempt starts, and defaults filled in.
    json schema = executor ? executor->ParamsSchema(req) : json();
    std::string problem = schema.is_object() ? spec::CheckRenderedParams(&*params, schema) : "";
    if (!problem.empty())
      return Status::InvalidSpec("with: " + problem + " (checked against " + s.uses + "'s params schema)");
    req.plugin->params = params->is_null() ? "{}" : JsonText(*params);
    r.plugin = std::move(req.plugin);
  } else if (s.shell) {
    auto line = spec::RenderShell(s.run[0], ctx);
    if (!line.ok()) return Status::InvalidSpec("run: " + line.status().message());
    r.argv = {"/bin/sh", "-c", line->script};
    r.shell_values = std::move(line->env);
  } else {
    for (const spec::Template& t : s.run) {
      auto arg = spec::Render(t, ctx);
      if (!arg.ok()) return Status::InvalidSpec("run: " + arg.status().message());
      r.argv.push_back(std::move(*arg));
    }
  }
  for (const auto& [k, t] : s.env) {
    auto v = spec::Render(t, ctx);
    if (!v.ok()) return Status::InvalidSpec("env " + k + ": " + v.status().message());
    r.env[k] = *v;
  }
  r.workdir = spec_dir;
  if (s.workdir) {
    auto w = spec::Render(*s.workdir, ctx);
    if (!w.ok()) return Status::InvalidSpec("workdir: " + w.status().message());
    r.workdir = (fs::path(spec_dir) / *w).lexically_normal().string();
  }
  return r;
}

void RecordInputs(const spec::Step& producer, const std::string& name, const spec::Value& v,
                  std::vector<LineageEdge>* inputs) {
  for (const auto& [out, kind] : producer.outputs) {
    if (out != name || kind == "value") continue;
    auto add = [&](const spec::Value& p) {
      if (!p.is_string()) return;
      LineageEdge e{LineageEdge::Role::kConsumed, producer.id + "." + name, {}};
      e.artifact.uri = p.as_string();
      e.artifact.hash = fs::path(p.as_string()).filename().string();
      e.artifact.kind = kind;
      inputs->push_back(std::move(e));
    };
    if (v.is_list())
      for (const spec::Value& p : v.as_list()) add(p);
    else
      add(v);
  }
}

// ---------------------------------------------------------------- command words

namespace {

bool IsShell(const std::string& argv0) {
  std::string name = fs::path(argv0).filename().string();
  return name == "sh" || name == "bash" || name == "dash" || name == "zsh" || name == "ksh";
}

// -c, -ec, -xc, -euc: options of which the last is c.
bool IsDashC(const std::string& a) {
  if (a.size() < 2 || a[0] != '-' || a.back() != 'c') return false;
  return std::all_of(a.begin() + 1, a.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

}  // namespace

std::vector<std::string> ShellWords(std::string_view line, const std::vector<std::pair<std::string, std::string>>& vars) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false, dynamic = false;
  bool skip_next = false;  // the next word is an output's target or a here-document's delimiter
  auto end_word = [&] {
    if (in_word) {
      if (!dynamic && !skip_next && !cur.empty()) out.push_back(cur);
      skip_next = false;
    }
    cur.clear();
    in_word = dynamic = false;
  };
  // `2>`: the digits before a redirection are a file descriptor, not a word.
  auto drop_fd = [&] {
    if (in_word && !cur.empty() && !dynamic && cur.find_first_not_of("0123456789") == std::string::npos) {
      cur.clear();
      in_word = false;
    }
  };
  // ${NAME} of a known variable: its value, as the shell would expand it.
  auto known_var = [&](size_t at) -> const std::string* {
    for (const auto& [name, value] : vars) {
      std::string ref = "${" + name + "}";
      if (line.substr(at, ref.size()) == ref) return &value;
    }
    return nullptr;
  };
  auto var_length = [&](size_t at) { return line.find('}', at) - at + 1; };
  size_t i = 0, n = line.size();
  while (i < n) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '|' || c == '(' || c == ')') {
      end_word();
      ++i;
    } else if (c == '&') {
      end_word();
      ++i;
      if (i < n && line[i] == '>') {  // &> and &>>: both outputs
        ++i;
        if (i < n && line[i] == '>') ++i;
        skip_next = true;
      }
    } else if (c == '>') {
      drop_fd();
      end_word();
      ++i;
      if (i < n && (line[i] == '>' || line[i] == '|' || line[i] == '&')) ++i;
      skip_next = true;
    } else if (c == '<') {
      drop_fd();
      end_word();
      ++i;
      if (i < n && line[i] == '<') {  // << here-document, <<< here-string: no file
        ++i;
        while (i < n && (line[i] == '<' || line[i] == '-')) ++i;
        skip_next = true;
      } else if (i < n && (line[i] == '&' || line[i] == '>')) {
        ++i;
        skip_next = true;
      }
    } else if (c == '#' && !in_word) {
      while (i < n && line[i] != '\n') ++i;
    } else if (c == '\'') {
      in_word = true;
      size_t close = line.find('\'', i + 1);
      if (close == std::string_view::npos) close = n;
      cur.append(line.substr(i + 1, close - i - 1));
      i = close + 1;
    } else if (c == '"') {
      in_word = true;
      ++i;
      while (i < n && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < n && std::string_view("$`\"\\\n").find(line[i + 1]) != std::string_view::npos) {
          if (line[i + 1] != '\n') cur += line[i + 1];
          i += 2;
          continue;
        }
        if (line[i] == '$') {
          if (const std::string* v = known_var(i)) {
            cur += *v;
            i += var_length(i);
            continue;
          }
        }
        if (line[i] == '$' || line[i] == '`') dynamic = true;
        cur += line[i++];
      }
      ++i;
    } else if (c == '\\') {
      in_word = true;
      if (i + 1 < n && line[i + 1] != '\n') cur += line[i + 1];
      i += 2;
    } else if (c == '$' && known_var(i)) {
      in_word = true;
      cur += *known_var(i);
      i += var_length(i);
    } else {
      if (c == '$' || c == '`' || c == '*' || c == '?' || c == '[' || (c == '~' && !in_word)) dynamic = true;
      in_word = true;
      cur += c;
      ++i;
    }
  }
  end_word();
  return out;
}

std::vector<std::string> CommandWords(const std::vector<std::string>& argv,
                                      const std::vector<std::pair<std::string, std::string>>& shell_values) {
  std::vector<std::string> out;
  // --config=a.yaml, X=a.txt, if=in.bin: a name, then = and a value.
  auto add = [&](const std::string& w) {
    out.push_back(w);
    size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == w.size() || w.find_first_of(" \t\n") != std::string::npos) return;
    bool name = std::all_of(w.begin(), w.begin() + static_cast<long>(eq),
                            [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
    if (name) out.push_back(w.substr(eq + 1));
  };
  bool shell = !argv.empty() && IsShell(argv[0]);
  for (size_t i = 0; i < argv.size(); ++i) {
    add(argv[i]);
    if (shell && i > 0 && IsDashC(argv[i - 1]))
      for (const std::string& w : ShellWords(argv[i], shell_values)) add(w);
  }
  for (const auto& [name, value] : shell_values) add(value);
  return out;
}

// ---------------------------------------------------------------- deps

namespace {

constexpr const char* kLinkedFolder = "(a link to a folder: not followed)";
constexpr const char* kOtherFile = "(not a regular file)";
constexpr const char* kDanglingLink = "(a link to nothing)";

// Folders a walk or a ** does not enter: derived files (Python's bytecode),
// version control and Sluice's own store.
bool Skipped(const std::string& name) { return name == "__pycache__" || name == ".git" || name == ".sluice"; }

bool HasGlob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::string PathJoin(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// A dep as a key: `./data/` and `data` are the same dep.
std::string NormalDep(const std::string& pattern) {
  std::string norm = fs::path(pattern).lexically_normal().generic_string();
  while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  return norm;
}

std::string WithCommas(size_t n) {
  std::string digits = std::to_string(n), s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// Expands deps and hashes what they match, within the bounds.
class DepReader {
 public:
  DepReader(FileSystem& files, const std::string& root, const std::string& step, bool hash)
      : files_(files), root_(root), step_(step), hash_(hash) {}

  // Every file under the spec's folder that `pattern` matches, by path
  // relative to the folder, with its hash (or a marker for what is not a
  // regular file). `matched`: whether it matched anything, even an empty folder.
  Status Expand(const std::string& pattern, std::map<std::string, std::string>* out, bool* matched) {
    pattern_ = pattern;
    out_ = out;
    matched_ = false;
    std::string norm = NormalDep(pattern);
    std::vector<std::string> segments;
    if (norm != "." && !norm.empty()) {
      size_t start = 0;
      while (start <= norm.size()) {
        size_t slash = norm.find('/', start);
        if (slash == std::string::npos) slash = norm.size();
        segments.push_back(norm.substr(start, slash - start));
        start = slash + 1;
      }
    }
    Status st = segments.empty() ? Add("", FileSystem::Kind::kDir, false) : Match(segments, 0, "");
    *matched = matched_;
    return st;
  }

  // A file the command names, if it is a regular file under the folder.
  Status AddNamed(const std::string& rel, std::map<std::string, std::string>* out) {
    if (out->count(rel)) return Status::Ok();
    if (files_.Stat(Abs(rel)) != FileSystem::Kind::kFile) return Status::Ok();
    pattern_ = rel;
    out_ = out;
    return Add(rel, FileSystem::Kind::kFile, false);
  }

 private:
  std::string Abs(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  Result<std::vector<FileSystem::Entry>> List(const std::string& rel) {
    auto entries = files_.List(Abs(rel));
    if (!entries.ok()) return Status::IoError("deps: " + entries.status().message());
    names_ += entries->size();
    if (names_ > kMaxDepNames)
      return Status::InvalidSpec("deps: " + Quote(pattern_) + " of step '" + step_ + "' looks through more than " +
                                 WithCommas(kMaxDepNames) + " names; narrow it down");
    std::sort(entries->begin(), entries->end(),
              [](const FileSystem::Entry& a, const FileSystem::Entry& b) { return a.name < b.name; });
    return entries;
  }

  Status Match(const std::vector<std::string>& segs, size_t i, const std::string& dir) {
    const std::string& seg = segs[i];
    bool last = i + 1 == segs.size();
    if (seg == "**") {
      if (last) return Add(dir, FileSystem::Kind::kDir, false);  // everything under it
      Status st = Match(segs, i + 1, dir);                        // no folder at all
      if (!st.ok()) return st;
      auto entries = List(dir);
      if (!entries.ok()) return entries.status();
      for (const FileSystem::Entry& e : *entries) {
        if (e.kind != FileSystem::Kind::kDir || e.link || e.name[0] == '.' || Skipped(e.name)) continue;
        st = Match(segs, i, PathJoin(dir, e.name));
        if (!st.ok()) return st;
      }
      return Status::Ok();
    }
    if (!HasGlob(seg)) {
      std::string child = PathJoin(dir, seg);
      FileSystem::Kind kind = files_.Stat(Abs(child));
      if (kind == FileSystem::Kind::kMissing) return Status::Ok();
      if (last) return Add(child, kind, false);
      return kind == FileSystem::Kind::kDir ? Match(segs, i + 1, child) : Status::Ok();
    }
    auto entries = List(dir);
    if (!entries.ok()) return entries.status();
    for (const FileSystem::Entry& e : *entries) {
      if (::fnmatch(seg.c_str(), e.name.c_str(), FNM_PERIOD) != 0) continue;
      std::string child = PathJoin(dir, e.name);
      Status st = last ? Add(child, e.kind, e.link)
                       : e.kind == FileSystem::Kind::kDir ? Match(segs, i + 1, child) : Status::Ok();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  // A match: a file is hashed, a folder walked. `link`: the match is a
  // symbolic link a walk or a glob met; it is followed to a file but not to
  // a folder (no cycles). A dep that names a link to a folder is followed.
  Status Add(const std::string& rel, FileSystem::Kind kind, bool link) {
    matched_ = true;
    switch (kind) {
      case FileSystem::Kind::kFile: {
        std::string hash = "-";
        if (hash_) {
          auto h = files_.HashFile(Abs(rel));
          if (!h.ok()) return Status::IoError("deps: " + h.status().message());
          hash = *h;
        }
        return Record(rel, hash);
      }
      case FileSystem::Kind::kDir:
        if (link) return Record(rel, kLinkedFolder);
        return Walk(rel);
      case FileSystem::Kind::kOther:
        return Record(rel, kOtherFile);
      case FileSystem::Kind::kMissing:
        return Record(rel, kDanglingLink);
    }
    return Status::Ok();
  }

  Status Walk(const std::string& dir) {
    auto entries = List(dir);
    if (!entries.ok()) return entries.status();
    for (const FileSystem::Entry& e : *entries) {
      if (e.kind == FileSystem::Kind::kDir && !e.link && Skipped(e.name)) continue;
      Status st = Add(PathJoin(dir, e.name), e.kind, e.link);
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  Status Record(const std::string& rel, const std::string& hash) {
    (*out_)[rel] = hash;
    counted_.insert(rel);
    if (counted_.size() > kMaxDepFiles)
      return Status::InvalidSpec("deps: step '" + step_ + "' names more than " + WithCommas(kMaxDepFiles) +
                                 " files (at " + Quote(pattern_) + "); a step hashes at most " + WithCommas(kMaxDepFiles) +
                                 ": depend on an archive of them, or make them an upstream step's declared output");
    return Status::Ok();
  }

  FileSystem& files_;
  const std::string& root_;
  const std::string& step_;
  bool hash_;
  std::string pattern_;
  std::map<std::string, std::string>* out_ = nullptr;
  bool matched_ = false;
  size_t names_ = 0;
  std::set<std::string> counted_;
};

// The step's workdir as a path from the spec's folder ("." for the folder
// itself), as fs::relative gives it for paths without symlinks, but with no
// file system call (fs::relative resolves symlinks: seven syscalls a step).
// The renderer derives the workdir from the spec's folder lexically.
std::string WorkdirFromSpec(const std::string& workdir, const std::string& spec_dir) {
  return fs::path(workdir).lexically_normal().lexically_relative(fs::path(spec_dir).lexically_normal()).string();
}

std::string DigestOf(const std::map<std::string, std::string>& files) {
  std::string listing;
  for (const auto& [path, hash] : files) listing += path + '\0' + hash + '\n';
  return Sha256Hex(listing);
}

}  // namespace

Result<std::string> HashGlobs(FileSystem& files, const std::string& spec_dir, const std::vector<std::string>& patterns,
                              const std::string& step) {
  std::map<std::string, std::string> matched;  // path -> hash, or a marker for what is not a regular file
  DepReader reader(files, spec_dir, step, /*hash=*/true);
  for (const std::string& pattern : patterns) {
    std::string problem = spec::DepPatternProblem(pattern);
    if (!problem.empty()) return Status::InvalidSpec("hashFiles(): " + Quote(pattern) + " " + problem);
    bool any = false;
    Status st = reader.Expand(pattern, &matched, &any);
    if (!st.ok()) return st.WithContext("hashFiles()");
  }
  std::string hashes;
  for (const auto& [path, hash] : matched)
    if (hash.size() == 64 && hash[0] != '(') hashes += hash;
  return hashes.empty() ? std::string() : Sha256Hex(hashes);
}

Result<Fingerprint> ComputeFingerprint(const IdentityParts& parts, FileSystem& files) {
  const spec::Step& s = *parts.step;
  const RenderedStep& r = *parts.rendered;
  json identity = {{"step", s.id}, {"workdir", WorkdirFromSpec(r.workdir, parts.spec_dir)}};
  if (r.plugin) {
    identity["plugin"] = parts.code_identity;
    // Unparsable text is null, not nlohmann's "<discarded>".
    json params = json::parse(r.plugin->params, nullptr, false);
    identity["params"] = params.is_discarded() ? json() : std::move(params);
  } else {
    identity["command"] = r.argv;
    for (const auto& [k, v] : r.shell_values) identity["values"].push_back(v);
  }
  // What the step sees: the pipeline's env under its own.
  if (parts.pipeline_env)
    for (const auto& [k, v] : *parts.pipeline_env) identity["env"][k] = v;
  for (const auto& [k, v] : r.env) identity["env"][k] = v;
  for (const auto& [name, kind] : s.outputs) identity["outputs"][name] = kind;
  if (!s.secrets.empty()) identity["secrets"] = s.secrets;  // names only
  std::vector<LineageEdge> inputs = parts.inputs;
  std::sort(inputs.begin(), inputs.end(), [](const LineageEdge& a, const LineageEdge& b) {
    return std::tie(a.name, a.artifact.hash) < std::tie(b.name, b.artifact.hash);
  });
  for (const LineageEdge& in : inputs) identity["inputs"].push_back({in.name, in.artifact.hash});

  DepReader reader(files, parts.spec_dir, s.id, s.cache);
  for (const spec::Dep& d : s.deps) {
    std::map<std::string, std::string> matched_files;
    bool matched = false;
    Status st = reader.Expand(d.pattern, &matched_files, &matched);
    if (!st.ok()) return st;
    if (!matched)
      return Status::InvalidSpec("deps: " + Quote(d.pattern) + " of step '" + s.id + "' matches no file or folder in " +
                                 parts.spec_dir);
    if (s.cache) identity["deps"][NormalDep(d.pattern)] = DigestOf(matched_files);
  }
  if (s.cache && !r.plugin) {
    // Files the command names: a word that, as a path from the step's
    // workdir (or an absolute one), is a regular file under the spec's folder.
    // An artifact it reads is in `inputs` already (by its hash), and the
    // store's folder is Sluice's, not the step's.
    std::vector<fs::path> artifacts;
    for (const LineageEdge& in : inputs) artifacts.push_back(fs::path(in.artifact.uri).lexically_normal());
    auto in_artifact = [&](const fs::path& p) {
      for (const fs::path& a : artifacts) {
        auto rel = p.lexically_relative(a);
        if (!rel.empty() && *rel.begin() != "..") return true;
      }
      return false;
    };
    std::map<std::string, std::string> named;
    std::set<std::string> tried;
    for (const std::string& w : CommandWords(r.argv, r.shell_values)) {
      if (w.empty() || w.size() > 4096 || w.find('\0') != std::string::npos || !tried.insert(w).second) continue;
      fs::path p = (w[0] == '/' ? fs::path(w) : fs::path(r.workdir) / w).lexically_normal();
      std::string rel = p.lexically_relative(parts.spec_dir).generic_string();
      if (rel.empty() || rel == "." || rel == ".." || rel.rfind("../", 0) == 0) continue;
      if (rel.rfind(".sluice/", 0) == 0 || rel.find("/.sluice/") != std::string::npos || in_artifact(p)) continue;
      Status st = reader.AddNamed(rel, &named);
      if (!st.ok()) return st;
    }
    for (const auto& [path, hash] : named) identity["files"][path] = hash;
  }
  Fingerprint f;
  f.identity = JsonText(identity);
  f.sha256 = Sha256Hex(f.identity);
  return f;
}

// ---------------------------------------------------------------- changes

namespace {

std::string Names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 3;
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
  std::string s = sluice::Join(shown, ", ");
  if (names.size() > kShown) s += " and " + std::to_string(names.size() - kShown) + " more";
  return s;
}

// Keys of two objects whose values differ (a key in one only counts).
std::vector<std::string> ChangedKeys(const json& a, const json& b, bool only_b = false) {
  std::vector<std::string> out;
  std::set<std::string> keys;
  if (a.is_object() && !only_b)
    for (auto& [k, v] : a.items()) keys.insert(k);
  if (b.is_object())
    for (auto& [k, v] : b.items()) keys.insert(k);
  for (const std::string& k : keys) {
    const json* x = a.is_object() && a.contains(k) ? &a[k] : nullptr;
    const json* y = b.is_object() && b.contains(k) ? &b[k] : nullptr;
    if (!x || !y || *x != *y) out.push_back(k);
  }
  return out;
}

json Field(const json& j, const char* key) { return j.is_object() && j.contains(key) ? j[key] : json(); }

}  // namespace

std::string DescribeChange(const std::string& before_text, const std::string& after_text, bool deps_only) {
  json before = json::parse(before_text, nullptr, false);
  json after = json::parse(after_text, nullptr, false);
  if (!before.is_object()) return "the earlier attempt's identity is not recorded";
  if (!after.is_object()) return "";
  std::vector<std::string> parts;
  std::vector<std::string> deps = ChangedKeys(Field(before, "deps"), Field(after, "deps"), deps_only);
  for (const std::string& f : ChangedKeys(Field(before, "files"), Field(after, "files"), deps_only))
    if (std::find(deps.begin(), deps.end(), f) == deps.end()) deps.push_back(f);
  if (!deps.empty()) parts.push_back("deps changed: " + Names(deps));
  if (deps_only) return sluice::Join(parts, "; ");
  if (Field(before, "command") != Field(after, "command") || Field(before, "values") != Field(after, "values"))
    parts.push_back("command changed");
  json bp = Field(before, "plugin"), ap = Field(after, "plugin");
  if (bp != ap) {
    json bv = Field(bp, "version"), av = Field(ap, "version");
    if (bv.is_string() && av.is_string() && bv != av)
      parts.push_back("plugin changed: " + bv.get<std::string>() + " -> " + av.get<std::string>());
    else
      parts.push_back("plugin changed");
  }
  if (auto k = ChangedKeys(Field(before, "params"), Field(after, "params")); !k.empty())
    parts.push_back("with changed: " + Names(k));
  if (auto k = ChangedKeys(Field(before, "env"), Field(after, "env")); !k.empty())
    parts.push_back("env changed: " + Names(k));
  auto input_map = [](const json& list) {
    json m = json::object();
    if (list.is_array())
      for (const json& e : list)
        if (e.is_array() && e.size() == 2 && e[0].is_string()) m[e[0].get<std::string>()].push_back(e[1]);
    return m;
  };
  if (auto k = ChangedKeys(input_map(Field(before, "inputs")), input_map(Field(after, "inputs"))); !k.empty())
    parts.push_back("inputs changed: " + Names(k));
  if (Field(before, "outputs") != Field(after, "outputs")) parts.push_back("declared outputs changed");
  if (Field(before, "secrets") != Field(after, "secrets")) parts.push_back("secrets changed");
  if (Field(before, "workdir") != Field(after, "workdir")) parts.push_back("workdir changed");
  static const std::set<std::string> kKnown = {"step", "workdir", "plugin", "params", "command", "values", "env",
                                               "outputs", "secrets", "inputs", "deps", "files"};
  for (const std::string& k : ChangedKeys(before, after))
    if (!kKnown.count(k)) parts.push_back(k + " changed");
  return sluice::Join(parts, "; ");
}

std::string FormatAge(Millis age) {
  long long total = static_cast<long long>(age.count() / 1000);
  const long long sizes[] = {86400, 3600, 60, 1};
  const char* units[] = {"d", "h", "m", "s"};
  long long parts[4];
  for (int i = 0; i < 4; ++i) {
    parts[i] = total / sizes[i];
    total %= sizes[i];
  }
  int first = 0, last = 3;
  while (first < 3 && parts[first] == 0) ++first;
  while (last > first && parts[last] == 0) --last;
  std::string out;
  for (int i = first; i <= last; ++i) {
    std::string n = std::to_string(parts[i]);
    if (i > first && n.size() < 2) n = "0" + n;
    out += n + units[i];
  }
  return out;
}

}  // namespace sluice::engine
