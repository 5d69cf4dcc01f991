// The injection rule: where a `${{ }}` value in a `run:` may stand so that it
// stays data. Sluice's rewrite (template.h's RenderShell) keeps a value out of
// the shell text of the line itself, but it cannot help when the line hands
// text to a second interpreter (`sh -c '...'`, `python3 -c`, `eval`, a
// heredoc): the value is then spliced into that program. The loader refuses
// every expression this check cannot prove to be data; specs/pipeline.md
// states the rule for users.
//
// The check is syntactic and fail-closed: it tokenizes the line the way a
// POSIX shell does (quotes, escapes, `$(...)`, backticks, heredocs,
// operators), finds every command the line runs, and refuses an expression
// when:
//   - it stands inside a heredoc body, backticks, `$(...)` or `$((...))`;
//   - it is a command's name (the value would choose the program);
//   - the line (anywhere, substitutions included) runs a command that turns
//     text into code: `eval`, `source`, `awk`, `sed`, `xargs`, `find`, `ssh`,
//     `sudo`, `env`, `timeout`, ... (kCodeRunners in shell_check.cc);
//   - the line runs an interpreter (sh, bash, python3, perl, node, ...) with a
//     program on its command line (`-c`, `-e`, ...) or on its standard input
//     (no script file), or the expression is the interpreter's script or one
//     of its options rather than an argument after the script.
// Pure functions; any thread.
#pragma once

#include <string>
#include <vector>

#include "spec/template.h"

namespace sluice::spec {

// An expression the rule does not prove to be data.
struct Injection {
  SourcePos pos;       // of the expression's `${{`
  std::string reason;  // why, and the way out
};

// Checks a shell-line `run:` (one template).
std::vector<Injection> CheckShellLine(const Template& line);
// Checks an argv `run:` (one template per argument).
std::vector<Injection> CheckArgv(const std::vector<Template>& argv);

}  // namespace sluice::spec
