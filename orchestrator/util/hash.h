// SHA-256 of bytes in memory, as 64 lowercase hex digits.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

std::string Sha256Hex(std::string_view data);

}  // namespace sluice
