// SHA-256 of bytes in memory or of a file, as 64 lowercase hex digits; and
// the hex encoding itself, for digests, MACs and random tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace sluice {

std::string Sha256Hex(std::string_view data);
struct FileHashOptions {
  bool follow_links = true;  // false: a symbolic link is an error (O_NOFOLLOW)
  int64_t* size = nullptr;   // if set, the bytes read are added to it
};
// The file's bytes, read in blocks of its size, at least 4 KiB and at most
// 1 MiB.
Result<std::string> Sha256File(const std::string& path, FileHashOptions options = {});
std::string HexEncode(const unsigned char* bytes, size_t n);  // lowercase

}  // namespace sluice
