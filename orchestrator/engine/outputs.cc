#include "engine/outputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "util/strings.h"

namespace sluice::engine {

Result<Outputs> ParseOutputs(const std::string& text) {
  Outputs out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  auto set = [&](const std::string& key, std::string value, int at) -> Status {
    if (!IsIdentifier(key))
      return Status::StepFailed("$SLUICE_OUTPUT line " + std::to_string(at) + ": output name " + Quote(key) +
                                " must match [A-Za-z_][A-Za-z0-9_-]*");
    if (out.count(key))
      return Status::StepFailed("$SLUICE_OUTPUT line " + std::to_string(at) + ": output '" + key + "' is set twice");
    out[key] = spec::Value::Str(std::move(value));
    return Status::Ok();
  };
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t eq = line.find('=');
    size_t heredoc = line.find("<<");
    if (heredoc != std::string::npos && (eq == std::string::npos || heredoc < eq)) {
      std::string key = line.substr(0, heredoc);
      std::string delim = line.substr(heredoc + 2);
      if (delim.empty())
        return Status::StepFailed("$SLUICE_OUTPUT line " + std::to_string(n) + ": '" + key + "<<' needs a delimiter");
      int start = n;
      std::string value, body;
      bool closed = false;
      bool first = true;
      while (std::getline(in, body)) {
        ++n;
        if (!body.empty() && body.back() == '\r') body.pop_back();
        if (body == delim) {
          closed = true;
          break;
        }
        if (!first) value += '\n';
        value += body;
        first = false;
      }
      if (!closed)
        return Status::StepFailed("$SLUICE_OUTPUT line " + std::to_string(start) + ": no closing '" + delim + "' line");
      Status s = set(key, std::move(value), start);
      if (!s.ok()) return s;
      continue;
    }
    if (eq == std::string::npos)
      return Status::StepFailed("$SLUICE_OUTPUT line " + std::to_string(n) + ": " + Quote(line.substr(0, 60)) +
                                " is not key=value or key<<DELIMITER");
    Status s = set(line.substr(0, eq), line.substr(eq + 1), n);
    if (!s.ok()) return s;
  }
  return out;
}

Status CheckOutputs(const Outputs& outputs) {
  for (const auto& [key, value] : outputs) {
    if (value.is_string() && !IsUtf8(value.as_string()))
      return Status::StepFailed("output '" + key + "' is not UTF-8 text; write binary data to a file and declare that " +
                                "as an output (outputs: {" + key + ": file})");
    size_t size = value.is_string() ? value.as_string().size() : value.Render().size();
    if (size > kMaxOutputValue)
      return Status::StepFailed("output '" + key + "' is " + std::to_string(size) + " bytes, over the limit of " +
                                std::to_string(kMaxOutputValue) + "; write it to a file and declare that as an output " +
                                "(outputs: {" + key + ": file})");
  }
  return Status::Ok();
}

Result<Outputs> ReadOutputs(const std::string& path, Env& env) {
  int64_t size = 0;
  auto text = env.ReadFile(path, kMaxOutputFile, &size);
  if (!text.ok() && text.status().code() == Code::kNotFound) return Outputs{};  // the step set no outputs
  if (!text.ok()) return text.status();
  if (static_cast<uint64_t>(size) > kMaxOutputFile)
    return Status::StepFailed("$SLUICE_OUTPUT is " + std::to_string(size) + " bytes, over the limit of " +
                              std::to_string(kMaxOutputFile) + "; write large values to files and declare them as " +
                              "outputs (outputs: {name: file})");
  auto outputs = ParseOutputs(*text);
  if (!outputs.ok()) return outputs;
  if (Status st = CheckOutputs(*outputs); !st.ok()) return st;
  return outputs;
}

Result<Outputs> ReadOutputs(const std::string& path) {
  RealEnv env;
  return ReadOutputs(path, env);
}

}  // namespace sluice::engine
