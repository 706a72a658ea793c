// sum_to: z = x summed down to `shape`, over the axes that broadcasting from `shape` would repeat
//   dz/dx = 1 for each term: the gradient is broadcast back to x's shape. Saves nothing.
// Sums run in double, so float sums of many terms keep their precision. The engine calls this
// for every gradient whose shape differs from its input's: it is where broadcasting is undone.
#include <algorithm>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct SumTo final : Node {
  std::string_view name() const override { return "sum_to"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = broadcast_to(g, edge(0).shape);
  }
};
}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  const ProfileScope profiled("sum_to");
  if (shape.size() > x.dim() || detail::broadcast_shapes("sum_to", shape, x.shape()) != x.shape())
    throw ShapeError("sum_to: shape " + shape_str(x.shape()) + " cannot be summed to " +
                     shape_str(shape) + " (the target must broadcast to the tensor's shape)");
  if (!is_floating_point(x.dtype())) return detail::integer_sum_to(x, shape);
  // The common case, a bias's gradient: x's trailing axes are `shape` (leading 1s aside), and the
  // leading ones are summed away. Columns are split across the threads; each column is summed in
  // row order, so the result is the same on any number of threads.
  const std::size_t cols = detail::product(shape), total = detail::product(x.shape());
  std::size_t ones = 0;  // shape's leading 1s: summed like the axes it lacks
  while (ones < shape.size() && shape[ones] == 1) ++ones;
  const bool leading =
      cols > 0 && total > 0 && x.is_contiguous() &&
      std::equal(shape.begin() + static_cast<std::ptrdiff_t>(ones), shape.end(),
                 x.shape().end() - static_cast<std::ptrdiff_t>(shape.size() - ones));
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (leading) {
      const T* px = detail::data<T>(x);
      xt::xarray<T> z = detail::empty<T>(shape);
      T* pz = z.data();
      const std::size_t rows = total / cols;
      parallel_for(cols, std::max<std::size_t>(1, kParallelGrain / std::max<std::size_t>(rows, 1)),
                   [=](std::size_t begin, std::size_t end) {
                     std::vector<double> acc(end - begin, 0.0);
                     for (std::size_t r = 0; r < rows; ++r) {
                       const T* row = px + r * cols;
                       for (std::size_t j = begin; j < end; ++j) acc[j - begin] += row[j];
                     }
                     for (std::size_t j = begin; j < end; ++j)
                       pz[j] = static_cast<T>(acc[j - begin]);
                   });
      return Tensor(std::move(z));
    }
    std::vector<double> acc(detail::product(shape), 0.0);
    const detail::Strided<T> in = detail::strided<T>(x, x.shape());  // a view: read in place
    const Shape to = detail::broadcast_strides(shape, x.shape());
    const std::size_t rank = x.dim();
    if (!x.is_contiguous() && in.strides[rank - 1] == 1 && to[rank - 1] == 0 && total > 0) {
      // Rows that are contiguous and summed away (a slice of rows, a whole-tensor sum): each
      // row summed in a vectorized loop, the rows walked by their strides.
      const Shape outer(x.shape().begin(), x.shape().end() - 1);
      const Shape row_in(in.strides.begin(), in.strides.end() - 1);
      const Shape row_to(to.begin(), to.end() - 1);
      const std::size_t n = x.shape()[rank - 1];
      const auto add_row = [&](std::size_t, const std::array<std::size_t, 2>& at) {
        acc[at[0]] += detail::row_sum(in.data + at[1], n, [](T v) { return v; });
      };
      if (outer.empty())
        add_row(0, {0, 0});
      else
        detail::for_each_broadcast<2>(outer, {row_to, row_in}, add_row);
    } else {
      detail::for_each_broadcast<2>(
          x.shape(), {to, in.strides},
          [&](std::size_t, const std::array<std::size_t, 2>& at) { acc[at[0]] += in.data[at[1]]; });
    }
    xt::xarray<T> z = detail::empty<T>(shape);
    for (std::size_t i = 0; i < acc.size(); ++i) z.data()[i] = static_cast<T>(acc[i]);
    return Tensor(std::move(z));
  });
  record<SumTo>(out, {x});
  return out;
}
}  // namespace xgrad
