// add: z = a + b (broadcasting), or a + s for a number s
//   dz/da = 1, dz/db = 1. Saves nothing. JVP: dz = da + db.
// Integer and bool operands: promoted (detail::arithmetic_type), integer results computed by
// detail::integer_arithmetic, never recorded.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Add final : Node {
  std::string_view name() const override { return "add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    for (Tensor& slot : grads) slot = g;
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return detail::add_defined(in.tangent(0), in.tangent(1));
  }
};

struct AddScalar final : Node {
  explicit AddScalar(double s) : s_(s) {}
  std::string_view name() const override { return "add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = g; }
  Tensor jvp(const ForwardInputs& in) const override { return in.tangent(0); }
  std::string annotation() const override { return "+ " + number_str(s_); }
  double s_;
};
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("add");
  const Dtype r = detail::arithmetic_type("add", a.dtype(), b.dtype());
  if (!is_floating_point(r))
    return detail::integer_arithmetic("add", detail::IntegerOp::add, a, b);
  if (a.dtype() != r || b.dtype() != r)  // an integer operand: its float copy takes no gradient
    return add(detail::convert(a, r), detail::convert(b, r));
  Tensor out = detail::zip("add", a, b, [](auto x, auto y) { return x + y; });
  record<Add>(out, {a, b});
  return out;
}

Tensor add(const Tensor& a, Scalar b) {
  const ProfileScope profiled("add");
  const Dtype r = detail::arithmetic_type(a.dtype(), b);
  if (!is_floating_point(r))
    return detail::integer_arithmetic("add", detail::IntegerOp::add, a, scalar(b, {.dtype = r}));
  if (a.dtype() != r) return add(detail::convert(a, r), b);
  const double s = b;
  Tensor out = detail::map(a, [s](auto x) { return x + static_cast<decltype(x)>(s); });
  record<AddScalar>(out, {a}, s);
  return out;
}
}  // namespace xgrad
