#include "engine/run_graph.h"

#include <algorithm>
#include <string>

namespace sluice::engine {

using spec::Value;

RunGraph::RunGraph(const Plan& plan) : plan_(plan) {}

std::vector<const StepRecord*> RunGraph::Restore(std::vector<StepRecord> resume) {
  const spec::Pipeline& p = *plan_.pipeline;
  resume_ = std::move(resume);
  nodes_.resize(p.steps.size());
  std::map<std::string, StepRecord*> own;
  for (StepRecord& r : resume_) {
    if (r.item < 0) own[r.step_id] = &r;
    else resumed_items_[r.step_id][r.item] = &r;
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto it = own.find(p.steps[i].id);
    if (it != own.end()) nodes_[i].rec = *it->second;
    nodes_[i].rec.step_id = p.steps[i].id;
    nodes_[i].rec.item = -1;
  }
  // A service that was stopped with steps that need it still to run (a
  // retry reset them) serves them again.
  std::vector<const StepRecord*> fresh;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    StepRecord& r = nodes_[i].rec;
    if (!p.steps[i].service || r.state != StepState::kSucceeded) continue;
    const auto& ds = plan_.dependants[i];
    if (std::all_of(ds.begin(), ds.end(), [&](size_t d) { return IsFinal(nodes_[d].rec.state); })) continue;
    r.state = StepState::kPending;
    r.tries = 0;
    r.reason.clear();
    fresh.push_back(&r);
  }
  counts_.total = static_cast<int>(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (is_finally(i)) finally_nodes_.push_back(i);
    else if (!IsFinal(nodes_[i].rec.state)) ++main_unfinished_;
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (IsFinal(n.rec.state)) {
      n.finished = true;
      ++finished_nodes_;
      ++counts_.finished;
      if (n.rec.state == StepState::kFailed) ++counts_.failed;
      continue;
    }
    if (!own.count(n.rec.step_id)) fresh.push_back(&n.rec);
    for (size_t need : plan_.needs[i])
      if (!IsFinal(nodes_[need].rec.state)) ++n.waiting;
    if (is_finally(i) && main_unfinished_ > 0) ++n.waiting;
  }
  // A finished step of a call with foreach keeps its items for its item
  // dependants, which read item k of it.
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].finished && nodes_[i].rec.items && !plan_.item_dependants[i].empty()) RestoreItems(i);
  for (size_t i : plan_.order) {
    NoteUpstream(i);
    if (!nodes_[i].finished && nodes_[i].waiting == 0) decide_.push_back(i);
  }
  return fresh;
}

void RunGraph::RestoreItems(size_t i) {
  Node& n = nodes_[i];
  n.released_items = true;
  auto found = resumed_items_.find(n.rec.step_id);
  for (size_t k = 0; k < n.rec.items->size(); ++k) {
    units_.emplace_back();
    Unit& u = units_.back();
    u.node = i;
    const StepRecord* r = nullptr;
    if (found != resumed_items_.end())
      if (auto it = found->second.find(static_cast<int>(k)); it != found->second.end()) r = it->second;
    u.own = std::make_unique<StepRecord>(r ? *r : n.rec);
    u.rec = u.own.get();
    u.own->item = static_cast<int>(k);
    u.own->item_value = (*n.rec.items)[k];
    n.units.push_back(units_.size() - 1);
  }
}

bool RunGraph::is_item_need(size_t i, size_t need) const {
  const auto& v = plan_.item_needs[i];
  return std::find(v.begin(), v.end(), need) != v.end();
}

void RunGraph::NoteUpstream(size_t i) {
  bool failed = false;
  for (size_t n : plan_.needs[i]) {
    if (expanded_items(n) && is_item_need(i, n)) continue;
    failed = failed || nodes_[n].upstream_failed ||
             (nodes_[n].rec.state == StepState::kFailed && !plan_.pipeline->steps[n].continue_on_error);
  }
  nodes_[i].upstream_failed = failed;
}

const StepRecord& RunGraph::ItemRecord(size_t i, int item) const {
  const Node& n = nodes_[i];
  if (!expanded_items(i) || item < 0 || static_cast<size_t>(item) >= n.units.size()) return n.rec;
  return *units_[n.units[static_cast<size_t>(item)]].rec;
}

bool RunGraph::ItemUpstreamFailed(size_t i, int item) const {
  if (nodes_[i].upstream_failed) return true;
  for (size_t n : plan_.item_needs[i]) {
    const StepRecord& r = ItemRecord(n, item);
    if (r.state == StepState::kFailed && !plan_.pipeline->steps[n].continue_on_error) return true;
    if (ItemUpstreamFailed(n, item)) return true;  // a chain is as deep as its template
  }
  return false;
}

std::optional<size_t> RunGraph::NextToDecide() {
  if (decide_.empty()) return std::nullopt;
  size_t i = decide_.front();
  decide_.pop_front();
  return i;
}

std::vector<size_t> RunGraph::DropReady(const std::function<bool(size_t)>& keep) {
  std::deque<size_t> kept;
  std::vector<size_t> dropped;
  for (size_t u : ready_) {
    if (keep(u)) kept.push_back(u);
    else dropped.push_back(u);
  }
  ready_.swap(kept);
  return dropped;
}

