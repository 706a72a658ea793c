// tanh: z = (e^x - e^-x) / (e^x + e^-x)
//   dz/dx = 1 - z^2. Saves z.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Tanh final : Node {
  std::string_view name() const override { return "tanh"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    grads[0] = mul(g, sub(detail::scalar_like(z, 1.0), mul(z, z)));
  }
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
