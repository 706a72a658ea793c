// erf: z = 2 / sqrt(pi) * integral_0^x e^(-t^2) dt
//   dz/dx = 2 / sqrt(pi) * e^(-x^2). Saves x.
#include <cmath>
#include <numbers>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Erf final : Node {
  std::string_view name() const override { return "erf"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0);
    const double c = 2.0 / std::sqrt(std::numbers::pi);
    grads[0] = mul(g, mul(exp(neg(mul(x, x))), c));
  }
};
}  // namespace

Tensor erf(const Tensor& x) {
  const ProfileScope profiled("erf");
  Tensor out = detail::map(x, [](auto v) { return std::erf(v); });
  if (auto* node = record<Erf>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
