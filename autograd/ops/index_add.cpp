// index_add: z = x, with slice k of `source` added at position index[k] along axis
//   dz/dx = identity;  dz/dsource: slice k of the gradient is g at index[k],
//   index_select(g, axis, index). Saves the index.
//   JVP: dz = index_add(dx, axis, index, dsource) (zeros for a missing one).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct IndexAdd final : Node {
  IndexAdd(std::size_t axis, std::vector<std::int64_t> index)
      : axis_(axis), index_(std::move(index)) {}
  std::string_view name() const override { return "index_add"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (needs_grad(0)) grads[0] = g;
    if (needs_grad(1)) grads[1] = index_select(g, static_cast<std::ptrdiff_t>(axis_), index_);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    if (!in.has(1)) return in.tangent(0);
    return index_add(in.tangent_or_zeros(0), static_cast<std::ptrdiff_t>(axis_), index_,
                     in.tangent(1));
  }
  std::size_t axis_;
  std::vector<std::int64_t> index_;
};
}  // namespace

Tensor index_add(const Tensor& x, std::ptrdiff_t axis, const std::vector<std::int64_t>& index,
                 const Tensor& source) {
  const ProfileScope profiled("index_add");
  detail::check_same_dtype("index_add", x, source);
  const std::size_t ax = detail::normalize_axis("index_add", axis, x.dim());
  Shape expected = x.shape();
  expected[ax] = index.size();
  if (source.shape() != expected)
    throw ShapeError("index_add: source has shape " + shape_str(source.shape()) + "; expected " +
                     shape_str(expected) + " (x's shape with " + std::to_string(index.size()) +
                     " entries along axis " + std::to_string(ax) + ")");
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  detail::check_indices("index_add", index, v.length);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = detail::values<T>(x);
    const T* ps = detail::data<T>(source);
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t k = 0; k < index.size(); ++k) {
        T* dst = z.data() + (o * v.length + static_cast<std::size_t>(index[k])) * v.inner;
        const T* src = ps + (o * index.size() + k) * v.inner;
        for (std::size_t i = 0; i < v.inner; ++i) dst[i] += src[i];
      }
    return Tensor(std::move(z));
  });
  record<IndexAdd>(out, {x, source}, ax, index);
  return out;
}
}  // namespace xgrad
