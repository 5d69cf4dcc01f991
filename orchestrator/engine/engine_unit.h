// Engine::Unit, internal to the engine's own files (engine.cc, engine_pools.cc).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "engine/attempt_end.h"
#include "engine/engine.h"
#include "util/secrets.h"

namespace sluice::engine {

// What the builder keeps of one unit of the RunGraph (a plain step, or one
// item of a foreach step) while it runs; same index as the graph's unit.
struct Engine::Unit {
  // What the unit's current attempt holds, from its start until the unit is
  // final (then released: a 100,000-step run keeps only what its records need).
  struct Attempt {
    AttemptRecord record;
    std::string output_path;
    std::string files_dir;     // the attempt's folder for declared outputs
    SecretMask secrets;        // the values of the secrets of the current attempt
    std::optional<AttemptRequest> probe;  // a service's `run` check (its attempt_id set per check)
  };
  Attempt& live() {
    if (!live_) live_ = std::make_unique<Attempt>();
    return *live_;
  }
  void Release() { live_.reset(); }

  std::unique_ptr<Attempt> live_;
  bool running = false;
  bool waiting_retry = false;
  StopCause::Kind stop = StopCause::Kind::kNone;  // why the engine stopped it, if it did
  bool killed = false;
  uint64_t generation = 0;     // bumped per attempt; stale timers are ignored
  int slots = 1;
  bool in_flight = false;      // counted in its step's in_flight_ (max_parallel)
  bool waiting_pool = false;   // in pool_waiting_: its step's pool had no free slot
  bool leased = false;         // holds its step's pool slots for the current attempt
  // A service's current attempt (engine_services.cc): its check passed (its
  // dependants were let in); the engine stopped it because they are final;
  // its ready timeout passed; the `run` check in flight (0: none).
  bool ready = false;
  bool served = false;
  bool not_ready = false;
  int64_t probe = 0;
};

}  // namespace sluice::engine
