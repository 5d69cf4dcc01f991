// The web UI's files (web/), compiled into the binary at build time.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice::server {

struct WebAsset {
  const char* name;          // "app.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

// The file called `name` (no folders), or null.
const WebAsset* FindWebAsset(std::string_view name);

}  // namespace sluice::server
