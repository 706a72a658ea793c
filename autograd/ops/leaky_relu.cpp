// leaky_relu: z = x for x > 0, s * x otherwise (s = negative_slope)
//   dz/dx = 1 for x > 0, s otherwise. Saves x. JVP: dz = (1 for x > 0, s otherwise) dx.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct LeakyRelu final : Node {
  explicit LeakyRelu(double slope) : slope_(slope) {}
  std::string_view name() const override { return "leaky_relu"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = mul(g, slope(saved(0)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return mul(in.tangent(0), slope(in.primal(0)));
  }
  Tensor slope(const Tensor& x) const {
    const double s = slope_;
    return detail::map(x, [s](auto v) { return v > 0 ? 1.0 : s; });
  }
  double slope_;
};
}  // namespace

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  const ProfileScope profiled("leaky_relu");
  Tensor out = detail::map(x, [negative_slope](auto v) {
    return v > 0 ? v : static_cast<decltype(v)>(negative_slope) * v;
  });
  if (auto* node = record<LeakyRelu>(out, {x}, negative_slope)) node->save({x});
  return out;
}
}  // namespace xgrad
