// The store's schema as forward migrations (specs/store.md has each
// table): the DDL of each version, applied in order by Db::Migrate.
#pragma once

namespace sluice::store {

// The DDL that takes a database from schema version `to - 1` to `to`
// (1 <= to <= Db::kSchemaVersion; from version 0, an empty file, to 1
// makes the first tables).
const char* SchemaStep(int to);

}  // namespace sluice::store
