// mul: z = a * b (broadcasting)
//   dz/da = b, dz/db = a. Saves a and b. JVP: dz = da b + a db.
// mul by a number s: z = s a
//   dz/da = s. Saves s (no tensor is made for it). JVP: dz = s da.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Mul final : Node {
  std::string_view name() const override { return "mul"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = mul(g, saved(1));
    if (needs_grad(1)) grads[1] = mul(g, saved(0));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return detail::add_defined(in.has(0) ? mul(in.tangent(0), in.primal(1)) : Tensor(),
                               in.has(1) ? mul(in.primal(0), in.tangent(1)) : Tensor());
  }
};

struct MulScalar final : Node {
  explicit MulScalar(double s) : s_(s) {}
  std::string_view name() const override { return "mul"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = mul(g, s_); }
  Tensor jvp(const ForwardInputs& in) const override { return mul(in.tangent(0), s_); }
  std::string annotation() const override { return "x " + number_str(s_); }
  double s_;
};
}  // namespace

Tensor mul(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("mul");
  const Dtype r = detail::arithmetic_type("mul", a.dtype(), b.dtype());
  if (!is_floating_point(r))
    return detail::integer_arithmetic("mul", detail::IntegerOp::mul, a, b);
  if (a.dtype() != r || b.dtype() != r)  // an integer operand: its float copy takes no gradient
    return mul(detail::convert(a, r), detail::convert(b, r));
  Tensor out = detail::zip("mul", a, b, [](auto x, auto y) { return x * y; });
  if (auto* node = record<Mul>(out, {a, b})) node->save({a, b});
  return out;
}

Tensor mul(const Tensor& a, Scalar b) {
  const ProfileScope profiled("mul");
  const Dtype r = detail::arithmetic_type(a.dtype(), b);
  if (!is_floating_point(r))
    return detail::integer_arithmetic("mul", detail::IntegerOp::mul, a, scalar(b, {.dtype = r}));
  if (a.dtype() != r) return mul(detail::convert(a, r), b);
  const double s = b;
  Tensor out = detail::map(a, [s](auto x) { return x * static_cast<decltype(x)>(s); });
  record<MulScalar>(out, {a}, s);
  return out;
}
}  // namespace xgrad
