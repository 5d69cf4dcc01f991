// The functions of the expression language (specs/pipeline.md,
// "Functions"), internal to spec/: expr.cc parses and evaluates, this part
// calls a function with its arguments evaluated and counted.
#pragma once

#include <string>
#include <vector>

#include "spec/expr.h"

namespace sluice::spec::internal {

// A value's type and its text cut at 80 characters, for errors: string "abc".
std::string Describe(const Value& v);

// An error saying `what` would build a value over kMaxValueBytes.
Status TooBig(const std::string& what);

// `v`, or TooBig(what) if it is over kMaxValueBytes.
Result<Value> Bounded(Value v, const std::string& what);

// Calls the function `e` names (not a status function) with `args`, whose
// number FunctionArity has checked.
Result<Value> CallFunction(const Expr& e, const std::vector<Value>& args, const EvalContext& ctx);

}  // namespace sluice::spec::internal
