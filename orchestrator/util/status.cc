#include "util/status.h"

#include <cstring>

namespace sluice {

Status Status::FromErrno(const std::string& context, int errno_value) {
  return IoError(context + ": " + std::strerror(errno_value));
}

}  // namespace sluice
