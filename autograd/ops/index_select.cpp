// index_select: z = the slices of x at positions index[0], index[1], ... along axis
//   dz/dx: each slice's gradient is added back at its position, index_add(0, axis, index, g)
//   (positions that repeat add up). Saves the index. JVP: dz = index_select(dx, axis, index).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct IndexSelect final : Node {
  IndexSelect(std::size_t axis, std::vector<std::int64_t> index)
      : axis_(axis), index_(std::move(index)) {}
  std::string_view name() const override { return "index_select"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor base = zeros(edge(0).shape, {.dtype = g.dtype()});
    grads[0] = index_add(base, static_cast<std::ptrdiff_t>(axis_), index_, g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return index_select(in.tangent(0), static_cast<std::ptrdiff_t>(axis_), index_);
  }
  std::size_t axis_;
  std::vector<std::int64_t> index_;
};
}  // namespace

Tensor index_select(const Tensor& x, std::ptrdiff_t axis, const std::vector<std::int64_t>& index) {
  const ProfileScope profiled("index_select");
  const std::size_t ax = detail::normalize_axis("index_select", axis, x.dim());
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  detail::check_indices("index_select", index, v.length);
  Shape shape = x.shape();
  shape[ax] = index.size();
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t k = 0; k < index.size(); ++k) {
        const T* src = px + (o * v.length + static_cast<std::size_t>(index[k])) * v.inner;
        std::copy_n(src, v.inner, pz + (o * index.size() + k) * v.inner);
      }
  });
  record<IndexSelect>(out, {x}, ax, index);
  return out;
}

Tensor index_select(const Tensor& x, std::ptrdiff_t axis, const Tensor& index) {
  const xt::xarray<std::int64_t>& positions = detail::indices("index_select", index);
  if (index.dim() > 1)
    throw ShapeError("index_select: the index must be 1-D, got shape " + shape_str(index.shape()));
  return index_select(x, axis, std::vector<std::int64_t>(positions.begin(), positions.end()));
}
}  // namespace xgrad
