// HeapOptional<T>: std::optional's interface, with the value on the heap, so
// an empty one is a pointer's size. For members most objects leave unset: a
// spec::Step has several (`with`, `service`, `matrix`, ...), each 72 to 112
// bytes as a std::optional, and a 100,000-step spec holds 100,000 Steps.
// Copies copy the value; moves move the pointer.
#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace sluice {

template <typename T>
class HeapOptional {
 public:
  // Implicit, as std::optional's: `step.workdir = std::nullopt`, `= tmpl`.
  HeapOptional() = default;
  HeapOptional(std::nullopt_t) {}
  HeapOptional(const T& v) : p_(std::make_unique<T>(v)) {}
  HeapOptional(T&& v) : p_(std::make_unique<T>(std::move(v))) {}
  HeapOptional(const HeapOptional& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  HeapOptional(HeapOptional&&) noexcept = default;
  HeapOptional& operator=(const HeapOptional& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  HeapOptional& operator=(HeapOptional&&) noexcept = default;
  HeapOptional& operator=(std::nullopt_t) {
    p_.reset();
    return *this;
  }
  HeapOptional& operator=(const T& v) { return *this = HeapOptional(v); }
  HeapOptional& operator=(T&& v) { return *this = HeapOptional(std::move(v)); }

  template <typename... Args>
  T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }
  void reset() { p_.reset(); }

  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  T& value() {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  const T& value() const {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
 private:
  std::unique_ptr<T> p_;
};

}  // namespace sluice
