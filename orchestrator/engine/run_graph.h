// RunGraph: the changing state of one run's DAG, apart from what runs it
// (ninja's Plan, apart from its Builder). Plan (plan.h) is the static DAG
// made from the spec; RunGraph holds, for that DAG, each step's record,
// how many of its needs are not final yet, the units it expanded into (one
// for a plain step, one per item for a foreach step), and two queues of
// work: steps whose needs are all final (to decide: skip, fail, or expand),
// and units ready to start. The Engine (engine.h) takes work from it and
// tells it what finished; it does the store writes, the executor calls,
// slots and timers itself.
//
// Every transition is O(1) or O(the step's dependants, or items): nothing
// rescans all steps (dag_bench runs 100,000 steps).
//
// Records live as long as the RunGraph and keep their address (units are in
// a deque), so the engine may hand pointers to them to the store. It points
// into the Plan, which must outlive it. One thread uses it.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/plan.h"
#include "engine/types.h"

namespace sluice::engine {

class RunGraph {
 public:
  explicit RunGraph(const Plan& plan);
  RunGraph(const RunGraph&) = delete;
  RunGraph& operator=(const RunGraph&) = delete;

  // Starts the run's state from `resume`, the step records of an
  // interrupted run (empty for a new one): final steps stay final, the rest
  // start over from their records. Queues the steps with no unfinished need,
  // in plan order. Returns the records `resume` did not have, to be saved.
  // Call once, first.
  std::vector<const StepRecord*> Restore(std::vector<StepRecord> resume);

  // Finding work ---------------------------------------------------------
  // The next step whose needs are all final, in the order they became so.
  std::optional<size_t> NextToDecide();
  bool HasToDecide() const { return !decide_.empty(); }
  // Units waiting to start, first in line first.
  const std::deque<size_t>& ready() const { return ready_; }
  void PopReady() { ready_.pop_front(); }
  // Puts a unit at the end of the line (a retry whose backoff passed).
  void PushReady(size_t unit) { ready_.push_back(unit); }
  // Takes the units `keep` says no to out of the line (a cancel); returns
  // them in line order.
  std::vector<size_t> DropReady(const std::function<bool(size_t unit)>& keep);

  // Expansion ------------------------------------------------------------
  struct Expansion {
    size_t first = 0, end = 0;               // the new units: [first, end)
    std::vector<const StepRecord*> to_save;  // new records (a resumed item keeps its own)
  };
  // Makes the units of a decided step: one for a plain step (`items` null),
  // one per item for a foreach step, whose record then holds the list and is
  // running. A resumed item keeps its record. The new units are not queued:
  // the engine queues each that is to run (PushReady) and finishes the rest.
  // If no unit is unfinished (a foreach over nothing, or over finished
  // items), the caller finishes the step (FinishStep).
  Expansion Expand(size_t node, const spec::List* items);

  // Transitions ----------------------------------------------------------
  // Unit `unit`'s record is final: true when it was the last unfinished unit
  // of its step (the caller then finishes the step).
  bool FinishUnit(size_t unit);
  // Items of a call with foreach (Plan::item_needs): unit `unit`'s record
  // is final; returns the items of its item dependants that it was the last
  // one to wait for (each has all its item needs' item final), to decide.
  // O(item dependants).
  std::vector<size_t> ReleaseItems(size_t unit);
  // Whether a unit of an expanded step waits for an item need's item.
  bool waits_for_items(size_t unit) const { return units_[unit].item_waiting > 0; }
  // A foreach step whose units are all final: its state (failed if an item
  // failed, else cancelled if one was cancelled, else skipped if every item
  // was skipped by its `if`, else succeeded), reason, outputs (each the list
  // of the items' values, in item order) and exit codes (the list of the
  // items') from its items. O(items x outputs).
  void FoldItems(size_t node);
  // The step's record is final: counts it and queues each dependant whose
  // needs are now all final (and, after the last step of `steps:`, each
  // finally step with no unfinished need). Returns how many it queued.
  size_t FinishStep(size_t node);
  // A service is ready: its dependants go on as if it had finished (those
  // whose needs are now all final are queued to decide); FinishStep later
  // does not count it again for them. Returns how many it queued.
  size_t ReleaseDependants(size_t node);
  // Whether a step upstream of `node` (a need, a need's need...) failed
  // without continue_on_error. Known once every need is final (when the
  // node is queued to decide): O(needs), from the needs' own answers.
  bool upstream_failed(size_t node) const { return nodes_[node].upstream_failed; }
  // Item `item` of `node` as its item dependants see it: the unit's record
  // if the step expanded into items, else the step's own record (a step
  // that ended without making items, or not yet decided).
  const StepRecord& ItemRecord(size_t node, int item) const;
  // upstream_failed() for one item of a step of a call with foreach: its
  // step's, or an item need's item failed (or had a failure upstream).
  bool ItemUpstreamFailed(size_t node, int item) const;
  // The step expanded into items (its units are items, in list order).
  bool expanded_items(size_t node) const { return nodes_[node].rec.items.has_value() && !nodes_[node].units.empty(); }
  // A step decided while a service it needs was ready, which then failed:
  // its own dependants see that failure upstream.
  void SetUpstreamFailed(size_t node) { nodes_[node].upstream_failed = true; }

