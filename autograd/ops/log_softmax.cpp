// log_softmax along an axis: z_k = x_k - log sum_j e^(x_j), computed with the max shifted out
//   dz_k/dx_j = [k = j] - softmax_j, so dx = g - e^z * sum_k g_k. Saves z.
//   JVP: dz = dx - sum_j(e^z_j dx_j).
// NOTE: a primitive for stability: log(softmax(x)) would give -inf where softmax underflows.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct LogSoftmax final : Node {
  explicit LogSoftmax(std::size_t axis) : axis_(axis) {}
  std::string_view name() const override { return "log_softmax"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Axes axes{static_cast<std::ptrdiff_t>(axis_)};
    grads[0] = sub(g, mul(exp(saved(0)), sum(g, axes, true)));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    const Axes axes{static_cast<std::ptrdiff_t>(axis_)};
    return sub(in.tangent(0), sum(mul(exp(in.out), in.tangent(0)), axes, true));
  }
  std::size_t axis_;
};
}  // namespace

Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis) {
  const ProfileScope profiled("log_softmax");
  const std::size_t ax = detail::normalize_axis("log_softmax", axis, x.dim());
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = detail::empty<T>(x.shape());
    detail::log_softmax_lines(detail::data<T>(x), z.data(), v);
    return Tensor(std::move(z));
  });
  if (auto* node = record<LogSoftmax>(out, {x}, ax)) node->save({out});
  return out;
}
}  // namespace xgrad
