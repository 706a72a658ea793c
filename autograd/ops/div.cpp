// div: z = a / b (broadcasting)
//   dz/da = 1 / b, dz/db = -a / b^2 = -z / b. Saves b and z.
// NOTE: a primitive rather than a * (1 / b), which rounds twice.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Div final : Node {
  std::string_view name() const override { return "div"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor b = saved(0);
    if (needs_grad(0)) grads[0] = div(g, b);
    if (needs_grad(1)) grads[1] = neg(div(mul(g, saved(1)), b));
  }
};
}  // namespace

Tensor div(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("div");
  Tensor out = detail::zip("div", a, b, [](auto x, auto y) { return x / y; });
  if (auto* node = record<Div>(out, {a, b})) node->save({b, out});
  return out;
}
}  // namespace xgrad
