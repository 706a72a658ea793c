// div: z = a / b (broadcasting), true division: integer and bool operands give float32
//   dz/da = 1 / b, dz/db = -a / b^2 = -z / b. Saves b and z. JVP: dz = (da - z db) / b.
// div by a number s: z = a / s, dz/da = 1 / s. Saves s. JVP: dz = da / s.
// a number divided by x: z = s / x, dz/dx = -s / x^2 = -z / x. Saves x and z.
//   JVP: dz = -z dx / x.
// NOTE: primitives rather than a * (1 / b), which rounds twice.
// div with a rounding mode ("trunc", "floor"; floor_divide is "floor"): the quotient rounded,
// in the promoted dtype (integers stay integers). Piecewise constant: a constant, not recorded.
#include <cmath>

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
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor zdb = in.has(1) ? mul(in.out, in.tangent(1)) : Tensor();
    const Tensor top =
        in.has(0) ? (zdb.defined() ? sub(in.tangent(0), zdb) : in.tangent(0)) : neg(zdb);
    return div(top, in.primal(1));
  }
};

struct DivScalar final : Node {
  explicit DivScalar(double s) : s_(s) {}
  std::string_view name() const override { return "div"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = div(g, s_); }
  Tensor jvp(const ForwardInputs& in) const override { return div(in.tangent(0), s_); }
  std::string annotation() const override { return "/ " + number_str(s_); }
  double s_;
};

struct RDivScalar final : Node {
  explicit RDivScalar(double s) : s_(s) {}
  std::string_view name() const override { return "div"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = neg(div(mul(g, saved(1)), saved(0)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return neg(div(mul(in.tangent(0), in.out), in.primal(0)));
  }
  std::string annotation() const override { return number_str(s_) + " /"; }
  double s_;
};

// The dtype of a true division: the promoted one, float32 when both are integers or bools.
Dtype true_division_type(Dtype a, Dtype b) {
  const Dtype r = detail::promote_types("div", a, b);
  return is_floating_point(r) ? r : Dtype::float32;
}
}  // namespace

Tensor div(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("div");
  const Dtype r = true_division_type(a.dtype(), b.dtype());
  if (a.dtype() != r || b.dtype() != r)  // an integer operand: its float copy takes no gradient
    return div(detail::convert(a, r), detail::convert(b, r));
  Tensor out = detail::zip("div", a, b, [](auto x, auto y) { return x / y; });
  if (auto* node = record<Div>(out, {a, b})) node->save({b, out});
  return out;
}

Tensor div(const Tensor& a, Scalar b) {
  const ProfileScope profiled("div");
  if (!is_floating_point(a.dtype())) return div(detail::convert(a, Dtype::float32), b);
  const double s = b;
  Tensor out = detail::map(a, [s](auto v) { return v / static_cast<decltype(v)>(s); });
  record<DivScalar>(out, {a}, s);
  return out;
}

Tensor div(Scalar a, const Tensor& b) {
  const ProfileScope profiled("div");
  if (!is_floating_point(b.dtype())) return div(a, detail::convert(b, Dtype::float32));
  const double s = a;
  Tensor out = detail::map(b, [s](auto v) { return static_cast<decltype(v)>(s) / v; });
  if (auto* node = record<RDivScalar>(out, {b}, s)) node->save({b, out});
  return out;
}

Tensor div(const Tensor& a, const Tensor& b, const std::string& rounding_mode) {
  const ProfileScope profiled("div");
  const bool floor = rounding_mode == "floor";
  if (!floor && rounding_mode != "trunc")
    throw ValueError("div: rounding_mode must be \"trunc\" or \"floor\", got \"" + rounding_mode +
                     "\"");
  const Dtype r = detail::arithmetic_type("div", a.dtype(), b.dtype());
  if (!is_floating_point(r))
    return detail::integer_arithmetic(
        "div", floor ? detail::IntegerOp::div_floor : detail::IntegerOp::div_trunc, a, b);
  const Tensor x = detail::convert(a, r).detach(), y = detail::convert(b, r).detach();
  return detail::zip("div", x, y, [floor](auto p, auto q) {
    const auto quotient = p / q;
    return floor ? std::floor(quotient) : std::trunc(quotient);
  });
}

Tensor floor_divide(const Tensor& a, const Tensor& b) { return div(a, b, "floor"); }
}  // namespace xgrad
