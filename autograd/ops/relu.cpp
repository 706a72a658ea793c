// relu: z = max(x, 0)
//   dz/dx = [z > 0]   (0 at x = 0). Saves z.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Relu final : Node {
  std::string_view name() const override { return "relu"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    grads[0] = mul(g, gt(z, detail::scalar_like(z, 0.0)));
  }
};
}  // namespace

Tensor relu(const Tensor& x) {
  Tensor out = detail::map(x, [](auto v) { return v > 0 ? v : decltype(v){0}; });
  if (auto* node = record<Relu>(out, {x})) node->save({out});
  return out;
}
}  // namespace xgrad
