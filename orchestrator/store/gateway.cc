#include "store/gateway.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

namespace sluice::store {

namespace {

GatewayRecord RecordFromRow(Query& q) {
  GatewayRecord g;
  g.pid = q.Int(0);
  g.start_time = q.Int(1);
  g.listen = q.Text(2);
  g.port = static_cast<int>(q.Int(3));
  g.mode = q.Text(4);
  g.log_path = q.Text(5);
  g.started_ms = q.Int(6);
  g.heartbeat_ms = q.Int(7);
  g.stop_requested = q.Int(8) != 0;
  return g;
}

// The merge of two windows' JSON objects of counts (codes, classes,
// payload) by MergeCounts: empty (NULL) on either side takes the other.
Status MergeJsonText(const std::string& old, std::string* text, const char* what) {
  if (old.empty()) return Status::Ok();
  if (text->empty()) {
    *text = old;
    return Status::Ok();
  }
  nlohmann::json into = nlohmann::json::parse(*text, nullptr, false);
  nlohmann::json from = nlohmann::json::parse(old, nullptr, false);
  if (!into.is_object() || !from.is_object())
    return Status::Internal(std::string("a window's ") + what + " is not a JSON object");
  MergeCounts(from, &into);
  *text = into.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return Status::Ok();
}

// Adds `old`'s counts into *w (the same service, version, role and start).
Status MergeWindow(const WindowRow& old, WindowRow* w) {
  if (old.latency_bounds != w->latency_bounds)
    return Status::Incompatible("latency bounds " + old.latency_bounds + " and " + w->latency_bounds + " differ");
  if (Status st = MergeJsonText(old.codes, &w->codes, "codes"); !st.ok()) return st;
  nlohmann::json latency = nlohmann::json::parse(w->latency, nullptr, false);
  nlohmann::json old_latency = nlohmann::json::parse(old.latency, nullptr, false);
  if (!latency.is_array() || !old_latency.is_array() || latency.size() != old_latency.size())
    return Status::Internal("a window's latency is not what the gateway writes");
  auto count = [](const nlohmann::json& n) { return n.is_number_integer() ? n.get<int64_t>() : int64_t{0}; };
  for (size_t i = 0; i < latency.size(); ++i) latency[i] = count(latency[i]) + count(old_latency[i]);
  w->latency = latency.dump();
  w->requests += old.requests;
  w->errors += old.errors;
  w->latency_sum_us += old.latency_sum_us;
  w->latency_max_us = std::max(w->latency_max_us, old.latency_max_us);
  w->retried += old.retried;
  w->rerouted += old.rerouted;
  w->cache_hits += old.cache_hits;
  w->mirror_dropped += old.mirror_dropped;
  w->mirror_compared += old.mirror_compared;
  w->mirror_agreed += old.mirror_agreed;
  if (Status st = MergeJsonText(old.classes, &w->classes, "classes"); !st.ok()) return st;
  return MergeJsonText(old.payload, &w->payload, "payload");
}

nlohmann::json MergeNumber(const std::string& key, const nlohmann::json& from, const nlohmann::json& into) {
  if (!from.is_number() || !into.is_number()) return into;
  if (from.is_number_integer() && into.is_number_integer()) {
    int64_t a = from.get<int64_t>(), b = into.get<int64_t>();
    if (key == "min") return std::min(a, b);
    if (key == "max" || key == "width") return std::max(a, b);
    return a + b;
  }
  double a = from.get<double>(), b = into.get<double>();
  if (key == "min") return std::min(a, b);
  if (key == "max" || key == "width") return std::max(a, b);
  return a + b;
}

}  // namespace

void MergeCounts(const nlohmann::json& from, nlohmann::json* into) {
  if (!from.is_object() || !into->is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& f = it.value();
    if (!into->contains(key)) {
      (*into)[key] = f;
      continue;
    }
    nlohmann::json& t = (*into)[key];
    if (f.is_object() && t.is_object()) {
      MergeCounts(f, &t);
    } else if (f.is_number() && t.is_number()) {
      t = MergeNumber(key, f, t);
    } else if (f.is_array() && t.is_array()) {
      for (size_t i = 0; i < f.size(); ++i) {
        if (i < t.size()) t[i] = MergeNumber(key, f[i], t[i]);
        else t.push_back(f[i]);
      }
    }
  }
}

Result<std::optional<GatewayRecord>> GatewayStore::Read() {
  Query q = db_.Prepare(
      "SELECT IFNULL(pid, 0), IFNULL(start_time, 0), IFNULL(listen, ''), IFNULL(port, 0), IFNULL(mode, ''), "
      "IFNULL(log_path, ''), IFNULL(started_ms, 0), IFNULL(heartbeat_ms, 0), stop_requested FROM gateway WHERE id = 1");
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<GatewayRecord>();
  if (rc != SQLITE_ROW) return db_.Error("read the gateway");
  return std::optional<GatewayRecord>(RecordFromRow(q));
}

Result<std::optional<GatewayRecord>> GatewayStore::Claim(
    const GatewayRecord& me, const std::function<bool(int64_t pid, int64_t start_time)>& alive) {
  std::optional<GatewayRecord> holder;
  Status st = db_.Transaction("Claim", [&]() -> Status {
    auto current = Read();
    if (!current.ok()) return current.status();
    if (*current && (*current)->pid > 0 && alive((*current)->pid, (*current)->start_time)) {
      holder = **current;
      return Status::Ok();
    }
    Query q = db_.Prepare(
        "INSERT OR REPLACE INTO gateway(id, pid, start_time, listen, port, mode, log_path, started_ms, heartbeat_ms, "
        "stop_requested, handoff_to) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL)");
    q.Bind(1, me.pid).Bind(2, me.start_time).Bind(3, me.listen).Bind(4, me.port).Bind(5, me.mode);
    q.Bind(6, me.log_path).Bind(7, me.started_ms).Bind(8, me.heartbeat_ms);
    if (q.Step() != SQLITE_DONE) return db_.Error("claim the gateway");
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return holder;
}

Status GatewayStore::Release(int64_t pid) {
  return db_.Transaction("Release", [&]() -> Status {
    Query q = db_.Prepare("DELETE FROM gateway WHERE id = 1 AND pid = ?");
    q.Bind(1, pid);
    return q.Step() == SQLITE_DONE ? Status::Ok() : db_.Error("release the gateway");
  });
}

Status GatewayStore::RequestStop() {
  return db_.Transaction("RequestStop", [&]() -> Status {
    Query q = db_.Prepare("UPDATE gateway SET stop_requested = 1 WHERE id = 1");
    if (q.Step() != SQLITE_DONE) return db_.Error("ask the gateway to stop");
    if (db_.Changes() == 0) return Status::NotFound("no gateway serves this store");
    return Status::Ok();
  });
}

Status GatewayStore::AppendWindows(const std::vector<WindowRow>& windows, int64_t pid, int64_t now_ms) {
  return db_.Transaction("AppendWindows", [&]() -> Status {
    for (const WindowRow& fresh : windows) {
      // A window is normally flushed once; a row already there (a gateway
      // restarted within the window) is merged with, count by count.
      WindowRow w = fresh;
      auto old = Windows(w.service, w.version, w.role, w.start_ms, w.start_ms + 1);
      if (!old.ok()) return old.status();
      if (!old->empty()) {
        Status merged = MergeWindow(old->front(), &w);
        if (!merged.ok()) return merged.WithContext("merge a window of service " + w.service);
      }
      Query q = db_.Prepare(
          "INSERT OR REPLACE INTO service_windows(service, version, role, start_ms, requests, errors, codes, "
          "latency_bounds, latency, latency_sum_us, latency_max_us, retried, rerouted, cache_hits, mirror_dropped, "
          "mirror_compared, mirror_agreed, classes, payload) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      q.Bind(1, w.service).Bind(2, w.version).Bind(3, w.role).Bind(4, w.start_ms).Bind(5, w.requests);
      q.Bind(6, w.errors).Bind(7, w.codes).Bind(8, w.latency_bounds).Bind(9, w.latency).Bind(10, w.latency_sum_us);
      q.Bind(11, w.latency_max_us).Bind(12, w.retried).Bind(13, w.rerouted).Bind(14, w.cache_hits);
      q.Bind(15, w.mirror_dropped).Bind(16, w.mirror_compared).Bind(17, w.mirror_agreed);
      if (w.classes.empty()) q.BindNull(18);
      else q.Bind(18, w.classes);
      if (w.payload.empty()) q.BindNull(19);
      else q.Bind(19, w.payload);
      if (q.Step() != SQLITE_DONE) return db_.Error("write a window of service " + w.service);
    }
    Query q = db_.Prepare("UPDATE gateway SET heartbeat_ms = ? WHERE id = 1 AND pid = ?");
    q.Bind(1, now_ms).Bind(2, pid);
    return q.Step() == SQLITE_DONE ? Status::Ok() : db_.Error("beat the gateway's heart");
  });
}

Result<std::vector<WindowRow>> GatewayStore::Windows(const std::string& service, const std::string& version,
                                                     const std::string& role, int64_t from_ms, int64_t to_ms) {
  Query q = db_.Prepare(
      "SELECT service, version, role, start_ms, requests, errors, codes, latency_bounds, latency, latency_sum_us, "
      "latency_max_us, retried, rerouted, cache_hits, mirror_dropped, mirror_compared, mirror_agreed, "
      "IFNULL(classes, ''), IFNULL(payload, '') FROM service_windows WHERE service = ?1 AND (?2 = '' OR version = ?2) AND (?3 = '' OR role = ?3) "
      "AND start_ms >= ?4 AND start_ms < ?5 ORDER BY start_ms, version, role");
  q.Bind(1, service).Bind(2, version).Bind(3, role).Bind(4, from_ms).Bind(5, to_ms);
  std::vector<WindowRow> out;
  Status st = q.ForEachRow("read the windows of service " + service, [&] {
    WindowRow w;
    w.service = q.Text(0);
    w.version = q.Text(1);
    w.role = q.Text(2);
    w.start_ms = q.Int(3);
    w.requests = q.Int(4);
    w.errors = q.Int(5);
    w.codes = q.Text(6);
    w.latency_bounds = q.Text(7);
    w.latency = q.Text(8);
    w.latency_sum_us = q.Int(9);
    w.latency_max_us = q.Int(10);
    w.retried = q.Int(11);
    w.rerouted = q.Int(12);
    w.cache_hits = q.Int(13);
    w.mirror_dropped = q.Int(14);
    w.mirror_compared = q.Int(15);
    w.mirror_agreed = q.Int(16);
    w.classes = q.Text(17);
    w.payload = q.Text(18);
    out.push_back(std::move(w));
  });
  if (!st.ok()) return st;
  return out;
}

Status GatewayStore::PruneWindows(int64_t before_ms) {
  return db_.Transaction("PruneWindows", [&]() -> Status {
    Query q = db_.Prepare("DELETE FROM service_windows WHERE start_ms < ?");
    q.Bind(1, before_ms);
    return q.Step() == SQLITE_DONE ? Status::Ok() : db_.Error("prune old windows");
  });
}

Status GatewayStore::MarkRemoved(const std::string& service, const std::string& version, int64_t now_ms) {
  return db_.Transaction("MarkRemoved", [&]() -> Status {
    Query q = db_.Prepare(
        "UPDATE service_versions SET state = 'removed', updated_ms = ? "
        "WHERE service = ? AND version = ? AND state = 'removing'");
    q.Bind(1, now_ms).Bind(2, service).Bind(3, version);
    return q.Step() == SQLITE_DONE ? Status::Ok() : db_.Error("mark version " + version + " of " + service + " removed");
  });
}

}  // namespace sluice::store
