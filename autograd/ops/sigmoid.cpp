// sigmoid: z = 1 / (1 + e^-x)
//   dz/dx = z (1 - z). Saves z.
// NOTE: a primitive for stability: for x << 0 it is computed as e^x / (1 + e^x), so e^-x never
// overflows.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Sigmoid final : Node {
  std::string_view name() const override { return "sigmoid"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    grads[0] = mul(g, mul(z, sub(detail::scalar_like(z, 1.0), z)));
  }
};
}  // namespace

Tensor sigmoid(const Tensor& x) {
  const ProfileScope profiled("sigmoid");
  Tensor out = detail::map(x, [](auto v) { return detail::sigmoid_value(v); });
  if (auto* node = record<Sigmoid>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
