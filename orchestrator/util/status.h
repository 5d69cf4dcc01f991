// Status and Result<T>: how expected failures travel in Sluice.
//
// A Status is either ok or carries a code and a message with its context
// ("run 42 / step train / attempt 2: open model.pt: No such file"). Functions
// that can fail for reasons outside the program (bad spec, missing file, a
// child that failed) return one; exceptions are for bugs and are caught at
// module edges. Safe to copy between threads; not shared.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sluice {

enum class Code { kOk, kInvalidSpec, kNotFound, kIoError, kStepFailed, kCancelled, kIncompatible, kInternal, kUnauthenticated };

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidSpec(std::string m) { return Status(Code::kInvalidSpec, std::move(m)); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status IoError(std::string m) { return Status(Code::kIoError, std::move(m)); }
  static Status StepFailed(std::string m) { return Status(Code::kStepFailed, std::move(m)); }
  static Status Cancelled(std::string m) { return Status(Code::kCancelled, std::move(m)); }
  static Status Incompatible(std::string m) { return Status(Code::kIncompatible, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }
  static Status Unauthenticated(std::string m) { return Status(Code::kUnauthenticated, std::move(m)); }
  // An IoError whose message ends with strerror(errno_value).
  static Status FromErrno(const std::string& context, int errno_value);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Returns a copy whose message is "context: message".
  Status WithContext(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {}
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice
