// softplus: z = log(1 + e^x)
//   dz/dx = sigmoid(x). Saves x. JVP: dz = sigmoid(x) dx.
// NOTE: a primitive for stability: computed as max(x, 0) + log1p(e^-|x|), finite for any x.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Softplus final : Node {
  std::string_view name() const override { return "softplus"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = mul(g, sigmoid(saved(0)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return mul(in.tangent(0), sigmoid(in.primal(0)));
  }
};
}  // namespace

Tensor softplus(const Tensor& x) {
  const ProfileScope profiled("softplus");
  Tensor out = detail::map(x, [](auto v) {
    using T = decltype(v);
    return (v > 0 ? v : T{0}) + std::log1p(std::exp(-std::abs(v)));
  });
  if (auto* node = record<Softplus>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
