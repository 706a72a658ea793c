// sub: z = a - b (broadcasting)
//   dz/da = 1, dz/db = -1. Saves nothing.
// NOTE: a primitive rather than a + (-b): one pass and one tape entry instead of two.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Sub final : Node {
  std::string_view name() const override { return "sub"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = g;
    if (needs_grad(1)) grads[1] = neg(g);
  }
};
}  // namespace

Tensor sub(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("sub");
  Tensor out = detail::zip("sub", a, b, [](auto x, auto y) { return x - y; });
  record<Sub>(out, {a, b});
  return out;
}
}  // namespace xgrad
