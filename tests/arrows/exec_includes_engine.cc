// Compiled by BuildTest.AnIncludeAlongTheArrowCompiles with the exec
// module's include root: exec/ may include the engine's interface.
#include "engine/executor.h"
