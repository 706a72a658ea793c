// softmax along an axis: z_k = e^(x_k - m) / sum_j e^(x_j - m), m = max_j x_j
//   dz_k/dx_j = z_k ([k = j] - z_j), so dx = z * (g - sum_k(g_k z_k)). Saves z.
//   JVP: the Jacobian is symmetric, so the same: dz = z * (dx - sum_k(dx_k z_k)).
// NOTE: a primitive for stability (the shift by m keeps e^ in range for logits of +-1e4, and
// -inf entries give exactly 0) and for speed (two passes over each line, no temporaries).
#include <cmath>
#include <limits>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Softmax final : Node {
  explicit Softmax(std::size_t axis) : axis_(axis) {}
  std::string_view name() const override { return "softmax"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor z = saved(0);
    const Axes axes{static_cast<std::ptrdiff_t>(axis_)};
    grads[0] = along(g, saved(0));
  }
  Tensor jvp(const ForwardInputs& in) const override { return along(in.tangent(0), in.out); }
  // J v = J^T v = z * (v - sum_k(v_k z_k)).
  Tensor along(const Tensor& v, const Tensor& z) const {
    const Axes axes{static_cast<std::ptrdiff_t>(axis_)};
    return mul(z, sub(v, sum(mul(v, z), axes, true)));
  }
  std::size_t axis_;
};
}  // namespace

Tensor softmax(const Tensor& x, std::ptrdiff_t axis) {
  const ProfileScope profiled("softmax");
  const std::size_t ax = detail::normalize_axis("softmax", axis, x.dim());
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = detail::empty<T>(x.shape());
    detail::log_softmax_lines(detail::data<T>(x), z.data(), v);
    for (T& e : z) e = std::exp(e);
    return Tensor(std::move(z));
  });
  if (auto* node = record<Softmax>(out, {x}, ax)) node->save({out});
  return out;
}
}  // namespace xgrad
