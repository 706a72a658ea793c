// slice: z = the entries start, start + step, ... (count of them) of x along axis
//   dz/dx: g placed back at those entries, 0 elsewhere. Saves nothing (the region is the node's).
// The backward gives only the region's gradient, and the engine adds it into the region of x's
// gradient (Node::grad_region): T slices of one tensor cost O(size + T slice) in the backward,
// where index_select's scatter into a fresh zero tensor per slice cost O(T size). Under
// create_graph it gives the whole gradient with index_add, so that it is differentiable again.
// Any dtype (the forward only moves elements).
#include <algorithm>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {
struct Slice final : Node {
  explicit Slice(GradRegion region) : region_(region) {}
  std::string_view name() const override { return "slice"; }
  std::optional<GradRegion> grad_region(std::size_t) const override { return region_; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (!GradMode::is_enabled()) {  // no graph recorded: the engine places the region
      grads[0] = g;
      return;
    }
    std::vector<std::int64_t> index(region_.count);
    for (std::size_t k = 0; k < region_.count; ++k)
      index[k] = static_cast<std::int64_t>(region_.start + k * region_.step);
    grads[0] = index_add(zeros(edge(0).shape, {.dtype = g.dtype()}),
                         static_cast<std::ptrdiff_t>(region_.axis), index, g);
  }
  std::string annotation() const override {
    return "axis " + std::to_string(region_.axis) + " from " + std::to_string(region_.start);
  }
  GradRegion region_;
};
}  // namespace

Tensor slice(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t start, std::ptrdiff_t stop,
             std::ptrdiff_t step) {
  const ProfileScope profiled("slice");
  const std::size_t a = detail::normalize_axis("slice", axis, x.dim());
  if (step <= 0) throw ValueError("slice: step must be positive, got " + std::to_string(step));
  const auto length = static_cast<std::ptrdiff_t>(x.size(a));
  const auto clamp_index = [length](std::ptrdiff_t i) {
    if (i < 0) i += length;
    return std::clamp<std::ptrdiff_t>(i, 0, length);
  };
  const std::ptrdiff_t first = clamp_index(start), end = clamp_index(stop);
  GradRegion region{.axis = a, .start = static_cast<std::size_t>(first),
                    .step = static_cast<std::size_t>(step), .count = 0};
  if (end > first) region.count = static_cast<std::size_t>((end - first + step - 1) / step);
  Shape shape = x.shape();
  shape[a] = region.count;
  const detail::AxisView v = detail::axis_view(x.shape(), a);
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(detail::raw_data(x));
    T* pz = static_cast<T*>(detail::raw_output(out));
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t k = 0; k < region.count; ++k)
        std::copy_n(px + (o * v.length + region.start + k * region.step) * v.inner, v.inner,
                    pz + (o * region.count + k) * v.inner);
  });
  record<Slice>(out, {x}, region);
  return out;
}
}  // namespace xgrad
