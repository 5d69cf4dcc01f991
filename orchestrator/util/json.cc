#include "util/json.h"

#include "util/strings.h"

namespace sluice {

std::string JsonUserString(std::string_view s) {
  if (IsUtf8(s)) return JsonString(s);
  return JsonText(nlohmann::json(std::string(s)));
}

}  // namespace sluice
