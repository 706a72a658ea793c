// gather: z[..., j, ...] = x[..., index[..., j, ...], ...], the index replacing the position
// along axis (z has index's shape)
//   dz/dx: each gradient entry is added back where it was read from,
//   scatter_add(0, axis, index, g). Saves the index. JVP: dz = gather(dx, axis, index).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Gather final : Node {
  Gather(std::size_t axis, Tensor index) : axis_(axis), index_(std::move(index)) {}
  std::string_view name() const override { return "gather"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor base = zeros(edge(0).shape, {.dtype = g.dtype()});
    grads[0] = scatter_add(base, static_cast<std::ptrdiff_t>(axis_), index_, g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return gather(in.tangent(0), static_cast<std::ptrdiff_t>(axis_), index_);
  }
  std::size_t axis_;
  Tensor index_;
};
}  // namespace

Tensor gather(const Tensor& x, std::ptrdiff_t axis, const Tensor& index_tensor) {
  const ProfileScope profiled("gather");
  const xt::xarray<std::int64_t>& index = detail::indices("gather", index_tensor);
  const std::size_t ax = detail::normalize_axis("gather", axis, x.dim());
  const detail::AxisView v = detail::check_gather_index("gather", x, ax, index);
  const std::size_t length = x.size(axis);
  Tensor out = detail::empty_tensor(x.dtype(), index_tensor.shape());
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    const std::int64_t* pi = index.data();
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t j = 0; j < v.length; ++j)
        for (std::size_t i = 0; i < v.inner; ++i) {
          const std::size_t at = (o * v.length + j) * v.inner + i;
          pz[at] = px[(o * length + static_cast<std::size_t>(pi[at])) * v.inner + i];
        }
  });
  record<Gather>(out, {x}, ax, index_tensor);
  return out;
}
}  // namespace xgrad
