// concat: z = x_0, x_1, ... joined along axis (shapes equal elsewhere)
//   dz/dx_i = identity on x_i's block: the gradient of x_i is slice(g, axis, start_i, stop_i).
//   Saves the block lengths. JVP: dz = dx_0, dx_1, ... joined (zeros for an input without one).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Concat final : Node {
  Concat(std::size_t axis, std::vector<std::size_t> lengths)
      : axis_(axis), lengths_(std::move(lengths)) {}
  std::string_view name() const override { return "concat"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    std::ptrdiff_t start = 0;
    for (std::size_t i = 0; i < lengths_.size(); ++i) {
      const auto stop = start + static_cast<std::ptrdiff_t>(lengths_[i]);
      if (needs_grad(i)) grads[i] = slice(g, static_cast<std::ptrdiff_t>(axis_), start, stop);
      start = stop;
    }
  }
  Tensor jvp(const ForwardInputs& in) const override {
    std::vector<Tensor> parts;
    for (std::size_t i = 0; i < in.primals.size(); ++i) parts.push_back(in.tangent_or_zeros(i));
    return concat(parts, static_cast<std::ptrdiff_t>(axis_));
  }
  std::size_t axis_;
  std::vector<std::size_t> lengths_;
};
}  // namespace

Tensor concat(const std::vector<Tensor>& tensors, std::ptrdiff_t axis) {
  const ProfileScope profiled("concat");
  if (tensors.empty()) throw ValueError("concat: needs at least one tensor");
  const Tensor& first = tensors[0];
  const std::size_t ax = detail::normalize_axis("concat", axis, first.dim());
  Shape shape = first.shape();
  shape[ax] = 0;
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_same_dtype("concat", first, t);
    bool ok = t.dim() == first.dim();
    for (std::size_t d = 0; ok && d < t.dim(); ++d) ok = d == ax || t.size(d) == first.size(d);
    if (!ok)
      throw ShapeError("concat: tensor " + std::to_string(i) + " has shape " +
                       shape_str(t.shape()) + ", tensor 0 has " + shape_str(first.shape()) +
                       "; they must agree on every axis but axis " + std::to_string(ax));
    lengths.push_back(t.size(ax));
    shape[ax] += t.size(ax);
  }
  const detail::AxisView v = detail::axis_view(shape, ax);
  Tensor out = detail::empty_tensor(first.dtype(), shape);
  detail::dispatch_bytes(first.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* dst = static_cast<T*>(detail::raw_output(out));
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t i = 0; i < tensors.size(); ++i) {
        const std::size_t block = lengths[i] * v.inner;
        dst = std::copy_n(static_cast<const T*>(detail::raw_data(tensors[i])) + o * block, block,
                          dst);
      }
  });
  std::vector<const Tensor*> inputs;
  for (const Tensor& t : tensors) inputs.push_back(&t);
  record_node<Concat>(out, inputs, ax, std::move(lengths));
  return out;
}
}  // namespace xgrad
