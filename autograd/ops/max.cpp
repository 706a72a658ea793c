// max along one axis: z = max_k x[..., k, ...], the axis kept with length 1
//   dz/dx[k] = 1 at the first k holding the maximum, 0 elsewhere (a NaN counts as the maximum).
//   Saves that one-hot mask. JVP: dz = dx at that k, the sum of the mask times dx.
// max and min over several axes, or all of them, reduce one axis at a time; min(x) = -max(-x)
// for floats. Integer and bool tensors: max, min (directly), argmax and argmin too, not recorded.
#include <algorithm>
#include <cmath>

#include "autograd/detail/forward.hpp"
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
}

struct MaxAlong final : Node {
  MaxAlong(std::size_t axis, Tensor mask) : axis_(axis), mask_(std::move(mask)) {}
  std::string_view name() const override { return "max"; }
  // Selected, not multiplied: the other entries get exactly 0 even when g is NaN.
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = where(saved(0), g, detail::scalar_like(g, 0.0));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor& t = in.tangent(0);
    return sum(where(mask_, t, detail::scalar_like(t, 0.0)), {static_cast<std::ptrdiff_t>(axis_)},
               true);
  }
  std::size_t axis_;
  Tensor mask_;  // saved too, for backward's check that it was not changed
};

// Position k (0 <= k < length) of the first maximum (minimum unless largest) of each
// (outer, inner) line; a NaN counts as both.
template <class T>
std::vector<std::size_t> argmax_lines(const T* px, const detail::AxisView& v,
                                      bool largest = true) {
  std::vector<std::size_t> best(v.outer * v.inner, 0);
  for (std::size_t o = 0; o < v.outer; ++o)
    for (std::size_t i = 0; i < v.inner; ++i) {
      const T* line = px + o * v.length * v.inner + i;
      std::size_t b = 0;
      for (std::size_t k = 1; k < v.length && !is_nan(line[b * v.inner]); ++k) {
        const T value = line[k * v.inner];
        const T current = line[b * v.inner];
        if ((largest ? value > current : value < current) || is_nan(value)) b = k;
      }
      best[o * v.inner + i] = b;
    }
  return best;
}

Tensor max_along(const Tensor& x, std::size_t axis, bool largest = true) {
  detail::check_reduced_not_empty(largest ? "max" : "min", x, {axis});
  const detail::AxisView v = detail::axis_view(x.shape(), axis);
  Shape shape = x.shape();
  shape[axis] = 1;
  Tensor mask;
  const bool differentiable = is_floating_point(x.dtype()) && detail::differentiable(x);
  Tensor out = detail::dispatch_all(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = detail::data<T>(x);
    const std::vector<std::size_t> best = argmax_lines(px, v, largest);
    xt::xarray<T> z = detail::empty<T>(shape);
    xt::xarray<bool> m = differentiable ? xt::xarray<bool>(xt::zeros<bool>(x.shape()))
                                        : xt::xarray<bool>();
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t i = 0; i < v.inner; ++i) {
        const std::size_t at = (o * v.length + best[o * v.inner + i]) * v.inner + i;
        z.data()[o * v.inner + i] = px[at];
        if (differentiable) m.data()[at] = true;
      }
    if (differentiable) mask = Tensor(std::move(m));
    return Tensor(std::move(z));
  });
  if (auto* node = record<MaxAlong>(out, {x}, axis, mask)) node->save({mask});
  return out;
}

}  // namespace

Tensor max(const Tensor& x, const Axes& axes, bool keepdims) {
  const ProfileScope profiled("max");
  const std::vector<std::size_t> sorted = detail::normalize_axes("max", axes, x.dim());
  Tensor out = x;
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) out = max_along(out, *it);
  if (keepdims) return out;
  return reshape(out, detail::spec(detail::reduced_shape(x.shape(), sorted, false)));
}

Tensor max(const Tensor& x) {
  const ProfileScope profiled("max");
  detail::check_not_empty("max", x);
  return reshape(max_along(reshape(x, {-1}), 0), {});
}

namespace {
// min of an integer or bool tensor, directly (-max(-x) would wrap for uint8).
Tensor integer_min(const Tensor& x, const std::vector<std::size_t>& sorted, bool keepdims) {
  Tensor out = x;
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) out = max_along(out, *it, false);
  if (keepdims) return out;
  return reshape(out, detail::spec(detail::reduced_shape(x.shape(), sorted, false)));
}

Tensor arg_extreme(const char* op, const Tensor& x, std::ptrdiff_t axis, bool largest) {
  const ProfileScope profiled(op);
  const std::size_t ax = detail::normalize_axis(op, axis, x.dim());
  detail::check_reduced_not_empty(op, x, {ax});
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  std::vector<std::size_t> best = detail::dispatch_all(x.dtype(), [&](auto zero) {
    return argmax_lines(detail::data<decltype(zero)>(x), v, largest);
  });
  Shape shape = x.shape();
  shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(ax));
  xt::xarray<std::int64_t> out = detail::empty<std::int64_t>(shape);
  std::copy(best.begin(), best.end(), out.data());
  return Tensor(std::move(out));
}
}  // namespace

Tensor min(const Tensor& x, const Axes& axes, bool keepdims) {
  const ProfileScope profiled("min");
  if (!is_floating_point(x.dtype()))
    return integer_min(x, detail::normalize_axes("min", axes, x.dim()), keepdims);
  return neg(max(neg(x), axes, keepdims));
}

Tensor min(const Tensor& x) {
  const ProfileScope profiled("min");
  if (!is_floating_point(x.dtype())) {
    detail::check_not_empty("min", x);
    return reshape(max_along(reshape(x, {-1}), 0, false), {});
  }
  return neg(max(neg(x)));
}

Tensor argmax(const Tensor& x, std::ptrdiff_t axis) { return arg_extreme("argmax", x, axis, true); }
Tensor argmin(const Tensor& x, std::ptrdiff_t axis) { return arg_extreme("argmin", x, axis, false); }
}  // namespace xgrad
