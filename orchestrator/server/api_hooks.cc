// The API's webhooks: a signed delivery starts a run, its params taken from
// the payload by the spec's `on.webhook.params` (server/api.h).
#include "server/api.h"
#include "server/api_helpers.h"


#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "runs/verbs.h"
#include "server/webhook.h"
#include "spec/expr.h"
#include "store/open.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::server {

using json = nlohmann::json;

using internal::Json;
using internal::NowMs;

namespace {

int Depth(const json& j) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> todo = {{&j, 0}};
  while (!todo.empty() && deepest <= spec::kMaxJsonDepth) {
    auto [at, depth] = todo.back();
    todo.pop_back();
    if (!at->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const json& e : *at) todo.emplace_back(&e, depth + 1);
  }
  return deepest;
}

// `event.*` lookups into a webhook delivery's JSON.
class EventContext : public spec::EvalContext {
 public:
  EventContext(const json& event, std::string event_name) : event_(event), event_name_(std::move(event_name)) {}
  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override {
    if (path[0] == "event_name") return spec::Value::Str(event_name_);
    const json* at = &event_;
    for (size_t i = 1; i < path.size(); ++i) {
      if (at->is_object() && at->contains(path[i])) {
        at = &(*at)[path[i]];
      } else if (at->is_array() && !path[i].empty() && path[i].find_first_not_of("0123456789") == std::string::npos &&
                 std::stoul(path[i]) < at->size()) {
        at = &(*at)[std::stoul(path[i])];
      } else {
        return Status::NotFound("the delivery has no " + Join(std::vector<std::string>(path.begin(), path.begin() + i + 1), "."));
      }
    }
    // Value::FromJson and dump() recurse: a delivery may nest deeper than the stack allows.
    if (Depth(*at) > spec::kMaxJsonDepth)
      return Status::InvalidSpec("the delivery's " + Join(path, ".") + " nests deeper than " +
                                 std::to_string(spec::kMaxJsonDepth) + " levels (the limit)");
    if (at->is_object()) return spec::Value::Str(at->dump());
    return spec::Value::FromJson(*at);
  }
  bool StatusFunction(std::string_view) const override { return true; }

 private:
  const json& event_;
  std::string event_name_;
};

}  // namespace

// --- webhooks ---------------------------------------------------------------

Response Api::Hook(const Request& r, const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e || !e->pipeline || !e->pipeline->webhook) return ErrorResponse(404, "not_found", "no webhook for " + Quote(name));
  const spec::Pipeline& p = *e->pipeline;
  const char* secret = std::getenv(p.webhook->secret_env.c_str());
  if (!secret || !*secret)
    return ErrorResponse(503, "unavailable", "the webhook's secret ($" + p.webhook->secret_env + ") is not set on the server");
  // Standard Webhooks (a signed timestamp) when the sender uses its headers,
  // else GitHub's signature of the body alone.
  std::string delivery;
  int64_t now_ms = NowMs();
  if (!r.Header("webhook-signature").empty() || !r.Header("webhook-id").empty() || !r.Header("webhook-timestamp").empty()) {
    auto key = DecodeStandardSecret(secret);
    if (!key.ok())
      return ErrorResponse(503, "unavailable", "the webhook's secret ($" + p.webhook->secret_env + "): " + key.status().message());
    delivery = r.Header("webhook-id");
    Status sig = VerifyStandardSignature(*key, delivery, r.Header("webhook-timestamp"), r.body, r.Header("webhook-signature"),
                                         now_ms / 1000);
    if (!sig.ok()) return ErrorResponse(401, "unauthenticated", sig.message());
  } else {
    Status sig = VerifySignature(secret, r.body, r.Header("x-hub-signature-256"));
    if (!sig.ok()) return ErrorResponse(401, "unauthenticated", sig.message());
    delivery = r.Header("x-github-delivery");
  }
  if (delivery.size() > 256) return ErrorResponse(400, "bad_request", "the delivery id is over 256 bytes");
  json event = json::parse(r.body, nullptr, false);
  if (event.is_discarded()) return ErrorResponse(400, "bad_request", "the delivery is not JSON");
  // The event's name: GitHub's X-GitHub-Event, else the payload's "type"
  // (Standard Webhooks). GitHub's ping, sent when a hook is added, is
  // answered and starts nothing; so is an event the pipeline does not list.
  std::string event_name = r.Header("x-github-event");
  if (event_name.empty() && event.is_object() && event.contains("type") && event["type"].is_string())
    event_name = event["type"].get<std::string>();
  if (event_name == "ping") return Json(200, {{"ping", true}, {"pipeline", p.name}});
  const auto& wanted = p.webhook->events;
  if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), event_name) == wanted.end())
    return Json(200, {{"ignored", true},
                      {"event", event_name},
                      {"reason", "on.webhook.events of " + p.name + " does not list " + Quote(event_name)}});
  std::vector<std::pair<std::string, std::string>> overrides;
  EventContext ctx(event, event_name);
  for (const auto& [k, t] : p.webhook->params) {
    auto v = spec::EvaluateTemplate(t, ctx);
    if (!v.ok()) return ErrorResponse(400, "invalid_params", "webhook param " + Quote(k) + ": " + v.status().message());
    overrides.emplace_back(k, v->Render());
  }
  auto params = spec::ResolveParams(p, overrides, "by on.webhook.params");
  if (!params.ok()) return ErrorResponse(400, "invalid_params", params.status().message());
  // A replay: the same delivery id, or the same signed body under a new id,
  // within the window. A delivery without an id is known by its body alone.
  std::string body_hash = Sha256Hex(r.body);
  std::string key = delivery.empty() ? "sha256:" + body_hash : delivery;
  auto seen = Access().RecordDelivery(p.name, key, body_hash, now_ms, kReplayWindowSeconds * 1000);
  if (!seen.ok()) return ErrorResponse(500, "internal", seen.status().message());
  if (seen->duplicate) {
    json answer = {{"duplicate", true}, {"delivery", delivery}, {"run", seen->run_id ? json(seen->run_id) : json()}};
    if (seen->same_body)
      answer["reason"] = "the same body was delivered within the last 24 hours" +
                         (seen->earlier_delivery.rfind("sha256:", 0) == 0 ? std::string()
                                                                          : " (delivery " + seen->earlier_delivery + ")");
    return Json(200, answer);
  }
  auto id = launcher_->Start(Runs(), p, *params, "webhook");
  if (!id.ok()) return ErrorResponse(500, "internal", id.status().message());
  Status st = Access().SetDeliveryRun(p.name, key, *id);
  if (!st.ok()) return ErrorResponse(500, "internal", "run " + std::to_string(*id) + " started, but: " + st.message());
  auto row = Runs().GetRun(*id);
  return Json(202, {{"run", *id}, {"delivery", delivery}, {"state", row.ok() ? engine::Name(row->state) : "pending"}});
}

}  // namespace sluice::server
