#include "cli/openlineage.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/progress.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/outbound.h"
#include "util/strings.h"

namespace sluice::cli {

namespace {
constexpr const char* kProducer = "https://github.com/sluice-orchestrator/sluice/tree/v0.1.0";
constexpr const char* kSchemaUrl = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
}  // namespace

OpenLineageHttp::OpenLineageHttp(Options o) : o_(std::move(o)) {
  size_t scheme = o_.url.find("://");
  size_t slash = scheme == std::string::npos ? std::string::npos : o_.url.find('/', scheme + 3);
  if (scheme == std::string::npos || (o_.url.compare(0, 7, "http://") != 0 && o_.url.compare(0, 8, "https://") != 0) ||
      slash == scheme + 3) {
    error_ = Quote(o_.url) + " is not an http:// or https:// URL";
    return;
  }
  scheme_host_port_ = o_.url.substr(0, slash);
  path_ = slash == std::string::npos ? "/" : o_.url.substr(slash);
  host_ = UrlHost(o_.url);
  auto address = CheckOutboundHost(host_, OutboundAllowList());
  if (!address.ok()) {
    error_ = address.status().message();
    return;
  }
  address_ = *address;
  worker_ = std::thread([this] { Work(); });
}

OpenLineageHttp::~OpenLineageHttp() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (dropped_ > 0)
    std::fprintf(stderr, "sluice: %zu OpenLineage events were not delivered to %s (last error: %s)\n", dropped_,
                 o_.url.c_str(), last_error_.c_str());
}

void OpenLineageHttp::Send(std::string event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= o_.max_queue) {
      queue_.pop_front();
      ++dropped_;
      last_error_ = "the queue was full";
    }
    queue_.push_back(std::move(event));
  }
  cv_.notify_one();
}

bool OpenLineageHttp::Post(const std::string& body, std::string* why) {
  httplib::Client client(scheme_host_port_);
  client.set_hostname_addr_map({{host_, address_}});  // the address checked, not a new lookup
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  client.set_write_timeout(5, 0);
  httplib::Headers headers;
  if (!o_.api_key.empty()) headers.emplace("Authorization", "Bearer " + o_.api_key);
  auto r = client.Post(path_, headers, body, "application/json");
  if (!r) {
    *why = httplib::to_string(r.error());
    return false;
  }
  if (r->status >= 200 && r->status < 300) return true;
  *why = "HTTP " + std::to_string(r->status);
  return false;
}

void OpenLineageHttp::Work() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lock(mu_);
  std::optional<Clock::time_point> drain_until;
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_ && !drain_until) drain_until = Clock::now() + std::chrono::milliseconds(int64_t(o_.drain_s * 1000));
    if (queue_.empty()) return;
    if (drain_until && Clock::now() >= *drain_until) {
      dropped_ += queue_.size();
      if (last_error_.empty()) last_error_ = "the run ended before they could be sent";
      return;
    }
    std::string body = queue_.front();
    lock.unlock();
    std::string why;
    bool sent = false;
    double backoff = o_.first_backoff_s;
    for (int attempt = 1; attempt <= o_.attempts && !sent; ++attempt) {
      sent = Post(body, &why);
      // Retry only what may pass later: no answer, 429 and 5xx.
      bool retryable = why.rfind("HTTP ", 0) != 0 || why == "HTTP 429" || why.rfind("HTTP 5", 0) == 0;
      if (sent || !retryable || attempt == o_.attempts) break;
      std::unique_lock<std::mutex> wait(mu_);
      Clock::time_point until = Clock::now() + std::chrono::milliseconds(int64_t(backoff * 1000));
      if (drain_until) until = std::min(until, *drain_until);
      cv_.wait_until(wait, until, [&] { return stopping_ && !drain_until; });
      if (stopping_ && !drain_until) drain_until = Clock::now() + std::chrono::milliseconds(int64_t(o_.drain_s * 1000));
      if (drain_until && Clock::now() >= *drain_until) break;
      backoff *= 2;
    }
    lock.lock();
    queue_.pop_front();
    if (!sent) {
      ++dropped_;
      last_error_ = why;
    }
  }
}

OpenLineageEvents::OpenLineageEvents(const std::string& path, std::unique_ptr<OpenLineageHttp> http,
                                     const std::string& job_namespace, const std::string& pipeline,
                                     const std::string& store_id, store::LineageStore* store, engine::Observer* next)
    : path_(path),
      file_(path.empty() ? nullptr : std::fopen(path.c_str(), "a")),
      http_(std::move(http)),
      namespace_(job_namespace),
      pipeline_(pipeline),
      store_id_(store_id),
      store_(store),
      next_(next) {}

OpenLineageEvents::~OpenLineageEvents() {
  if (file_) std::fclose(file_);
}

// A name-based UUID (version 5 layout) of the store and the attempt id.
std::string OpenLineageEvents::RunId(int64_t attempt_id) const {
  std::string h = Sha256Hex(store_id_ + "/" + std::to_string(attempt_id)).substr(0, 32);
  h[12] = '5';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20, 12);
}

void OpenLineageEvents::OnEvent(const engine::Event& e) {
  if (next_) next_->OnEvent(e);
  bool start = e.kind == engine::Event::Kind::kStarted;
  bool end = e.kind == engine::Event::Kind::kFinished && e.attempt_id != 0;
  if ((!file_ && !http_) || !(start || end)) return;
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
  std::string text = JsonText(ev);
  if (http_) http_->Send(text);
  if (file_) {
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), file_);
  }
}

void OpenLineageEvents::Idle() {
  if (file_) std::fflush(file_);
  if (next_) next_->Idle();
}

}  // namespace sluice::cli
