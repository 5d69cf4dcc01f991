// HeapOptional (util/heap_optional.h): std::optional's behaviour with the
// value on the heap.
#include <string>

#include <gtest/gtest.h>

#include "util/heap_optional.h"

namespace sluice {
namespace {

TEST(HeapOptionalTest, AnEmptyOneIsAPointersSizeAndHasNoValue) {
  HeapOptional<std::string> none;
  static_assert(sizeof(none) == sizeof(void*));
  EXPECT_FALSE(none);
  EXPECT_FALSE(none.has_value());
  EXPECT_THROW(none.value(), std::bad_optional_access);
}

TEST(HeapOptionalTest, ACopyHasAValueOfItsOwn) {
  HeapOptional<std::string> a = std::string("kept");
  HeapOptional<std::string> b = a;
  *b += " and changed";
  EXPECT_EQ(*a, "kept");
  EXPECT_EQ(*b, "kept and changed");
  a = b;
  b->clear();
  EXPECT_EQ(a.value(), "kept and changed");
  a = std::nullopt;
  EXPECT_FALSE(a);
}

TEST(HeapOptionalTest, AMoveTakesTheValueAndEmplaceReplacesIt) {
  HeapOptional<std::string> a;
  a.emplace(3, 'x');
  EXPECT_EQ(*a, "xxx");
  HeapOptional<std::string> b = std::move(a);
  EXPECT_EQ(*b, "xxx");
  b.reset();
  EXPECT_FALSE(b);
}

}  // namespace
}  // namespace sluice
