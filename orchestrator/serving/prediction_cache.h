// PredictionCache: a service's optional cache of infer answers in the
// gateway (specs/services-design.md section 5, `cache`). After the version is
// chosen, a request is looked up by (version, revision, SHA-256 of its
// body); a 200 answer is kept for `ttl`, at most `entries` of them and at
// most `max_bytes` of answer bodies, the least recently used going first.
// A new revision of a version (a new model, a new command) has new keys, so
// its predecessor's answers are never served; they age out.
//
// Threads: any, concurrently (the gateway's I/O threads). The entries are
// spread over up to kShards shards by key, each an LRU under its own mutex;
// the limits are split evenly over the shards (entries / shards each, at
// least one; max_bytes / shards each), so the totals are never exceeded,
// and an answer larger than a shard's byte budget is not kept. Time comes
// from the caller (steady milliseconds), so tests need no clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::serving {

struct CachedAnswer {
  std::string content_type;
  std::string body;
};

class PredictionCache {
 public:
  static constexpr int kShards = 16;
  static constexpr size_t kDefaultMaxBytes = 64 << 20;  // answer bodies, per service

  // REQUIRES: entries >= 1, ttl > 0.
  PredictionCache(int entries, std::chrono::milliseconds ttl, size_t max_bytes = kDefaultMaxBytes);
  PredictionCache(const PredictionCache&) = delete;
  PredictionCache& operator=(const PredictionCache&) = delete;

  // The key of a request's answer: version, revision and the body's SHA-256.
  static std::string Key(std::string_view version, int revision, std::string_view body);

  // The answer kept for `key` if it was put less than ttl before now_ms
  // (it then becomes the most recently used); an expired one is dropped.
  std::optional<CachedAnswer> Get(const std::string& key, int64_t now_ms);
  // Keeps `answer` until now_ms + ttl, replacing any under `key`, evicting
  // the least recently used of its shard while over a limit.
  void Put(const std::string& key, CachedAnswer answer, int64_t now_ms);

  int entries() const { return entries_; }
  std::chrono::milliseconds ttl() const { return ttl_; }
  size_t max_bytes() const { return max_bytes_; }
  // What is kept now, over every shard (a snapshot read shard by shard).
  size_t size() const;
  size_t bytes() const;

 private:
  struct Entry {
    std::string key;
    CachedAnswer answer;
    int64_t expires_ms = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // most recently used first; guarded by mu
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // views into lru's keys; mu
    size_t bytes = 0;      // of the bodies and keys kept; mu
  };
  Shard& ShardOf(const std::string& key);
  static void Erase(Shard& shard, std::list<Entry>::iterator it);  // REQUIRES: shard.mu is held

  const int entries_;
  const std::chrono::milliseconds ttl_;
  const size_t max_bytes_;
  size_t shard_entries_ = 0, shard_bytes_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace sluice::serving
