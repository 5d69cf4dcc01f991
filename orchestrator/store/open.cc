#include "store/open.h"

namespace sluice::store {

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  auto db = Db::Open(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<Store>(new Store(std::move(*db)));
}

}  // namespace sluice::store
