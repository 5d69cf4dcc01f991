#include "store/services.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "util/strings.h"

namespace sluice::store {

namespace {

// An optional text column: empty is NULL.
void BindOptional(Query& q, int i, const std::string& v) {
  if (v.empty()) q.BindNull(i);
  else q.Bind(i, v);
}

// Whether a version's replicas must be replaced to go from `a` to `b`.
bool WhatRunsDiffers(const ServiceVersionState& a, const ServiceVersionState& b) {
  return a.kind != b.kind || a.model_ref != b.model_ref || a.artifact != b.artifact || a.uri != b.uri ||
         a.command != b.command || a.env != b.env || a.workdir != b.workdir || a.port_env != b.port_env ||
         a.options != b.options;
}

constexpr const char* kServiceColumns =
    "name, spec, spec_hash, IFNULL(sticky_header, ''), IFNULL(sticky_field, ''), IFNULL(sticky_salt, ''), "
    "IFNULL(mirror_version, ''), mirror_bp, IFNULL(infer_token_hash, ''), IFNULL(traffic_owner, ''), generation, "
    "created_ms, updated_ms";

ServiceState ServiceFromRow(Query& q) {
  ServiceState s;
  s.name = q.Text(0);
  s.spec = q.Text(1);
  s.spec_hash = q.Text(2);
  s.sticky_header = q.Text(3);
  s.sticky_field = q.Text(4);
  s.sticky_salt = q.Text(5);
  s.mirror_version = q.Text(6);
  s.mirror_bp = static_cast<int>(q.Int(7));
  s.infer_token_hash = q.Text(8);
  s.traffic_owner = q.Text(9);
  s.generation = q.Int(10);
  s.created_ms = q.Int(11);
  s.updated_ms = q.Int(12);
  return s;
}

// Basis points as a percent for messages: 9000 -> "90", 1250 -> "12.5".
std::string Percent(int bp) {
  char text[32];
  if (bp % 100 == 0) std::snprintf(text, sizeof text, "%d", bp / 100);
  else if (bp % 10 == 0) std::snprintf(text, sizeof text, "%d.%d", bp / 100, (bp % 100) / 10);
  else std::snprintf(text, sizeof text, "%d.%02d", bp / 100, bp % 100);
  return text;
}

}  // namespace

Result<int64_t> ServicesStore::AppendChange(const std::string& service, const std::string& kind,
                                            const std::string& actor, const std::string& reason,
                                            const std::string& before, const std::string& after, int64_t now_ms) {
  Query q = db_.Prepare(
      "INSERT INTO service_changes(service, at_ms, kind, actor, reason, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)");
  q.Bind(1, service).Bind(2, now_ms).Bind(3, kind).Bind(4, actor).Bind(5, reason);
  BindOptional(q, 6, before);
  BindOptional(q, 7, after);
  if (q.Step() != SQLITE_DONE) return db_.Error("record a change of service " + service);
  return db_.LastInsertId();
}

Status ServicesStore::ReadVersions(ServiceState& s) {
  Query q = db_.Prepare(
      "SELECT version, kind, IFNULL(model_ref, ''), IFNULL(model_name, ''), IFNULL(model_version, 0), "
      "IFNULL(artifact, ''), IFNULL(uri, ''), IFNULL(command, ''), IFNULL(env, ''), IFNULL(workdir, ''), "
      "IFNULL(port_env, ''), options, replicas, weight_bp, ordinal, revision, state "
      "FROM service_versions WHERE service = ? AND state != 'removed' ORDER BY ordinal");
  q.Bind(1, s.name);
  s.versions.clear();
  return q.ForEachRow("read the versions of service " + s.name, [&] {
    ServiceVersionState v;
    v.name = q.Text(0);
    v.kind = q.Text(1);
    v.model_ref = q.Text(2);
    v.model_name = q.Text(3);
    v.model_version = static_cast<int>(q.Int(4));
    v.artifact = q.Text(5);
    v.uri = q.Text(6);
    v.command = q.Text(7);
    v.env = q.Text(8);
    v.workdir = q.Text(9);
    v.port_env = q.Text(10);
    v.options = q.Text(11);
    v.replicas = static_cast<int>(q.Int(12));
    v.weight_bp = static_cast<int>(q.Int(13));
    v.ordinal = static_cast<int>(q.Int(14));
    v.revision = static_cast<int>(q.Int(15));
    v.state = q.Text(16);
    s.versions.push_back(std::move(v));
  });
}

// REQUIRES: inside Apply's transaction, the services row written.
Status ServicesStore::ApplyVersions(const ServiceState& desired, int64_t now_ms) {
  const std::string& service = desired.name;
  // Every version ever applied, removed ones included: a name keeps its
  // ordinal, so the sticky buckets of the others do not move.
  struct Old {
    ServiceVersionState v;
    bool removed = false;
  };
  std::vector<Old> old;
  int next_ordinal = 0;
  {
    Query q = db_.Prepare(
        "SELECT version, kind, IFNULL(model_ref, ''), IFNULL(artifact, ''), IFNULL(uri, ''), IFNULL(command, ''), "
        "IFNULL(env, ''), IFNULL(workdir, ''), IFNULL(port_env, ''), options, weight_bp, ordinal, revision, state "
        "FROM service_versions WHERE service = ?");
    q.Bind(1, service);
    Status st = q.ForEachRow("read the versions of service " + service, [&] {
      Old o;
      o.v.name = q.Text(0);
      o.v.kind = q.Text(1);
      o.v.model_ref = q.Text(2);
      o.v.artifact = q.Text(3);
      o.v.uri = q.Text(4);
      o.v.command = q.Text(5);
      o.v.env = q.Text(6);
      o.v.workdir = q.Text(7);
      o.v.port_env = q.Text(8);
      o.v.options = q.Text(9);
      o.v.weight_bp = static_cast<int>(q.Int(10));
      o.v.ordinal = static_cast<int>(q.Int(11));
      o.v.revision = static_cast<int>(q.Int(12));
      o.removed = q.Text(13) == "removed";
      next_ordinal = std::max(next_ordinal, o.v.ordinal + 1);
      old.push_back(std::move(o));
    });
    if (!st.ok()) return st;
  }
  auto find_old = [&](const std::string& name) -> const Old* {
    for (const Old& o : old)
      if (o.v.name == name) return &o;
    return nullptr;
  };
  for (const ServiceVersionState& v : desired.versions) {
    const Old* o = find_old(v.name);
    int ordinal = o ? o->v.ordinal : next_ordinal++;
    int revision = !o ? 1 : (o->removed || WhatRunsDiffers(o->v, v)) ? o->v.revision + 1 : o->v.revision;
    int weight = desired.keep_weights ? (o && !o->removed ? o->v.weight_bp : 0) : v.weight_bp;
    Query q = db_.Prepare(
        "INSERT INTO service_versions(service, version, ordinal, kind, model_ref, model_name, model_version, "
        "artifact, uri, command, env, workdir, port_env, options, replicas, weight_bp, revision, state, "
        "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
        "'active', ?18, ?18) ON CONFLICT (service, version) DO UPDATE SET kind = ?4, model_ref = ?5, "
        "model_name = ?6, model_version = ?7, artifact = ?8, uri = ?9, command = ?10, env = ?11, workdir = ?12, "
        "port_env = ?13, options = ?14, replicas = ?15, weight_bp = ?16, revision = ?17, state = 'active', "
        "updated_ms = ?18");
    q.Bind(1, service).Bind(2, v.name).Bind(3, ordinal).Bind(4, v.kind);
    BindOptional(q, 5, v.model_ref);
    BindOptional(q, 6, v.model_name);
    if (v.model_version > 0) q.Bind(7, v.model_version);
    else q.BindNull(7);
    BindOptional(q, 8, v.artifact);
    BindOptional(q, 9, v.uri);
    BindOptional(q, 10, v.command);
    BindOptional(q, 11, v.env);
    BindOptional(q, 12, v.workdir);
    BindOptional(q, 13, v.port_env);
    q.Bind(14, v.options.empty() ? std::string("{}") : v.options).Bind(15, v.replicas).Bind(16, weight);
    q.Bind(17, revision).Bind(18, now_ms);
    if (q.Step() != SQLITE_DONE) return db_.Error("write version " + v.name + " of service " + service);
  }
  for (const Old& o : old) {
    if (o.removed) continue;
    bool kept = false;
    for (const ServiceVersionState& v : desired.versions) kept = kept || v.name == o.v.name;
    if (kept) continue;
    Query q = db_.Prepare(
        "UPDATE service_versions SET state = 'removing', weight_bp = 0, updated_ms = ? "
        "WHERE service = ? AND version = ? AND state = 'active'");
    q.Bind(1, now_ms).Bind(2, service).Bind(3, o.v.name);
    if (q.Step() != SQLITE_DONE) return db_.Error("remove version " + o.v.name + " of service " + service);
  }
  return Status::Ok();
}

Result<ApplyOutcome> ServicesStore::Apply(const ServiceState& desired, const std::string& actor,
                                          const std::string& reason, int64_t now_ms) {
  ApplyOutcome out;
  Status st = db_.Transaction("Apply", [&]() -> Status {
    std::string before;
    bool deleted = false;
    int64_t generation = 0, created_ms = now_ms;
    {
      Query q = db_.Prepare(
          "SELECT spec, spec_hash, generation, created_ms, deleted_ms IS NOT NULL, IFNULL(traffic_owner, '') "
          "FROM services WHERE name = ?");
      q.Bind(1, desired.name);
      int rc = q.Step();
      if (rc == SQLITE_ROW) {
        deleted = q.Int(4) != 0;
        generation = q.Int(2);
        if (!deleted) {
          before = q.Text(0);
          created_ms = q.Int(3);
          std::string owner = q.Text(5);
          if (!owner.empty() && owner != actor)
            return Status::Incompatible("service '" + desired.name + "' is being deployed by " + owner +
                                        "; wait for it, or abort it: sluice services abort " + desired.name);
          if (q.Text(1) == desired.spec_hash) {
            out.generation = generation;
            return Status::Ok();  // the same document: nothing to record
          }
        }
      } else if (rc != SQLITE_DONE) {
        return db_.Error("read service " + desired.name);
      }
    }
    Query q = db_.Prepare(
        "INSERT INTO services(name, spec, spec_hash, sticky_header, sticky_field, sticky_salt, mirror_version, "
        "mirror_bp, infer_token_hash, generation, created_ms, updated_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (name) DO UPDATE SET spec = ?2, "
        "spec_hash = ?3, sticky_header = ?4, sticky_field = ?5, sticky_salt = ?6, mirror_version = ?7, "
        "mirror_bp = ?8, infer_token_hash = ?9, generation = ?10, created_ms = ?11, updated_ms = ?12, "
        "deleted_ms = NULL");
    q.Bind(1, desired.name).Bind(2, desired.spec).Bind(3, desired.spec_hash);
    BindOptional(q, 4, desired.sticky_header);
    BindOptional(q, 5, desired.sticky_field);
    BindOptional(q, 6, desired.sticky_salt);
    BindOptional(q, 7, desired.mirror_version);
    q.Bind(8, desired.mirror_bp);
    BindOptional(q, 9, desired.infer_token_hash);
    q.Bind(10, generation + 1).Bind(11, created_ms).Bind(12, now_ms);
    if (q.Step() != SQLITE_DONE) return db_.Error("write service " + desired.name);
    if (Status vs = ApplyVersions(desired, now_ms); !vs.ok()) return vs;
    auto id = AppendChange(desired.name, "apply", actor, reason, before, desired.spec, now_ms);
    if (!id.ok()) return id.status();
    out.changed = true;
    out.change_id = *id;
    out.generation = generation + 1;
    return Status::Ok();
  });
  if (!st.ok()) return st.WithContext("apply service " + desired.name);
  return out;
}

Status ServicesStore::Delete(const std::string& name, const std::string& actor, const std::string& reason,
                             int64_t now_ms) {
  return db_.Transaction("Delete", [&]() -> Status {
    std::string before;
    {
      Query q = db_.Prepare("SELECT spec, IFNULL(traffic_owner, '') FROM services WHERE name = ? AND deleted_ms IS NULL");
      q.Bind(1, name);
      int rc = q.Step();
      if (rc == SQLITE_DONE) return Status::NotFound("no service '" + name + "'");
      if (rc != SQLITE_ROW) return db_.Error("read service " + name);
      before = q.Text(0);
      if (!q.Text(1).empty())
        return Status::Incompatible("service '" + name + "' is being deployed by " + q.Text(1) +
                                    "; wait for it, or abort it: sluice services abort " + name);
    }
    {
      Query q = db_.Prepare(
          "UPDATE services SET deleted_ms = ?1, updated_ms = ?1, generation = generation + 1, traffic_owner = NULL "
          "WHERE name = ?2");
      q.Bind(1, now_ms).Bind(2, name);
      if (q.Step() != SQLITE_DONE) return db_.Error("delete service " + name);
    }
    {
      Query q = db_.Prepare(
          "UPDATE service_versions SET state = 'removing', weight_bp = 0, updated_ms = ? "
          "WHERE service = ? AND state = 'active'");
      q.Bind(1, now_ms).Bind(2, name);
      if (q.Step() != SQLITE_DONE) return db_.Error("remove the versions of service " + name);
    }
    auto id = AppendChange(name, "delete", actor, reason, before, "", now_ms);
    return id.ok() ? Status::Ok() : id.status();
  });
}

Result<ApplyOutcome> ServicesStore::SetTraffic(const std::string& name, const TrafficChange& change,
                                          const std::string& actor, const std::string& reason, int64_t now_ms) {
  using nlohmann::json;
  ApplyOutcome out;
  Status st = db_.Transaction("SetTraffic", [&]() -> Status {
    // Read inside the transaction, so the checks and the write see one state.
    ServiceState live;
    {
      Query q = db_.Prepare(
          "SELECT IFNULL(mirror_version, ''), mirror_bp, IFNULL(traffic_owner, ''), generation FROM services "
          "WHERE name = ? AND deleted_ms IS NULL");
      q.Bind(1, name);
      int rc = q.Step();
      if (rc == SQLITE_DONE) return Status::NotFound("no service '" + name + "'");
      if (rc != SQLITE_ROW) return db_.Error("read service " + name);
      live.name = name;
      live.mirror_version = q.Text(0);
      live.mirror_bp = static_cast<int>(q.Int(1));
      live.traffic_owner = q.Text(2);
      live.generation = q.Int(3);
    }
    if (change.expected_generation != 0 && change.expected_generation != live.generation)
      return Status::Incompatible("service '" + name + "' is at generation " + std::to_string(live.generation) +
                                  ", not the expected " + std::to_string(change.expected_generation) +
                                  " (it changed since it was read)");
    if (!live.traffic_owner.empty() && live.traffic_owner != change.owner)
      return Status::Incompatible("the weights of service '" + name + "' are driven by " + live.traffic_owner +
                                  (change.owner.empty() ? "" : ", not " + change.owner));
    if (Status rs = ReadVersions(live); !rs.ok()) return rs;
    std::vector<std::string> problems, active;
    for (const ServiceVersionState& v : live.versions)
      if (v.state == "active") active.push_back(v.name);
    auto find_active = [&](const std::string& version) -> const ServiceVersionState* {
      for (const ServiceVersionState& v : live.versions)
        if (v.name == version && v.state == "active") return &v;
      return nullptr;
    };
    std::map<std::string, int> weights;  // every active version: named or 0
    for (const std::string& v : active) weights[v] = 0;
    std::set<std::string> named;
    int sum = 0;
    for (const auto& [version, bp] : change.weights_bp) {
      const ServiceVersionState* v = find_active(version);
      if (!v) {
        problems.push_back("traffic: " + Quote(version) + " is not an active version of service '" + name +
                           "' (versions: " + Join(active, ", ") + ")" + DidYouMean(version, active));
        continue;
      }
      if (!named.insert(version).second) {
        problems.push_back("traffic: " + Quote(version) + " is named twice");
        continue;
      }
      if (bp < 0 || bp > 10'000) {
        problems.push_back("traffic." + version + ": weight must be from 0 to 100");
        continue;
      }
      if (bp > 0 && v->replicas == 0)
        problems.push_back("traffic." + version + ": 0 replicas cannot take weight " + Percent(bp));
      weights[version] = bp;
      sum += bp;
    }
    if (problems.empty() && sum != 10'000)
      problems.push_back("traffic: weights add up to " + Percent(sum) + ", not 100");
    std::string mirror_version = change.set_mirror ? change.mirror_version : live.mirror_version;
    int mirror_bp = change.set_mirror ? (change.mirror_version.empty() ? 0 : change.mirror_bp) : live.mirror_bp;
    if (!mirror_version.empty()) {
      const ServiceVersionState* target = find_active(mirror_version);
      if (!target)
        problems.push_back("mirror.version: " + Quote(mirror_version) + " is not an active version of service '" +
                           name + "'" + DidYouMean(mirror_version, active));
      else if (weights[mirror_version] > 0)
        problems.push_back("mirror.version: " + Quote(mirror_version) + " has weight " +
                           Percent(weights[mirror_version]) + "; a mirrored version takes no live traffic");
      else if (target->replicas == 0)
        problems.push_back("mirror.version: " + Quote(mirror_version) + " has 0 replicas; a mirror needs at least 1");
      if (mirror_bp <= 0 || mirror_bp > 10'000)
        problems.push_back("mirror.percent: must be more than 0 and at most 100");
    }
    if (!problems.empty()) return Status::InvalidSpec(Join(problems, "\n"));

    auto snapshot = [](const std::map<std::string, int>& w, const std::string& mv, int mbp) {
      json j = {{"traffic", json::object()}, {"mirror", nullptr}};
      for (const auto& [version, bp] : w) j["traffic"][version] = bp;
      if (!mv.empty()) j["mirror"] = {{"version", mv}, {"bp", mbp}};
      return j.dump();
    };
    std::map<std::string, int> before_weights;
    for (const ServiceVersionState& v : live.versions)
      if (v.state == "active") before_weights[v.name] = v.weight_bp;
    for (const auto& [version, bp] : weights) {
      Query q = db_.Prepare(
          "UPDATE service_versions SET weight_bp = ?1, updated_ms = ?2 WHERE service = ?3 AND version = ?4 "
          "AND weight_bp != ?1");
      q.Bind(1, bp).Bind(2, now_ms).Bind(3, name).Bind(4, version);
      if (q.Step() != SQLITE_DONE) return db_.Error("set the weight of version " + version + " of service " + name);
    }
    {
      Query q = db_.Prepare(
          "UPDATE services SET mirror_version = ?1, mirror_bp = ?2, generation = generation + 1, updated_ms = ?3 "
          "WHERE name = ?4");
      BindOptional(q, 1, mirror_version);
      q.Bind(2, mirror_bp).Bind(3, now_ms).Bind(4, name);
      if (q.Step() != SQLITE_DONE) return db_.Error("set the traffic of service " + name);
    }
    auto id = AppendChange(name, "traffic", actor, reason, snapshot(before_weights, live.mirror_version, live.mirror_bp),
                           snapshot(weights, mirror_version, mirror_bp), now_ms);
    if (!id.ok()) return id.status();
    out.changed = true;
    out.change_id = *id;
    out.generation = live.generation + 1;
    return Status::Ok();
  });
  // The refusals speak for themselves (the API shows them as they are).
  if (st.code() == Code::kIoError || st.code() == Code::kInternal)
    return st.WithContext("set the traffic of service " + name);
  if (!st.ok()) return st;
  return out;
}

Result<ServiceState> ServicesStore::Get(const std::string& name) {
  static const std::string sql =
      std::string("SELECT ") + kServiceColumns + " FROM services WHERE name = ? AND deleted_ms IS NULL";
  ServiceState s;
  {
    Query q = db_.Prepare(sql.c_str());
    q.Bind(1, name);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("no service '" + name + "'");
    if (rc != SQLITE_ROW) return db_.Error("read service " + name);
    s = ServiceFromRow(q);
  }
  if (Status st = ReadVersions(s); !st.ok()) return st;
  return s;
}

Result<std::vector<ServiceState>> ServicesStore::List() {
  static const std::string sql =
      std::string("SELECT ") + kServiceColumns + " FROM services WHERE deleted_ms IS NULL ORDER BY name";
  std::vector<ServiceState> out;
  {
    Query q = db_.Prepare(sql.c_str());
    Status st = q.ForEachRow("list services", [&] { out.push_back(ServiceFromRow(q)); });
    if (!st.ok()) return st;
  }
  for (ServiceState& s : out)
    if (Status st = ReadVersions(s); !st.ok()) return st;
  return out;
}

Result<std::vector<ServiceChange>> ServicesStore::History(const std::string& name, int64_t before_id, int limit) {
  Query q = db_.Prepare(
      "SELECT id, service, at_ms, kind, actor, reason, IFNULL(before, ''), IFNULL(after, '') FROM service_changes "
      "WHERE service = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?");
  q.Bind(1, name).Bind(2, before_id).Bind(3, before_id).Bind(4, limit);
  std::vector<ServiceChange> out;
  Status st = q.ForEachRow("read the history of service " + name, [&] {
    ServiceChange c;
    c.id = q.Int(0);
    c.service = q.Text(1);
    c.at_ms = q.Int(2);
    c.kind = q.Text(3);
    c.actor = q.Text(4);
    c.reason = q.Text(5);
    c.before = q.Text(6);
    c.after = q.Text(7);
    out.push_back(std::move(c));
  });
  if (!st.ok()) return st;
  return out;
}

Status ServicesStore::SetTrafficOwner(const std::string& name, const std::string& owner, const std::string& expected,
                                      const std::string& actor, const std::string& reason, int64_t now_ms) {
  return db_.Transaction("SetTrafficOwner", [&]() -> Status {
    std::string live;
    {
      Query q = db_.Prepare("SELECT IFNULL(traffic_owner, '') FROM services WHERE name = ? AND deleted_ms IS NULL");
      q.Bind(1, name);
      int rc = q.Step();
      if (rc == SQLITE_DONE) return Status::NotFound("no service '" + name + "'");
      if (rc != SQLITE_ROW) return db_.Error("read service " + name);
      live = q.Text(0);
    }
    if (live == owner) return Status::Ok();
    if (live != expected)
      return Status::Incompatible("the weights of service '" + name + "' are driven by " +
                                  (live.empty() ? std::string("anyone") : live) + ", not " +
                                  (expected.empty() ? std::string("anyone") : expected));
    {
      Query q = db_.Prepare("UPDATE services SET traffic_owner = ?, updated_ms = ? WHERE name = ?");
      BindOptional(q, 1, owner);
      q.Bind(2, now_ms).Bind(3, name);
      if (q.Step() != SQLITE_DONE) return db_.Error("set the traffic owner of service " + name);
    }
    nlohmann::json before = {{"traffic_owner", live.empty() ? nlohmann::json() : nlohmann::json(live)}};
    nlohmann::json after = {{"traffic_owner", owner.empty() ? nlohmann::json() : nlohmann::json(owner)}};
    auto id = AppendChange(name, "owner", actor, reason, before.dump(), after.dump(), now_ms);
    return id.ok() ? Status::Ok() : id.status();
  });
}

Result<int64_t> ServicesStore::RecordEvent(const std::string& service, const std::string& kind,
                                           const std::string& reason, int64_t now_ms) {
  int64_t id = 0;
  Status st = db_.Transaction("RecordEvent", [&]() -> Status {
    auto appended = AppendChange(service, kind, "gateway", reason, "", "", now_ms);
    if (!appended.ok()) return appended.status();
    id = *appended;
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return id;
}

Status ServicesStore::PutReplica(const ReplicaRow& r, const std::string& change_reason) {
  std::string what = "replica " + std::to_string(r.slot) + " of version " + r.version + " of service " + r.service;
  return db_.Transaction("PutReplica", [&]() -> Status {
    Query q = db_.Prepare(
        "INSERT OR REPLACE INTO service_replicas(service, version, slot, revision, pid, start_time, port, state, "
        "restarts, last_exit, log_path, started_ms, ready_ms, updated_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    q.Bind(1, r.service).Bind(2, r.version).Bind(3, r.slot).Bind(4, r.revision);
    auto bind_positive = [&](int i, int64_t v) {
      if (v > 0) q.Bind(i, v);
      else q.BindNull(i);
    };
    bind_positive(5, r.pid);
    bind_positive(6, r.start_time);
    bind_positive(7, r.port);
    q.Bind(8, r.state).Bind(9, r.restarts);
    BindOptional(q, 10, r.last_exit);
    q.Bind(11, r.log_path);
    bind_positive(12, r.started_ms);
    bind_positive(13, r.ready_ms);
    q.Bind(14, r.updated_ms);
    if (q.Step() != SQLITE_DONE) return db_.Error("write " + what);
    if (change_reason.empty()) return Status::Ok();
    auto id = AppendChange(r.service, "replica", "gateway", change_reason, "", "", r.updated_ms);
    return id.ok() ? Status::Ok() : id.status();
  });
}

Status ServicesStore::DeleteReplica(const std::string& service, const std::string& version, int slot) {
  return db_.Transaction("DeleteReplica", [&]() -> Status {
    Query q = db_.Prepare("DELETE FROM service_replicas WHERE service = ? AND version = ? AND slot = ?");
    q.Bind(1, service).Bind(2, version).Bind(3, slot);
    if (q.Step() != SQLITE_DONE)
      return db_.Error("delete replica " + std::to_string(slot) + " of version " + version + " of service " + service);
    return Status::Ok();
  });
}

Result<std::vector<ReplicaRow>> ServicesStore::Replicas(const std::string& service) {
  Query q = db_.Prepare(
      "SELECT service, version, slot, revision, IFNULL(pid, 0), IFNULL(start_time, 0), IFNULL(port, 0), state, "
      "restarts, IFNULL(last_exit, ''), log_path, IFNULL(started_ms, 0), IFNULL(ready_ms, 0), updated_ms "
      "FROM service_replicas WHERE service = ? ORDER BY version, slot");
  q.Bind(1, service);
  std::vector<ReplicaRow> out;
  Status st = q.ForEachRow("read the replicas of service " + service, [&] {
    ReplicaRow r;
    r.service = q.Text(0);
    r.version = q.Text(1);
    r.slot = static_cast<int>(q.Int(2));
    r.revision = static_cast<int>(q.Int(3));
    r.pid = static_cast<int>(q.Int(4));
    r.start_time = q.Int(5);
    r.port = static_cast<int>(q.Int(6));
    r.state = q.Text(7);
    r.restarts = static_cast<int>(q.Int(8));
    r.last_exit = q.Text(9);
    r.log_path = q.Text(10);
    r.started_ms = q.Int(11);
    r.ready_ms = q.Int(12);
    r.updated_ms = q.Int(13);
    out.push_back(std::move(r));
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::store
