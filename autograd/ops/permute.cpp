// permute: z = x with its axes reordered, z[i_axes[0], i_axes[1], ...] = x[i_0, i_1, ...]
//   dz/dx = identity; the gradient is permuted back with the inverse permutation.
//   Saves the permutation.
#include <xtensor/xmanipulation.hpp>

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
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = xt::transpose(x.value<T>(), perm);
    return Tensor(std::move(z));
  });
  record<Permute>(out, {x}, Axes(perm.begin(), perm.end()));
  return out;
}
}  // namespace xgrad
