#pragma once
// Small helpers shared by the tests.

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "autograd/compare.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"

namespace xgrad::testing {

// The value of a float64 tensor as a flat vector.
inline std::vector<double> flat(const Tensor& t) {
  const Tensor whole = t.contiguous();  // a view's values as one array
  const auto& a = whole.value<double>();
  return {a.begin(), a.end()};
}

// The largest |a - b| of two float64 tensors of one shape (worst_entry's: a NaN in either makes
// it NaN, so a `< tolerance` check fails).
inline double max_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = flat(a), y = flat(b);
  return worst_entry(x, y).abs_error;
}

inline Tensor f64(xt::xarray<double> a, bool requires_grad = false) {
  return Tensor(std::move(a), requires_grad);
}
inline Tensor f64(xt::nested_initializer_list_t<double, 1> v, bool requires_grad = false) {
  return tensor(v, {.dtype = kFloat64, .requires_grad = requires_grad});
}
inline Tensor f64(xt::nested_initializer_list_t<double, 2> v, bool requires_grad = false) {
  return tensor(v, {.dtype = kFloat64, .requires_grad = requires_grad});
}

// int64 tensors (labels, positions) from braces, and the values of an integer or bool tensor as
// a flat vector, for CHECK(ints(argmax(x, 1)) == std::vector<std::int64_t>{1, 0}).
inline Tensor i64(xt::nested_initializer_list_t<double, 1> v) {
  return tensor(v, {.dtype = kInt64});
}
inline Tensor i64(xt::nested_initializer_list_t<double, 2> v) {
  return tensor(v, {.dtype = kInt64});
}
inline Tensor i64(xt::nested_initializer_list_t<double, 3> v) {
  return tensor(v, {.dtype = kInt64});
}
inline std::vector<std::int64_t> ints(const Tensor& t) {
  const Tensor wide = t.to(kInt64).contiguous();
  const auto& a = wide.value<std::int64_t>();
  return {a.begin(), a.end()};
}
using I64s = std::vector<std::int64_t>;

// CHECKs that a gradcheck report passed, printing it when it did not.
#define CHECK_GRADCHECK(report) \
  do {                          \
    const auto& r_ = (report);  \
    INFO(r_.str());             \
    CHECK(r_.passed);           \
  } while (0)

}  // namespace xgrad::testing
