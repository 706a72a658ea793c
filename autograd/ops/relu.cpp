// relu: z = max(x, 0); relu(NaN) = NaN
//   dz/dx = [z > 0]   (0 at x = 0; at a NaN the gradient passes, as PyTorch's). Saves z.
//   JVP: dz = [z > 0] dx, selected as the gradient is.
// The gradient is where(z, g, 0): z is non-zero exactly where z > 0 or NaN, so no mask is built.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Relu final : Node {
  std::string_view name() const override { return "relu"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = where(saved(0), g, detail::scalar_like(g, 0.0));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return where(in.out, in.tangent(0), detail::scalar_like(in.tangent(0), 0.0));
  }
};
}  // namespace

Tensor relu(const Tensor& x) {
  const ProfileScope profiled("relu");
  Tensor out = detail::map(x, [](auto v) { return v > 0 || v != v ? v : decltype(v){0}; });
  if (auto* node = record<Relu>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
