// pow: z = a ^ b (broadcasting)
//   dz/da = b * a^(b - 1)     (0 where b = 0: z is constant 1 there, even at a = 0 or NaN, and
//                              so are its derivatives; as PyTorch's, which has none there)
//   dz/db = z * log(a)        (taken as 0 where a = 0 and b > 0, the limit, as PyTorch does)
// Saves a, b and z.
// JVP: dz = dz/da da + dz/db db, the same two factors.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
// dz/da: b a^(b - 1) is 0 * inf = NaN at a = 0, b = 0: the derivative of the constant 1 is 0.
// The branch not taken is computed at a = 1, so that its own derivative (0 x inf there) never
// reaches a second derivative either: exactly 0 in every order where b = 0.
Tensor d_base(const Tensor& a, const Tensor& b) {
  const Tensor zero = detail::scalar_like(a, 0.0);
  const Tensor constant = eq(b, zero);
  const Tensor base = where(constant, detail::scalar_like(a, 1.0), a);
  return where(constant, zero, mul(b, pow(base, add(b, -1.0))));
}
// dz/db = z log(a): log(a) is -inf at a = 0; the limit of z log(a) there is 0 for b > 0.
Tensor d_exponent(const Tensor& a, const Tensor& z) {
  const Tensor safe = where(eq(a, detail::scalar_like(a, 0.0)), detail::scalar_like(a, 1.0), a);
  return mul(z, log(safe));
}

struct Pow final : Node {
  std::string_view name() const override { return "pow"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = mul(g, d_base(saved(0), saved(1)));
    if (needs_grad(1)) grads[1] = mul(g, d_exponent(saved(0), saved(2)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor& a = in.primal(0);
    return detail::add_defined(in.has(0) ? mul(in.tangent(0), d_base(a, in.primal(1))) : Tensor(),
                               in.has(1) ? mul(in.tangent(1), d_exponent(a, in.out)) : Tensor());
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
