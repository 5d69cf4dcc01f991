// SHA-256 of bytes in memory or of a file, as 64 lowercase hex digits; and
// the hex encoding itself, for digests, MACs and random tokens.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace sluice {

std::string Sha256Hex(std::string_view data);
// The file's bytes, read in 1 MiB blocks (symbolic links are followed).
Result<std::string> Sha256File(const std::string& path);
std::string HexEncode(const unsigned char* bytes, size_t n);  // lowercase

}  // namespace sluice
