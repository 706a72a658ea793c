// sub: z = a - b (broadcasting), a - s, or s - b for a number s
//   dz/da = 1, dz/db = -1. Saves nothing. JVP: dz = da - db (s - x: dz = -dx).
// NOTE: a primitive rather than a + (-b): one pass and one tape entry instead of two.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Sub final : Node {
  std::string_view name() const override { return "sub"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = g;
    if (needs_grad(1)) grads[1] = neg(g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    if (!in.has(1)) return in.tangent(0);
    return in.has(0) ? sub(in.tangent(0), in.tangent(1)) : neg(in.tangent(1));
  }
};

// s - x: dz/dx = -1.
struct RSubScalar final : Node {
  explicit RSubScalar(double s) : s_(s) {}
  std::string_view name() const override { return "sub"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = neg(g); }
  Tensor jvp(const ForwardInputs& in) const override { return neg(in.tangent(0)); }
  std::string annotation() const override { return number_str(s_) + " -"; }
  double s_;
};
}  // namespace

Tensor sub(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("sub");
  const Dtype r = detail::arithmetic_type("sub", a.dtype(), b.dtype());
  if (!is_floating_point(r))
    return detail::integer_arithmetic("sub", detail::IntegerOp::sub, a, b);
  if (a.dtype() != r || b.dtype() != r)  // an integer operand: its float copy takes no gradient
    return sub(detail::convert(a, r), detail::convert(b, r));
  Tensor out = detail::zip("sub", a, b, [](auto x, auto y) { return x - y; });
  record<Sub>(out, {a, b});
  return out;
}

Tensor sub(const Tensor& a, Scalar b) {
  const ProfileScope profiled("sub");
  const Dtype r = detail::arithmetic_type(a.dtype(), b);
  if (!is_floating_point(r))
    return detail::integer_arithmetic("sub", detail::IntegerOp::sub, a, scalar(b, {.dtype = r}));
  return add(a, -b.value());
}

Tensor sub(Scalar a, const Tensor& b) {
  const ProfileScope profiled("sub");
  const Dtype r = detail::arithmetic_type(b.dtype(), a);
  if (!is_floating_point(r))
    return detail::integer_arithmetic("sub", detail::IntegerOp::sub, scalar(a, {.dtype = r}), b);
  if (b.dtype() != r) return sub(a, detail::convert(b, r));
  const double s = a;
  Tensor out = detail::map(b, [s](auto x) { return static_cast<decltype(x)>(s) - x; });
  record<RSubScalar>(out, {b}, s);
  return out;
}
}  // namespace xgrad
