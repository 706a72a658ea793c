// Comparisons and sign: piecewise-constant functions, so their derivative is 0 almost everywhere
// and their results never require grad. They give masks (1 where true, 0 elsewhere) in the first
// operand's dtype, which backward functions multiply gradients by.
#include "autograd/detail/kernels.hpp"

namespace xgrad {

Tensor gt(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("gt");
  return detail::zip("gt", a, b, [](auto x, auto y) { return decltype(x)(x > y); });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("ge");
  return detail::zip("ge", a, b, [](auto x, auto y) { return decltype(x)(x >= y); });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("lt");
  return detail::zip("lt", a, b, [](auto x, auto y) { return decltype(x)(x < y); });
}
Tensor le(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("le");
  return detail::zip("le", a, b, [](auto x, auto y) { return decltype(x)(x <= y); });
}
Tensor eq(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("eq");
  return detail::zip("eq", a, b, [](auto x, auto y) { return decltype(x)(x == y); });
}
Tensor sign(const Tensor& x) {
  const ProfileScope profiled("sign");
  return detail::map(x, [](auto v) { return decltype(v)((v > 0) - (v < 0)); });
}

}  // namespace xgrad
