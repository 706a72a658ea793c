// sort, topk: composites. The order is found without the tape (a stable sort of each line along
// the axis, NaN counted as the largest value, as PyTorch's); the values are gather(x, axis, order),
// so their gradient goes back to the entries they came from (gather's: scatter_add).
// flip is a composite too: index_select with reversed positions.
#include <algorithm>
#include <numeric>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// The permutation that moves `axis` last, and its inverse.
std::pair<Axes, Axes> axis_last(std::size_t axis, std::size_t rank) {
  Axes to_last, back(rank);
  for (std::size_t d = 0; d < rank; ++d)
    if (d != axis) to_last.push_back(static_cast<std::ptrdiff_t>(d));
  to_last.push_back(static_cast<std::ptrdiff_t>(axis));
  for (std::size_t d = 0; d < rank; ++d)
    back[static_cast<std::size_t>(to_last[d])] = static_cast<std::ptrdiff_t>(d);
  return {to_last, back};
}

// For each line of `moved` (axis last), the positions of its first k entries in sorted order.
template <class T>
Tensor order_lines(const xt::xarray<T>& moved, std::size_t k, bool descending) {
  const std::size_t length = moved.shape().back(), lines = length ? moved.size() / length : 0;
  Shape shape = moved.shape();
  shape.back() = k;
  xt::xarray<std::int64_t> out = detail::empty<std::int64_t>(shape);
  std::vector<std::int64_t> order(length);
  for (std::size_t l = 0; l < lines; ++l) {
    const T* line = moved.data() + l * length;
    std::iota(order.begin(), order.end(), 0);
    // NaN is the largest value; equal values keep their order (a stable sort).
    const auto less = [line](std::int64_t a, std::int64_t b) {
      const T x = line[a], y = line[b];
      if (y != y) return x == x;
      return x < y;
    };
    if (descending)
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return less(b, a); });
    else
      std::stable_sort(order.begin(), order.end(), less);
    std::copy_n(order.begin(), k, out.data() + l * k);
  }
  return Tensor(std::move(out));
}

ValuesIndices sorted(const char* op, const Tensor& x, std::size_t k, std::ptrdiff_t axis,
                     bool descending) {
  const std::size_t ax = detail::normalize_axis(op, axis, x.dim());
  const auto [to_last, back] = axis_last(ax, x.dim());
  const Tensor moved = permute(x, to_last);
  const Tensor order = detail::dispatch_all(x.dtype(), [&](auto zero) {
    return order_lines(detail::values<decltype(zero)>(moved), k, descending);
  });
  const Tensor picked = gather(moved, -1, order);
  return {permute(picked, back), permute(order, back)};
}
}  // namespace

ValuesIndices sort(const Tensor& x, std::ptrdiff_t axis, bool descending) {
  const ProfileScope profiled("sort");
  if (x.dim() == 0) throw ShapeError("sort: needs a tensor of at least one axis, got a scalar");
  const std::size_t ax = detail::normalize_axis("sort", axis, x.dim());
  return sorted("sort", x, x.size(static_cast<std::ptrdiff_t>(ax)), axis, descending);
}

ValuesIndices topk(const Tensor& x, std::size_t k, std::ptrdiff_t axis, bool largest) {
  const ProfileScope profiled("topk");
  if (x.dim() == 0) throw ShapeError("topk: needs a tensor of at least one axis, got a scalar");
  const std::size_t ax = detail::normalize_axis("topk", axis, x.dim());
  if (k > x.size(static_cast<std::ptrdiff_t>(ax)))
    throw ValueError("topk: k = " + std::to_string(k) + " is more than the " +
                     std::to_string(x.size(static_cast<std::ptrdiff_t>(ax))) +
                     " entries along axis " + std::to_string(axis) + " of " + shape_str(x.shape()));
  return sorted("topk", x, k, axis, largest);
}

Tensor flip(const Tensor& x, const Axes& axes) {
  Tensor out = x;
  std::vector<bool> seen(x.dim(), false);
  for (std::ptrdiff_t axis : axes) {
    const std::size_t ax = detail::normalize_axis("flip", axis, x.dim());
    if (seen[ax])
      throw ShapeError("flip: axis " + std::to_string(axis) + " is given twice for " +
                       shape_str(x.shape()));
    seen[ax] = true;
    std::vector<std::int64_t> reversed(x.shape()[ax]);
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    out = index_select(out, static_cast<std::ptrdiff_t>(ax), reversed);
  }
  return out;
}

}  // namespace xgrad