  // State ----------------------------------------------------------------
  StepRecord& record(size_t node) { return nodes_[node].rec; }
  const StepRecord& record(size_t node) const { return nodes_[node].rec; }
  StepRecord& unit_record(size_t unit) { return *units_[unit].rec; }
  const StepRecord& unit_record(size_t unit) const { return *units_[unit].rec; }
  size_t node_of(size_t unit) const { return units_[unit].node; }
  const std::vector<size_t>& units_of(size_t node) const { return nodes_[node].units; }
  size_t unit_count() const { return units_.size(); }
  size_t step_count() const { return nodes_.size(); }
  bool finished(size_t node) const { return nodes_[node].finished; }
  int unfinished_units(size_t node) const { return nodes_[node].unfinished; }
  size_t unfinished_steps() const { return nodes_.size() - finished_nodes_; }
  bool AllFinished() const { return finished_nodes_ == nodes_.size(); }
  // Every step of `steps:` is final (the finally steps may be running).
  bool MainFinished() const { return main_unfinished_ == 0; }

  struct Counts {
    int total = 0, finished = 0, failed = 0;  // steps
  };
  Counts counts() const { return counts_; }

 private:
  struct Node {
    StepRecord rec;               // the step's own record (item -1)
    int waiting = 0;              // needs that are not final yet
    bool finished = false;
    std::vector<size_t> units;
    int unfinished = 0;           // units not final yet
    bool upstream_failed = false; // see upstream_failed()
    bool released_items = false;  // its item dependants were released when it expanded
    bool released = false;        // a ready service: its dependants no longer wait for it
  };
  struct Unit {
    size_t node = 0;
    std::unique_ptr<StepRecord> own;  // a foreach item's record (none for a plain step)
    StepRecord* rec = nullptr;        // own, or the node's record for a plain step
    int item_waiting = 0;             // item needs whose same item is not final yet
  };

  // Sets the node's upstream_failed from its needs' records and flags
  // (an item need that made items counts per item, not here).
  void NoteUpstream(size_t node);
  // One fewer need of `d` to wait for: queues it to decide at none.
  size_t Release(size_t d);
  // The units of a step that finished before this resume, from its items' records.
  void RestoreItems(size_t node);
  bool is_item_need(size_t node, size_t need) const;
  bool is_finally(size_t node) const { return plan_.pipeline->steps[node].is_finally; }

  const Plan& plan_;
  std::vector<Node> nodes_;
  std::deque<Unit> units_;        // a deque: records keep their address as steps expand
  std::deque<size_t> decide_;     // steps whose needs are all final, to decide in order
  std::deque<size_t> ready_;      // units waiting to start
  size_t finished_nodes_ = 0;
  // Finally steps wait for every step of `steps:` besides their own needs:
  // each holds one more `waiting` until main_unfinished_ drops to 0.
  size_t main_unfinished_ = 0;
  std::vector<size_t> finally_nodes_;
  Counts counts_;
  std::vector<StepRecord> resume_;
  std::map<std::string, std::map<int, const StepRecord*>> resumed_items_;  // into resume_, by step and item
};

}  // namespace sluice::engine
