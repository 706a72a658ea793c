// tanh: z = (e^x - e^-x) / (e^x + e^-x)
//   dz/dx = 1 - z^2. Saves z. JVP: dz = (1 - z^2) dx.
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {
// dz/dx from z, in ops (recorded: the second derivative).
Tensor slope(const Tensor& z) { return sub(detail::scalar_like(z, 1.0), mul(z, z)); }

struct Tanh final : Node {
  std::string_view name() const override { return "tanh"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    if (detail::differentiable_backward()) {  // in ops, so that the second derivative is recorded
      grads[0] = mul(g, slope(z));
      return;
    }
    // one pass: the composite's three each read and wrote the whole array
    grads[0] = detail::zip("tanh", g, z,
                           [](auto gv, auto zv) { return gv * (decltype(zv){1} - zv * zv); });
  }
  Tensor jvp(const ForwardInputs& in) const override { return mul(in.tangent(0), slope(in.out)); }
};
}  // namespace

Tensor tanh(const Tensor& x) {
  const ProfileScope profiled("tanh");
  Tensor out = detail::map_vectorized(
      x, detail::vec::tanh, [](float v) { return v; }, [](float, float t) { return t; },
      [](auto v) { return std::tanh(v); });
  if (auto* node = record<Tanh>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
