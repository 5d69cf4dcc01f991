// The payload profile of the serving gateway (specs/services-design.md
// section 7, specs/store.md `service_windows.classes` and `payload`): for a
// sampled share of the answered infer requests, the predicted-class counts
// and statistics of the input and prediction values, per service, version,
// role and 10-second window, so a drift monitor can compare windows (PSI
// over fixed bins).
//
// Three parts:
//   - ProfileQueue: a bounded queue (kProfileQueueCapacity samples and
//     kProfileQueueBytes of bodies) of samples. The I/O threads only Offer
//     (a lock, a push, no parse); a full queue drops the sample and counts
//     it (`sluice_profile_dropped_total`).
//   - ProfileAccumulator: pure code. Add parses one sample's request and
//     answer (OIP v2 JSON, bounded: body size, nesting depth) and adds them
//     to its window; junk is counted as unparsed, never thrown. Take* hand
//     the windows to the flusher as JSON text.
//   - Profiler: the queue, an accumulator and the one thread that moves
//     samples from the first to the second.
//
// Ownership: a sample holds shared pointers to the request and answer
// bodies; the gateway gives up nothing it still writes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "serving/stats.h"

namespace sluice::serving {

inline constexpr size_t kProfileQueueCapacity = 1024;
inline constexpr size_t kProfileQueueBytes = 256 << 20;  // request and answer bodies queued
inline constexpr size_t kMaxClassNames = 1000;           // per window; more count as "_other"
inline constexpr size_t kMaxProfiledFeatures = 256;      // per-feature statistics of [N, F] inputs
inline constexpr size_t kMaxProfiledTensors = 64;        // input tensors per window; more are skipped
inline constexpr size_t kMaxProfiledBody = 16 << 20;     // a larger request or answer is not parsed
inline constexpr int kMaxProfileJsonDepth = 32;          // deeper JSON is not parsed
inline constexpr size_t kMaxClassNameBytes = 256;        // a longer class name is cut to this
inline constexpr const char* kOtherClass = "_other";

// Histogram bins (specs/services.md "The payload profile"):
//   `sl125-v1`: 56 bins over the real line cut at 0 and at +-(1, 2, 5) x
//     10^k for k = -3..5 (1e-3 ... 5e5): bin 0 is below -5e5, bin 27 is
//     [-1e-3, 0), bin 28 is [0, 1e-3), bin 55 is >= 5e5. For input values
//     and raw outputs.
//   `p10-v1`: 10 bins of width 0.1 over [0, 1] (1.0 falls in the last;
//     below 0 in the first, above 1 in the last). For probabilities.
inline constexpr int kSymLogBins = 56;
inline constexpr int kUnitBins = 10;
int SymLogBin(double value);
int UnitBin(double value);

// count, sum, sum of squares, min, max and optionally a histogram of values.
struct ValueStats {
  int64_t n = 0;
  double sum = 0, sumsq = 0, min = 0, max = 0;
  std::vector<int64_t> hist;  // empty: none kept
  void Add(double v);
  void Merge(const ValueStats& other);
};

// One sampled answer, as the I/O thread hands it over.
struct ProfileSample {
  std::string service, version;
  Role role = Role::kLive;
  int64_t at_ms = 0;  // wall clock when the answer was relayed: picks the window
  std::shared_ptr<const std::string> request, answer;
};

// Thread-safe bounded queue.
class ProfileQueue {
 public:
  explicit ProfileQueue(size_t capacity = kProfileQueueCapacity, size_t max_bytes = kProfileQueueBytes)
      : capacity_(capacity), max_bytes_(max_bytes) {}
  // Enqueues; false (and counted in dropped()) when the queue is closed,
  // holds `capacity` samples, or would hold more than `max_bytes` of bodies.
  bool Offer(ProfileSample sample);
  // Blocks until a sample is there (true) or the queue is closed and empty (false).
  bool Pop(ProfileSample* out);
  // Wakes Pop; later Offers are dropped. Samples already queued are still popped.
  void Close();
  int64_t dropped() const;
  size_t size() const;

 private:
  static size_t Bytes(const ProfileSample& s);
  const size_t capacity_, max_bytes_;
  size_t bytes_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ProfileSample> items_;
  bool closed_ = false;
  int64_t dropped_ = 0;
};

// The profile of one window, as flushed: JSON text in the formats of
// specs/services.md.
struct WindowProfile {
  std::string service, version;
  Role role = Role::kLive;
  int64_t start_ms = 0;
  std::string classes;  // {"cat": 12, "_other": 3}
  std::string payload;  // {"format": "sluice-profile-v1", ...}
};

// Pure; not thread-safe (Profiler serializes it).
class ProfileAccumulator {
 public:
  void Add(const ProfileSample& sample);
  // Windows that closed at least kFlushLagMs before now_ms, emptied.
  std::vector<WindowProfile> TakeClosed(int64_t now_ms);
  // Every window, emptied.
  std::vector<WindowProfile> TakeAll();

 private:
  struct Tensor {
    std::string datatype;
    ValueStats values;                 // every value, histogram sl125-v1
    std::vector<ValueStats> features;  // [N, F] inputs: per feature index < kMaxProfiledFeatures
    int64_t width = 0;                 // the largest F seen
  };
  struct Profile {
    int64_t samples = 0, unparsed = 0, other_classes = 0;
    std::map<std::string, int64_t> classes;
    std::map<std::string, Tensor> inputs;
    int64_t skipped_inputs = 0;        // tensors past kMaxProfiledTensors
    ValueStats max_probability;        // p10-v1, from `probabilities`
    ValueStats output;                 // sl125-v1, from a raw `output`
  };
  using Key = std::tuple<std::string, std::string, int, int64_t>;  // service, version, role, start
  std::vector<WindowProfile> Take(std::optional<int64_t> now_ms);
  static WindowProfile Render(const Key& key, const Profile& p);

  std::map<Key, Profile> windows_;
};

// The queue, the accumulator and the thread between them. Offer and
// dropped from any thread; Take* from one (the flusher) at a time.
class Profiler {
 public:
  Profiler();
  ~Profiler();  // Stop()
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  bool Offer(ProfileSample sample) { return queue_.Offer(std::move(sample)); }
  int64_t dropped() const { return queue_.dropped(); }
  std::vector<WindowProfile> TakeClosed(int64_t now_ms);
  // Stops the thread after the queued samples are profiled, then every window.
  std::vector<WindowProfile> StopAndTakeAll();

 private:
  void Run();
  ProfileQueue queue_;
  std::mutex mu_;
  ProfileAccumulator acc_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::serving
