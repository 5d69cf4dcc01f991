// SHA-256 of bytes in memory, as 64 lowercase hex digits; and the hex
// encoding itself, for digests, MACs and random tokens.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

std::string Sha256Hex(std::string_view data);
std::string HexEncode(const unsigned char* bytes, size_t n);  // lowercase

}  // namespace sluice
