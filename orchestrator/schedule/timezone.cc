#include "schedule/timezone.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "util/strings.h"

namespace sluice::schedule {
namespace {

int64_t BigEndian(const std::string& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | uint8_t(b[at + size_t(i)]);
  if (bytes == 4) return int32_t(uint32_t(v));
  return int64_t(v);
}

}  // namespace


TimeZone TimeZone::Utc() { return TimeZone(); }

Result<TimeZone> TimeZone::Load(const std::string& name, const std::string& zoneinfo_dir) {
  if (name.empty() || name == "UTC" || name == "Etc/UTC") return Utc();
  bool bad = name.find("..") != std::string::npos || name[0] == '/' ||
             name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") !=
                 std::string::npos;
  if (bad) return Status::InvalidSpec("time zone " + Quote(name) + " is not an IANA zone name like Europe/Berlin");
  std::string path = zoneinfo_dir + "/" + name;
  std::error_code ec;
  // A folder (Etc/, America/) opens but cannot be read: a zone is a file.
  std::ifstream f;
  if (std::filesystem::is_regular_file(path, ec)) f.open(path, std::ios::binary);
  if (!f.is_open() || !f) return Status::InvalidSpec("unknown time zone " + Quote(name) + " (no " + path + "; Debian's tzdata installs them)");
  std::string b((std::istreambuf_iterator<char>(f)), {});
  auto corrupt = [&] { return Status::InvalidSpec(path + ": not a TZif version 2+ time zone file"); };
  if (b.size() < 44 || b.compare(0, 4, "TZif") != 0 || b[4] < '2') return corrupt();
  // Skip the version 1 block (32-bit times), then read the version 2 block.
  auto counts = [&](size_t at, int64_t* c) {
    for (int i = 0; i < 6; ++i) c[i] = BigEndian(b, at + 20 + size_t(i) * 4, 4);
  };
  int64_t c[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  counts(0, c);
  size_t v2 = 44 + size_t(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
  if (b.size() < v2 + 44 || b.compare(v2, 4, "TZif") != 0) return corrupt();
  counts(v2, c);
  size_t times = v2 + 44, indices = times + size_t(c[3]) * 8, types = indices + size_t(c[3]);
  if (c[4] < 1 || b.size() < types + size_t(c[4]) * 6) return corrupt();
  TimeZone tz;
  tz.name_ = name;
  auto offset_of = [&](int64_t type) { return BigEndian(b, types + size_t(type) * 6, 4); };
  tz.initial_ = offset_of(0);
  for (int64_t i = 0; i < c[3]; ++i) {
    int64_t type = uint8_t(b[indices + size_t(i)]);
    if (type >= c[4]) return corrupt();
    tz.transitions_.push_back(BigEndian(b, times + size_t(i) * 8, 8));
    tz.offsets_.push_back(offset_of(type));
  }
  return tz;
}

int64_t TimeZone::OffsetAt(int64_t utc) const {
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
  if (it == transitions_.begin()) return initial_;
  return offsets_[size_t(it - transitions_.begin() - 1)];
}

}  // namespace sluice::schedule
