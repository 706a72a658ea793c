// erfc: z = 1 - erf(x) = 2 / sqrt(pi) * integral_x^inf e^(-t^2) dt
//   dz/dx = -2 / sqrt(pi) * e^(-x^2). Saves x. JVP: dz = -2 / sqrt(pi) * e^(-x^2) dx.
// NOTE: a primitive for accuracy: 1 - erf(x) cancels for large x (it is 0 from x = 3.9 in float,
// 5.9 in double); erfc keeps its relative digits until it leaves the normal range (x = 9.2 in
// float, 26.5 in double). gelu's second derivative takes Phi(x) = erfc(-x / sqrt 2) / 2 from it.
#include <cmath>
#include <numbers>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
Tensor slope(const Tensor& x) {
  return mul(exp(neg(mul(x, x))), -2.0 / std::sqrt(std::numbers::pi));
}

struct Erfc final : Node {
  std::string_view name() const override { return "erfc"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = mul(g, slope(saved(0)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return mul(in.tangent(0), slope(in.primal(0)));
  }
};
}  // namespace

Tensor erfc(const Tensor& x) {
  const ProfileScope profiled("erfc");
  Tensor out = detail::map(x, [](auto v) { return std::erfc(v); });
  if (auto* node = record<Erfc>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
