#include "serving/prediction_cache.h"

#include <algorithm>
#include <functional>

#include "util/hash.h"

namespace sluice::serving {

PredictionCache::PredictionCache(int entries, std::chrono::milliseconds ttl, size_t max_bytes)
    : entries_(std::max(entries, 1)), ttl_(ttl), max_bytes_(max_bytes) {
  const int shards = std::min(entries_, kShards);
  shard_entries_ = static_cast<size_t>(entries_ / shards);
  shard_bytes_ = max_bytes_ / shards;
  for (int i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

std::string PredictionCache::Key(std::string_view version, int revision, std::string_view body) {
  std::string key(version);
  key += '\0';
  key += std::to_string(revision);
  key += '\0';
  key += Sha256Hex(body);
  return key;
}

PredictionCache::Shard& PredictionCache::ShardOf(const std::string& key) {
  return *shards_[std::hash<std::string>{}(key) % shards_.size()];
}

void PredictionCache::Erase(Shard& shard, std::list<Entry>::iterator it) {
  shard.bytes -= it->key.size() + it->answer.body.size() + it->answer.content_type.size();
  shard.index.erase(std::string_view(it->key));
  shard.lru.erase(it);
}

std::optional<CachedAnswer> PredictionCache::Get(const std::string& key, int64_t now_ms) {
  Shard& shard = ShardOf(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto found = shard.index.find(std::string_view(key));
  if (found == shard.index.end()) return std::nullopt;
  auto it = found->second;
  if (now_ms >= it->expires_ms) {
    Erase(shard, it);
    return std::nullopt;
  }
  shard.lru.splice(shard.lru.begin(), shard.lru, it);
  return it->answer;
}

void PredictionCache::Put(const std::string& key, CachedAnswer answer, int64_t now_ms) {
  const size_t size = key.size() + answer.body.size() + answer.content_type.size();
  Shard& shard = ShardOf(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (auto found = shard.index.find(std::string_view(key)); found != shard.index.end()) Erase(shard, found->second);
  if (size > shard_bytes_) return;  // larger than this shard may hold at all
  while (!shard.lru.empty() && (shard.lru.size() >= shard_entries_ || shard.bytes + size > shard_bytes_))
    Erase(shard, std::prev(shard.lru.end()));
  shard.lru.push_front(Entry{key, std::move(answer), now_ms + ttl_.count()});
  shard.index.emplace(std::string_view(shard.lru.front().key), shard.lru.begin());
  shard.bytes += size;
}

size_t PredictionCache::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s->mu);
    n += s->lru.size();
  }
  return n;
}

size_t PredictionCache::bytes() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s->mu);
    n += s->bytes;
  }
  return n;
}

}  // namespace sluice::serving
