// cast: z = x converted to another dtype
//   dz/dx = 1; the gradient is converted back to x's dtype. Saves nothing.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Cast final : Node {
  explicit Cast(Dtype from) : from_(from) {}
  std::string_view name() const override { return "cast"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = cast(g, from_); }
  Dtype from_;
};
}  // namespace

Tensor cast(const Tensor& x, Dtype dtype) {
  const ProfileScope profiled("cast");
  Tensor out = detail::dispatch(dtype, [&](auto zero) {
    using T = decltype(zero);
    return detail::dispatch(x.dtype(), [&](auto from) {
      using F = decltype(from);
      const xt::xarray<F>& a = x.value<F>();
      xt::xarray<T> z = detail::empty<T>(a.shape());
      for (std::size_t i = 0; i < a.size(); ++i) z.data()[i] = static_cast<T>(a.data()[i]);
      return Tensor(std::move(z));
    });
  });
  record<Cast>(out, {x}, x.dtype());
  return out;
}
}  // namespace xgrad