RunGraph::Expansion RunGraph::Expand(size_t i, const spec::List* items) {
  Node& n = nodes_[i];
  const std::string& id = plan_.pipeline->steps[i].id;
  static const std::map<int, const StepRecord*> kNone;
  auto found = resumed_items_.find(id);
  const auto& restored = found == resumed_items_.end() ? kNone : found->second;
  Expansion x;
  x.first = units_.size();
  if (!items) {
    units_.emplace_back();
    units_.back().rec = &n.rec;
  } else {
    n.rec.items = *items;
    n.rec.state = StepState::kRunning;
    x.to_save.push_back(&n.rec);
    for (size_t k = 0; k < items->size(); ++k) {
      units_.emplace_back();
      Unit& u = units_.back();
      auto it = restored.find(static_cast<int>(k));
      u.own = it != restored.end() ? std::make_unique<StepRecord>(*it->second) : std::make_unique<StepRecord>();
      u.rec = u.own.get();
      u.own->step_id = id;
      u.own->item = static_cast<int>(k);
      u.own->item_value = (*items)[k];
      if (it == restored.end()) x.to_save.push_back(u.own.get());
    }
  }
  x.end = units_.size();
  for (size_t u = x.first; u < x.end; ++u) {
    units_[u].node = i;
    n.units.push_back(u);
    if (IsFinal(units_[u].rec->state)) continue;
    ++n.unfinished;
    for (size_t need : plan_.item_needs[i])
      if (!IsFinal(ItemRecord(need, units_[u].rec->item).state)) ++units_[u].item_waiting;
  }
  if (items && !plan_.item_dependants[i].empty()) {
    // Its item dependants take these items and start each as its own item
    // here is final: they need not wait for the whole step.
    n.released_items = true;
    for (size_t d : plan_.item_dependants[i]) Release(d);
  }
  return x;
}

bool RunGraph::FinishUnit(size_t u) {
  Node& n = nodes_[units_[u].node];
  return --n.unfinished <= 0;
}

std::vector<size_t> RunGraph::ReleaseItems(size_t u) {
  std::vector<size_t> out;
  const size_t i = units_[u].node;
  const int item = units_[u].rec->item;
  if (!nodes_[i].rec.items || item < 0) return out;
  for (size_t d : plan_.item_dependants[i]) {
    const Node& dn = nodes_[d];
    if (!expanded_items(d) || static_cast<size_t>(item) >= dn.units.size()) continue;
    size_t v = dn.units[static_cast<size_t>(item)];
    if (IsFinal(units_[v].rec->state) || units_[v].item_waiting == 0) continue;
    if (--units_[v].item_waiting == 0) out.push_back(v);
  }
  return out;
}

void RunGraph::FoldItems(size_t i) {
  Node& n = nodes_[i];
  bool failed = false, cancelled = false;
  size_t skipped = 0;
  std::vector<std::string> keys;
  for (size_t u : n.units) {
    const StepRecord& r = *units_[u].rec;
    failed |= r.state == StepState::kFailed;
    cancelled |= r.state == StepState::kCancelled;
    skipped += r.state == StepState::kSkipped;
    for (const auto& [k, v] : r.outputs)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  // In a call with foreach, an item skipped for a failure in its chain
  // passes the failure on to what needs the whole step.
  for (size_t k = 0; k < n.units.size() && !plan_.item_needs[i].empty() && !n.upstream_failed; ++k)
    n.upstream_failed = ItemUpstreamFailed(i, static_cast<int>(k));
  n.rec.state = failed ? StepState::kFailed : cancelled ? StepState::kCancelled : StepState::kSucceeded;
  n.rec.reason = failed ? "an item failed" : cancelled ? "an item was cancelled" : "";
  if (!failed && !cancelled && skipped > 0 && skipped == n.units.size()) {
    // Every item's own `if` was false: a branch not taken, like a skipped step.
    n.rec.state = StepState::kSkipped;
    n.rec.reason = "every item was skipped by its if";
  }
  spec::List codes;
  for (size_t u : n.units) codes.push_back(units_[u].rec->exit_code);
  n.rec.exit_code = Value::Of(std::move(codes));
  n.rec.outputs.clear();
  for (const std::string& k : keys) {
    spec::List values;
    for (size_t u : n.units) {
      auto it = units_[u].rec->outputs.find(k);
      values.push_back(it == units_[u].rec->outputs.end() ? Value() : it->second);
    }
    n.rec.outputs[k] = Value::Of(std::move(values));
  }
}

size_t RunGraph::FinishStep(size_t i) {
  Node& n = nodes_[i];
  n.finished = true;
  ++finished_nodes_;
  ++counts_.finished;
  if (n.rec.state == StepState::kFailed) ++counts_.failed;
  size_t queued = 0;
  for (size_t d : plan_.dependants[i])
    if (!n.released && (!n.released_items || !is_item_need(d, i))) queued += Release(d);
  if (!is_finally(i) && --main_unfinished_ == 0)
    for (size_t f : finally_nodes_)
      if (!nodes_[f].finished) queued += Release(f);
  return queued;
}

size_t RunGraph::ReleaseDependants(size_t i) {
  if (nodes_[i].released || nodes_[i].finished) return 0;
  nodes_[i].released = true;
  size_t queued = 0;
  for (size_t d : plan_.dependants[i]) queued += Release(d);
  return queued;
}

size_t RunGraph::Release(size_t d) {
  if (--nodes_[d].waiting != 0) return 0;
  NoteUpstream(d);
  decide_.push_back(d);
  return 1;
}

}  // namespace sluice::engine
