// permute: z = x with its axes reordered, z[i_axes[0], i_axes[1], ...] = x[i_0, i_1, ...]
//   dz/dx = identity; the gradient is permuted back with the inverse permutation.
//   Saves the permutation.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Permute final : Node {
  explicit Permute(Axes axes) : axes_(std::move(axes)) {}
  std::string_view name() const override { return "permute"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    Axes inverse(axes_.size());
    for (std::size_t i = 0; i < axes_.size(); ++i)
      inverse[static_cast<std::size_t>(axes_[i])] = static_cast<std::ptrdiff_t>(i);
    grads[0] = permute(g, inverse);
  }
  Axes axes_;
};
}  // namespace

Tensor permute(const Tensor& x, const Axes& axes) {
  const ProfileScope profiled("permute");
  const std::size_t rank = x.dim();
  std::vector<std::size_t> perm(rank);
  std::vector<bool> seen(rank, false);
  if (axes.size() != rank)
    throw ShapeError("permute: " + std::to_string(axes.size()) +
                     " axes given for a tensor of shape " + shape_str(x.shape()));
  for (std::size_t i = 0; i < rank; ++i) {
    perm[i] = detail::normalize_axis("permute", axes[i], rank);
    if (seen[perm[i]])
      throw ShapeError("permute: axis " + std::to_string(perm[i]) +
                       " appears twice; expected a "
                       "permutation of 0.." +
                       std::to_string(rank - 1));
    seen[perm[i]] = true;
  }
  // Output element i reads x at the offset of its index under x's row-major strides, permuted.
  const Shape in_strides = detail::broadcast_strides(x.shape(), x.shape());
  Shape shape(rank), strides(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    shape[i] = x.shape()[perm[i]];
    strides[i] = x.shape()[perm[i]] == 1 ? 0 : in_strides[perm[i]];
  }
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    detail::for_each_broadcast<1>(shape, {strides},
                                  [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                                    pz[i] = px[at[0]];
                                  });
  });
  record<Permute>(out, {x}, Axes(perm.begin(), perm.end()));
  return out;
}
}  // namespace xgrad
