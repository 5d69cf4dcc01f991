#include "cli/openlineage.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "cli/progress.h"
#include "util/hash.h"

namespace sluice::cli {

namespace {
constexpr const char* kProducer = "https://github.com/sluice-orchestrator/sluice/tree/v0.1.0";
constexpr const char* kSchemaUrl = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
}  // namespace

OpenLineageFile::OpenLineageFile(const std::string& path, const std::string& job_namespace, const std::string& pipeline,
                                 const std::string& store_id, store::Store* store, engine::Observer* next)
    : file_(std::fopen(path.c_str(), "a")),
      namespace_(job_namespace),
      pipeline_(pipeline),
      store_id_(store_id),
      store_(store),
      next_(next) {}

OpenLineageFile::~OpenLineageFile() {
  if (file_) std::fclose(file_);
}

// A name-based UUID (version 5 layout) of the store and the attempt id.
std::string OpenLineageFile::RunId(int64_t attempt_id) const {
  std::string h = Sha256Hex(store_id_ + "/" + std::to_string(attempt_id)).substr(0, 32);
  h[12] = '5';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20, 12);
}

void OpenLineageFile::OnEvent(const engine::Event& e) {
  if (next_) next_->OnEvent(e);
  bool start = e.kind == engine::Event::Kind::kStarted;
  bool end = e.kind == engine::Event::Kind::kFinished && e.attempt_id != 0;
  if (!file_ || !(start || end)) return;
  const char* type = "START";
  if (end) {
    switch (e.state) {
      case engine::StepState::kSucceeded:
      case engine::StepState::kCached: type = "COMPLETE"; break;
      case engine::StepState::kCancelled: type = "ABORT"; break;
      default: type = "FAIL"; break;
    }
  }
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::string job = pipeline_ + "." + e.step;
  if (e.item >= 0) {
    job += '[';
    job += std::to_string(e.item);
    job += ']';
  }
  nlohmann::json ev = {{"eventType", type},
                       {"eventTime", IsoTime(now)},
                       {"producer", kProducer},
                       {"schemaURL", kSchemaUrl},
                       {"run", {{"runId", RunId(e.attempt_id)}}},
                       {"job", {{"namespace", namespace_}, {"name", job}}},
                       {"inputs", nlohmann::json::array()},
                       {"outputs", nlohmann::json::array()}};
  auto edges = store_->AttemptEdges(e.attempt_id);
  if (edges.ok())
    for (const engine::LineageEdge& edge : *edges) {
      bool input = edge.role == engine::LineageEdge::Role::kConsumed;
      if (!input && !end) continue;
      ev[input ? "inputs" : "outputs"].push_back({{"namespace", "file"}, {"name", edge.artifact.uri}});
    }
  std::string line = ev.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
}

void OpenLineageFile::Idle() {
  if (file_) std::fflush(file_);
  if (next_) next_->Idle();
}

}  // namespace sluice::cli
