// cast: z = x converted to another dtype (any of the six: to bool, non-zero is true)
//   dz/dx = 1; the gradient is converted back to x's dtype. Saves nothing. Recorded only between
//   floating dtypes: an integer or bool result is a constant. JVP: dz = dx in z's dtype.
#include <limits>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Cast final : Node {
  explicit Cast(Dtype from) : from_(from) {}
  std::string_view name() const override { return "cast"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = cast(g, from_); }
  Tensor jvp(const ForwardInputs& in) const override { return cast(in.tangent(0), in.out.dtype()); }
  Dtype from_;
};
// v as T: to bool, non-zero is true (NaN too, as C++ and PyTorch); a float to an integer
// truncates toward zero, and saturates at T's limits (NaN gives 0) where C++ leaves the result
// undefined.
template <class T, class F>
T convert_value(F v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != F{};
  } else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<F>) {
    if (!(v == v)) return T{0};
    if (v <= static_cast<F>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= static_cast<F>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}
}  // namespace

Tensor cast(const Tensor& x, Dtype dtype) {
  const ProfileScope profiled("cast");
  Tensor out = detail::dispatch_all(dtype, [&](auto zero) {
    using T = decltype(zero);
    return detail::dispatch_all(x.dtype(), [&](auto from) {
      using F = decltype(from);
      xt::xarray<T> z = detail::empty<T>(x.shape());
      T* dst = z.data();
      detail::for_each_value<F>(x, [&](std::size_t i, F v) { dst[i] = convert_value<T>(v); });
      return Tensor(std::move(z));
    });
  });
  record<Cast>(out, {x}, x.dtype());
  return out;
}
}  // namespace xgrad
