// neg: z = -x (an integer tensor: 0 - x, wrapping as PyTorch's; bool gives int64)
//   dz/dx = -1. Saves nothing. JVP: dz = -dx.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Neg final : Node {
  std::string_view name() const override { return "neg"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = neg(g); }
  Tensor jvp(const ForwardInputs& in) const override { return neg(in.tangent(0)); }
};
}  // namespace

Tensor neg(const Tensor& x) {
  const ProfileScope profiled("neg");
  if (!is_floating_point(x.dtype())) return sub(0, x);
  Tensor out = detail::map(x, [](auto v) { return -v; });
  record<Neg>(out, {x});
  return out;
}
}  // namespace xgrad
