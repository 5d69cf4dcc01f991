// Parsing a request's JSON with its bounds checked as it is read: nesting
// depth, the count of values, and numbers that are not finite. A body
// nested 200,000 deep is refused at the first level past the limit, before
// it costs stack or memory: nlohmann's SAX parser does not recurse, and the
// tree it builds is never deeper than the limit. Header-only and free of
// libtorch, so the fuzz target (tests/fuzz/model_json_fuzz.cc) runs it as the
// model server does.
#pragma once

#include <cmath>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sluice::torchplugin {

// The SAX handler: builds the tree through nlohmann's own DOM builder and
// stops at the first bound crossed, with the reason in error().
class BoundedJson {
 public:
  using json = nlohmann::json;
  BoundedJson(json* out, size_t max_depth, size_t max_values) : dom_(*out, false), max_depth_(max_depth), max_values_(max_values) {}
  const std::string& error() const { return error_; }

  bool null() { return Value() && dom_.null(); }
  bool boolean(bool v) { return Value() && dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return Value() && dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return Value() && dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const std::string& text) {
    if (!std::isfinite(v)) return Fail("the number " + text.substr(0, 32) + " is out of range (NaN and Inf are refused)");
    return Value() && dom_.number_float(v, text);
  }
  bool string(std::string& v) { return Value() && dom_.string(v); }
  bool binary(json::binary_t& v) { return Value() && dom_.binary(v); }
  bool start_object(std::size_t n) { return Open() && dom_.start_object(n); }
  bool key(std::string& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return Open() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t, const std::string& token, const nlohmann::detail::exception& e) {
    if (e.id == 406)  // a number too large for a double: 1e999
      return Fail("the number " + token.substr(0, 32) + " is out of range (NaN and Inf are refused)");
    return Fail("the request body is not JSON");
  }

 private:
  bool Fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool Value() {
    return ++values_ <= max_values_ ||
           Fail("the request body holds more than " + std::to_string(max_values_) + " JSON values");
  }
  bool Open() {
    return (++depth_ <= max_depth_ || Fail("the request body is nested deeper than " + std::to_string(max_depth_))) &&
           Value();
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  size_t depth_ = 0, values_ = 0;
  size_t max_depth_, max_values_;
  std::string error_;
};

// Parses `body` into `out`; "" on success, else why it was refused.
inline std::string ParseBounded(std::string_view body, size_t max_depth, size_t max_values, nlohmann::json* out) {
  BoundedJson sax(out, max_depth, max_values);
  bool ok = nlohmann::json::sax_parse(body, &sax);
  if (ok && sax.error().empty()) return "";
  return sax.error().empty() ? "the request body is not JSON" : sax.error();
}

}  // namespace sluice::torchplugin
