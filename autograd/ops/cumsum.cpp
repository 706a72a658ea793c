// cumsum: z[.., i, ..] = sum over j <= i of x[.., j, ..] along one axis
//   dx[.., j, ..] = sum over i >= j of g[.., i, ..]: the cumulative sum of g taken from the end,
//   written as flip(cumsum(flip(g))) so that it is itself differentiable. Saves nothing.
//   JVP: dz = cumsum(dx) along the axis.
// NOTE: a primitive because a composite (a product with a triangular matrix) costs L^2 per line.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Cumsum final : Node {
  explicit Cumsum(std::size_t axis) : axis_(axis) {}
  std::string_view name() const override { return "cumsum"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const auto axis = static_cast<std::ptrdiff_t>(axis_);
    grads[0] = flip(cumsum(flip(g, {axis}), axis), {axis});
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return cumsum(in.tangent(0), static_cast<std::ptrdiff_t>(axis_));
  }
  std::size_t axis_;
};
}  // namespace

Tensor cumsum(const Tensor& x, std::ptrdiff_t axis) {
  const ProfileScope profiled("cumsum");
  const std::size_t ax = detail::normalize_axis("cumsum", axis, x.dim());
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = detail::data<T>(x);
    xt::xarray<T> z = detail::empty<T>(x.shape());
    T* pz = z.data();
    if (v.length == 0) return Tensor(std::move(z));  // nothing to sum: the empty tensor
    for (std::size_t o = 0; o < v.outer; ++o) {
      const std::size_t base = o * v.length * v.inner;
      for (std::size_t k = 0; k < v.inner; ++k) pz[base + k] = px[base + k];
      for (std::size_t i = 1; i < v.length; ++i) {
        const std::size_t at = base + i * v.inner;
        for (std::size_t k = 0; k < v.inner; ++k) pz[at + k] = pz[at - v.inner + k] + px[at + k];
      }
    }
    return Tensor(std::move(z));
  });
  record<Cumsum>(out, {x}, ax);
  return out;
}
}  // namespace xgrad
