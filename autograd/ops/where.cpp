// where: z = c ? a : b, elementwise with broadcasting over all three (c non-zero is true)
//   dz/da = [c], dz/db = 1 - [c]; the condition gets none. Saves [c] as a 0/1 constant.
// The gradients select, never multiply: grad_a = where(c, g, 0), grad_b = where(c, 0, g), so an
// unselected position gets exactly 0 even where g is NaN or inf (0 x NaN would be NaN), in
// every derivative order (the backward is where again). masked_fill, tril/triu, clamp, elu, the
// losses and the attention masks are built on this.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Where final : Node {
  std::string_view name() const override { return "where"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor mask = saved(0), zero = detail::scalar_like(g, 0.0);
    if (needs_grad(0)) grads[0] = where(mask, g, zero);
    if (needs_grad(1)) grads[1] = where(mask, zero, g);
  }
};
}  // namespace

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("where");
  detail::check_same_dtype("where", a, b);
  const Shape shape = detail::broadcast_shapes(
      "where", condition.shape(), detail::broadcast_shapes("where", a.shape(), b.shape()));
  Tensor out = detail::dispatch(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* pa = detail::data<T>(a);
    const T* pb = detail::data<T>(b);
    xt::xarray<T> z = detail::empty<T>(shape);
    T* pz = z.data();
    detail::dispatch(condition.dtype(), [&](auto czero) {
      const auto* pc = detail::data<decltype(czero)>(condition);
      if (condition.shape() == shape && a.shape() == shape &&
          b.numel() == 1) {  // as relu's backward
        const T other = pb[0];
        for (std::size_t i = 0, n = z.size(); i < n; ++i) {
          const T value = pa[i];  // read unconditionally: the loop then vectorizes as a blend
          pz[i] = pc[i] != 0 ? value : other;
        }
        return;
      }
      if (condition.shape() == shape && b.shape() == shape &&
          a.numel() == 1) {  // as the backward's grad_b
        const T one = pa[0];
        for (std::size_t i = 0, n = z.size(); i < n; ++i) {
          const T value = pb[i];
          pz[i] = pc[i] != 0 ? one : value;
        }
        return;
      }
      detail::for_each_broadcast<3>(shape,
                                    {detail::broadcast_strides(condition.shape(), shape),
                                     detail::broadcast_strides(a.shape(), shape),
                                     detail::broadcast_strides(b.shape(), shape)},
                                    [&](std::size_t i, const std::array<std::size_t, 3>& at) {
                                      pz[i] = pc[at[0]] != 0 ? pa[at[1]] : pb[at[2]];
                                    });
    });
    return Tensor(std::move(z));
  });
  if (auto* node = record<Where>(out, {a, b})) {
    const Tensor mask =
        cast(detail::map(condition, [](auto c) { return c != 0 ? 1 : 0; }), a.dtype());
    node->save({mask});
  }
  return out;
}
}  // namespace xgrad
