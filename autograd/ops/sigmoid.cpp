// sigmoid: z = 1 / (1 + e^-x)
//   dz/dx = z (1 - z). Saves z. JVP: dz = z (1 - z) dx.
// NOTE: a primitive for stability: for x << 0 it is computed as e^x / (1 + e^x), so e^-x never
// overflows.
#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {
// dz/dx from z, in ops (recorded: the second derivative).
Tensor slope(const Tensor& z) { return mul(z, sub(detail::scalar_like(z, 1.0), z)); }

struct Sigmoid final : Node {
  std::string_view name() const override { return "sigmoid"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    if (detail::differentiable_backward()) {  // in ops, so that the second derivative is recorded
      grads[0] = mul(g, slope(z));
      return;
    }
    // one pass: the composite's three each read and wrote the whole array
    grads[0] = detail::zip("sigmoid", g, z,
                           [](auto gv, auto zv) { return gv * (zv * (decltype(zv){1} - zv)); });
  }
  Tensor jvp(const ForwardInputs& in) const override { return mul(in.tangent(0), slope(in.out)); }
};
}  // namespace

Tensor sigmoid(const Tensor& x) {
  const ProfileScope profiled("sigmoid");
  // float32: 1 / (1 + e^-x) with a vectorized exp (e^-x = inf gives 0, the limit)
  Tensor out = detail::map_vectorized(
      x, detail::vec::exp, [](float v) { return -v; },
      [](float, float e) { return 1.0f / (1.0f + e); },
      [](auto v) { return detail::sigmoid_value(v); });
  if (auto* node = record<Sigmoid>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
