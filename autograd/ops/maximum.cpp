// maximum: z = max(a, b), minimum: z = min(a, b), elementwise with broadcasting
//   dz/da = w, dz/db = 1 - w, with w = 1 where a wins, 0 where b wins, 1/2 on ties (as PyTorch:
//   the gradient is split between equal operands). A NaN wins: it propagates, and its side gets
//   the gradient. Saves w as a constant. JVP: dz = w da + (1 - w) db, selected as the gradient.
// NOTE: a primitive for its conventions: as where(a >= b, a, b) a NaN in a was dropped, and ties
// sent the whole gradient to one side.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
// v scaled by s where s is not 0, exactly 0 elsewhere (even where v is NaN).
Tensor share(const Tensor& s, const Tensor& v) {
  return where(s, mul(v, s), detail::scalar_like(v, 0.0));
}

struct Extremum final : Node {
  Extremum(const char* name, Tensor w) : name_(name), w_(std::move(w)) {}
  std::string_view name() const override { return name_; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    // Selected, then scaled: the losing side gets exactly 0 even when g is NaN.
    const Tensor w = saved(0);
    if (needs_grad(0)) grads[0] = share(w, g);
    if (needs_grad(1)) grads[1] = share(sub(detail::scalar_like(w, 1.0), w), g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return detail::add_defined(
        in.has(0) ? share(w_, in.tangent(0)) : Tensor(),
        in.has(1) ? share(sub(detail::scalar_like(w_, 1.0), w_), in.tangent(1)) : Tensor());
  }
  const char* name_;
  Tensor w_;  // saved too, for backward's check that it was not changed
};

// The share of a's side: 1, 0 or 1/2 (ties), for the larger (sign 1) or the smaller (sign -1).
template <class T>
T share_of_a(T a, T b, int sign) {
  if (std::isnan(a)) return 1;
  if (std::isnan(b)) return 0;
  if (a == b) return T(0.5);
  return (sign > 0 ? a > b : a < b) ? 1 : 0;
}

Tensor extremum(const char* op, const Tensor& a, const Tensor& b, int sign) {
  const ProfileScope profiled(op);
  Tensor out = detail::zip(op, a, b, [sign](auto x, auto y) {
    return share_of_a(x, y, sign) >= 0.5 ? x : y;  // a NaN on either side wins
  });
  if (!detail::differentiable(a) && !detail::differentiable(b)) return out;
  const Tensor w = detail::zip(op, a, b, [sign](auto x, auto y) { return share_of_a(x, y, sign); });
  if (auto* node = record<Extremum>(out, {a, b}, op, w)) node->save({w});
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum("maximum", a, b, 1); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum("minimum", a, b, -1); }
}  // namespace xgrad
