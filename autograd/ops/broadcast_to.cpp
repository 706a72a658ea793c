// broadcast_to: z = x repeated along the axes where it has length 1 (or no axis), NumPy rules
//   dz/dx = the sum of the gradient over the repeats: sum_to(g, shape of x), which the engine
//   applies to every gradient whose shape differs from its input's. Saves nothing.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct BroadcastTo final : Node {
  std::string_view name() const override { return "broadcast_to"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = g; }
};
}  // namespace

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const ProfileScope profiled("broadcast_to");
  if (x.dim() > shape.size() || detail::broadcast_shapes("broadcast_to", x.shape(), shape) != shape)
    throw ShapeError("broadcast_to: shape " + shape_str(x.shape()) + " cannot be broadcast to " +
                     shape_str(shape));
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = detail::data<T>(x);
    xt::xarray<T> z = detail::empty<T>(shape);
    T* pz = z.data();
    detail::for_each_broadcast<1>(
        shape, {detail::broadcast_strides(x.shape(), shape)},
        [&](std::size_t i, const std::array<std::size_t, 1>& at) { pz[i] = px[at[0]]; });
    return Tensor(std::move(z));
  });
  record<BroadcastTo>(out, {x});
  return out;
}
}  // namespace xgrad
