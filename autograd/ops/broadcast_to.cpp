// broadcast_to: z = x repeated along the axes where it has length 1 (or no axis), NumPy rules
//   dz/dx = the sum of the gradient over the repeats: sum_to(g, shape of x), which the engine
//   applies to every gradient whose shape differs from its input's. Saves nothing.
//   JVP: dz = dx repeated the same way (forward mode expands a rule's result to the output).
#include <algorithm>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct BroadcastTo final : Node {
  std::string_view name() const override { return "broadcast_to"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = g; }
  Tensor jvp(const ForwardInputs& in) const override { return in.tangent(0); }
};
}  // namespace

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const ProfileScope profiled("broadcast_to");
  if (x.dim() > shape.size() || detail::broadcast_shapes("broadcast_to", x.shape(), shape) != shape)
    throw ShapeError("broadcast_to: shape " + shape_str(x.shape()) + " cannot be broadcast to " +
                     shape_str(shape));
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  // x's own axes after its leading 1s, if they end `shape`: x is repeated whole (a scalar, a
  // bias row), copied block by block. Otherwise each element's source is found by its strides.
  std::size_t ones = 0;
  while (ones < x.dim() && x.size(ones) == 1) ++ones;
  const bool blocks =
      std::equal(x.shape().begin() + static_cast<std::ptrdiff_t>(ones), x.shape().end(),
                 shape.end() - static_cast<std::ptrdiff_t>(x.dim() - ones));
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    const std::size_t block = x.numel(), total = detail::product(shape);
    if (block == 1) {
      std::fill_n(pz, total, px[0]);
    } else if (blocks && block > 0) {
      for (std::size_t at = 0; at < total; at += block) std::copy_n(px, block, pz + at);
    } else {
      detail::for_each_broadcast<1>(
          shape, {detail::broadcast_strides(x.shape(), shape)},
          [&](std::size_t i, const std::array<std::size_t, 1>& at) { pz[i] = px[at[0]]; });
    }
  });
  record<BroadcastTo>(out, {x});
  return out;
}
}  // namespace xgrad
