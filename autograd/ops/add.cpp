// add: z = a + b (broadcasting), or a + s for a number s
//   dz/da = 1, dz/db = 1. Saves nothing.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Add final : Node {
  std::string_view name() const override { return "add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    for (Tensor& slot : grads) slot = g;
  }
};

struct AddScalar final : Node {
  explicit AddScalar(double s) : s_(s) {}
  std::string_view name() const override { return "add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = g; }
  std::string annotation() const override { return "+ " + number_str(s_); }
  double s_;
};
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("add");
  Tensor out = detail::zip("add", a, b, [](auto x, auto y) { return x + y; });
  record<Add>(out, {a, b});
  return out;
}

Tensor add(const Tensor& a, double b) {
  const ProfileScope profiled("add");
  Tensor out = detail::map(a, [b](auto x) { return x + static_cast<decltype(x)>(b); });
  record<AddScalar>(out, {a}, b);
  return out;
}
}  // namespace xgrad
