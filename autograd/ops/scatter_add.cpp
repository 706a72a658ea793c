// scatter_add: z = x, with source[..., j, ...] added at x[..., index[..., j, ...], ...]
// (the adjoint of gather)
//   dz/dx = identity;  dz/dsource: entry j reads the gradient where it was added,
//   gather(g, axis, index). Saves the index.
//   JVP: dz = scatter_add(dx, axis, index, dsource) (zeros for a missing one).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct ScatterAdd final : Node {
  ScatterAdd(std::size_t axis, Tensor index) : axis_(axis), index_(std::move(index)) {}
  std::string_view name() const override { return "scatter_add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = g;
    if (needs_grad(1)) grads[1] = gather(g, static_cast<std::ptrdiff_t>(axis_), index_);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    if (!in.has(1)) return in.tangent(0);
    return scatter_add(in.tangent_or_zeros(0), static_cast<std::ptrdiff_t>(axis_), index_,
                       in.tangent(1));
  }
  std::size_t axis_;
  Tensor index_;
};
}  // namespace

Tensor scatter_add(const Tensor& x, std::ptrdiff_t axis, const Tensor& index_tensor,
                   const Tensor& source) {
  const ProfileScope profiled("scatter_add");
  const xt::xarray<std::int64_t>& index = detail::indices("scatter_add", index_tensor);
  detail::check_same_dtype("scatter_add", x, source);
  const std::size_t ax = detail::normalize_axis("scatter_add", axis, x.dim());
  if (!std::equal(source.shape().begin(), source.shape().end(), index.shape().begin(),
                  index.shape().end()))
    throw ShapeError("scatter_add: source has shape " + shape_str(source.shape()) +
                     "; expected the index's shape " + shape_str(index.shape()));
  const detail::AxisView v = detail::check_gather_index("scatter_add", x, ax, index);
  const std::size_t length = x.size(axis);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = detail::values<T>(x);
    const T* ps = detail::data<T>(source);
    const std::int64_t* pi = index.data();
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t j = 0; j < v.length; ++j)
        for (std::size_t i = 0; i < v.inner; ++i) {
          const std::size_t at = (o * v.length + j) * v.inner + i;
          z.data()[(o * length + static_cast<std::size_t>(pi[at])) * v.inner + i] += ps[at];
        }
    return Tensor(std::move(z));
  });
  record<ScatterAdd>(out, {x, source}, ax, index_tensor);
  return out;
}
}  // namespace xgrad
