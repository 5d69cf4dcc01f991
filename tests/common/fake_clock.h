// FakeClock: time that moves only when a test (or FakeExecutor::Wait) moves
// it, or by `tick` each time it is read, for engine tests with no sleep.
// Starts at an hour past the steady clock's epoch, so deadlines before it
// are representable. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

#include "engine/executor.h"

namespace sluice::testing {

class FakeClock : public engine::Clock {
 public:
  engine::TimePoint now{std::chrono::hours(1)};
  // How far each Now() moves the clock: time that passes while the engine
  // works without waiting (0: it moves only when waited on).
  std::chrono::microseconds tick{0};
  engine::TimePoint Now() override { return now += tick; }
  int64_t WallMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  }
  // Milliseconds since the start (an hour past the epoch).
  int64_t Seconds() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch() - std::chrono::hours(1))
        .count();
  }
};

}  // namespace sluice::testing
