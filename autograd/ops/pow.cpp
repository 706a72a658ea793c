// pow: z = a ^ b (broadcasting)
//   dz/da = b * a^(b - 1)     (0 where b = 0: z is constant 1 there, even at a = 0 or NaN, and
//                              so are its derivatives; as PyTorch's, which has none there)
//   dz/db = z * log(a)        (taken as 0 where a = 0 and b > 0, the limit, as PyTorch does)
// Saves a, b and z.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Pow final : Node {
  std::string_view name() const override { return "pow"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor a = saved(0), b = saved(1);
    if (needs_grad(0)) {
      // b a^(b - 1) is 0 * inf = NaN at a = 0, b = 0: the derivative of the constant 1 is 0.
      // The branch not taken is computed at a = 1, so that its own derivative (0 x inf there)
      // never reaches a second derivative either: exactly 0 in every order where b = 0.
      const Tensor zero = detail::scalar_like(a, 0.0);
      const Tensor constant = eq(b, zero);
      const Tensor base = where(constant, detail::scalar_like(a, 1.0), a);
      grads[0] = mul(g, where(constant, zero, mul(b, pow(base, add(b, -1.0)))));
    }
    if (needs_grad(1)) {
      // log(a) is -inf at a = 0; the limit of z * log(a) there is 0 for b > 0.
      const Tensor safe = where(eq(a, detail::scalar_like(a, 0.0)), detail::scalar_like(a, 1.0), a);
      grads[1] = mul(g, mul(saved(2), log(safe)));
    }
  }
};
}  // namespace

Tensor pow(const Tensor& base, const Tensor& exponent) {
  const ProfileScope profiled("pow");
  Tensor out = detail::zip("pow", base, exponent, [](auto x, auto y) { return std::pow(x, y); });
  if (auto* node = record<Pow>(out, {base, exponent})) node->save({base, exponent, out});
  return out;
}
}  // namespace xgrad
