#pragma once
// Small helpers shared by the tests.

#include <doctest/doctest.h>

#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"

namespace xgrad::testing {

// The value of a float64 tensor as a flat vector.
inline std::vector<double> flat(const Tensor& t) {
  const auto& a = t.value<double>();
  return {a.begin(), a.end()};
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

// CHECKs that a gradcheck report passed, printing it when it did not.
#define CHECK_GRADCHECK(report) \
  do {                          \
    const auto& r_ = (report);  \
    INFO(r_.str());             \
    CHECK(r_.passed);           \
  } while (0)

}  // namespace xgrad::testing
