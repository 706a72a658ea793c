// sqrt: z = x^(1/2)
//   dz/dx = 1 / (2 z)   (inf at x = 0, as in PyTorch). Saves z. JVP: dz = dx / (2 z).
// NOTE: a primitive rather than pow(x, 0.5): exact rounding, and one less saved tensor.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Sqrt final : Node {
  std::string_view name() const override { return "sqrt"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = div(mul(g, 0.5), saved(0));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return div(mul(in.tangent(0), 0.5), in.out);
  }
};
}  // namespace

Tensor sqrt(const Tensor& x) {
  const ProfileScope profiled("sqrt");
  Tensor out = detail::map(x, [](auto v) { return std::sqrt(v); });
  if (auto* node = record<Sqrt>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
