// exp: z = e^x
//   dz/dx = z. Saves z. JVP: dz = z dx.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Exp final : Node {
  std::string_view name() const override { return "exp"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = mul(g, saved(0)); }
  Tensor jvp(const ForwardInputs& in) const override { return mul(in.tangent(0), in.out); }
};
}  // namespace

Tensor exp(const Tensor& x) {
  const ProfileScope profiled("exp");
  Tensor out = detail::map(x, [](auto v) { return std::exp(v); });
  if (auto* node = record<Exp>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
