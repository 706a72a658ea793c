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
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    detail::for_each_broadcast<1>(
        shape, {detail::broadcast_strides(x.shape(), shape)},
        [&](std::size_t i, const std::array<std::size_t, 1>& at) { pz[i] = px[at[0]]; });
  });
  record<BroadcastTo>(out, {x});
  return out;
}
}  // namespace xgrad
