// Compiled by BuildTest.AnIncludeAgainstTheArrowDoesNotCompile with the exec
// module's include root: exec/ may not include the store, so this must fail.
#include "store/db.h"
