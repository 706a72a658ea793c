// abs: z = |x|
//   dz/dx = sign(x)   (0 at x = 0, the subgradient PyTorch picks). Saves x.
//   JVP: dz = sign(x) dx.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Abs final : Node {
  std::string_view name() const override { return "abs"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = mul(g, sign(saved(0)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return mul(in.tangent(0), sign(in.primal(0)));
  }
};
}  // namespace

Tensor abs(const Tensor& x) {
  const ProfileScope profiled("abs");
  Tensor out = detail::map(x, [](auto v) { return std::abs(v); });
  if (auto* node = record<Abs>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
