// where: z = c ? a : b, elementwise with broadcasting over all three (c a bool tensor, or any
// dtype read as non-zero = true); a and b are promoted to one dtype (any of the six)
//   dz/da = [c], dz/db = 1 - [c]; the condition gets none. Saves c (as a constant).
//   JVP: dz = where(c, da, db), a missing tangent zeros.
// The gradients select, never multiply: grad_a = where(c, g, 0), grad_b = where(c, 0, g), so an
// unselected position gets exactly 0 even where g is NaN or inf (0 x NaN would be NaN), in
// every derivative order (the backward is where again). masked_fill, tril/triu, clamp, elu, the
// losses and the attention masks are built on this.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Where final : Node {
  explicit Where(Tensor mask) : mask_(std::move(mask)) {}
  std::string_view name() const override { return "where"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor mask = saved(0), zero = detail::scalar_like(g, 0.0);
    if (needs_grad(0)) grads[0] = where(mask, g, zero);
    if (needs_grad(1)) grads[1] = where(mask, zero, g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return where(mask_, in.tangent_or_zeros(0), in.tangent_or_zeros(1));
  }
  Tensor mask_;  // saved too, for backward's check that it was not changed
};

// The dtype of where's result when one side is a number: the tensor's, or float32 for an
// integer or bool tensor with a floating number (int64 with a bool one and an integer).
Dtype with_scalar(const Tensor& t, const Scalar& s) {
  if (is_floating_point(t.dtype())) return t.dtype();
  if (!s.is_integral()) return Dtype::float32;
  return t.dtype() == Dtype::bool_ ? Dtype::int64 : t.dtype();
}
}  // namespace

namespace {
// z[i] = c[i] != 0 ? a[i] : b[i] over the broadcast shape, C the condition's element type.
// Every operand is read in place, views included (through its strides).
template <class C, class T>
void select(const Tensor& c, const Tensor& a, const Tensor& b, T* pz, const Shape& shape) {
  const auto* pc = static_cast<const C*>(detail::first_element(c));
  const auto* pa = static_cast<const T*>(detail::first_element(a));
  const auto* pb = static_cast<const T*>(detail::first_element(b));
  const std::size_t n = detail::product(shape);
  const bool c_flat = c.shape() == shape && c.is_contiguous();
  if (c_flat && a.shape() == shape && a.is_contiguous() && b.numel() == 1) {  // relu's backward
    const T other = pb[0];
    for (std::size_t i = 0; i < n; ++i) {
      const T value = pa[i];  // read unconditionally: the loop then vectorizes as a blend
      pz[i] = pc[i] != C{} ? value : other;
    }
    return;
  }
  if (c_flat && b.shape() == shape && b.is_contiguous() && a.numel() == 1) {  // as grad_b
    const T one = pa[0];
    for (std::size_t i = 0; i < n; ++i) {
      const T value = pb[i];
      pz[i] = pc[i] != C{} ? one : value;
    }
    return;
  }
  detail::for_each_broadcast<3>(shape,
                                {detail::layout_strides(c, shape), detail::layout_strides(a, shape),
                                 detail::layout_strides(b, shape)},
                                [&](std::size_t i, const std::array<std::size_t, 3>& at) {
                                  pz[i] = pc[at[0]] != C{} ? pa[at[1]] : pb[at[2]];
                                });
}
}  // namespace

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  const ProfileScope profiled("where");
  const Dtype r = detail::promote_types("where", a.dtype(), b.dtype());
  const Tensor x = detail::convert(a, r), y = detail::convert(b, r);
  // A bool, float32 or float64 condition is read as it is (relu's backward passes its output);
  // an integer one is converted.
  const Tensor c = is_floating_point(condition.dtype())
                       ? condition
                       : detail::convert(condition, Dtype::bool_);
  const Shape shape = detail::broadcast_shapes(
      "where", c.shape(), detail::broadcast_shapes("where", a.shape(), b.shape()));
  Tensor out = detail::empty_tensor(r, shape);
  detail::dispatch_bytes(r, [&](auto zero) {
    using T = decltype(zero);
    T* pz = static_cast<T*>(detail::raw_output(out));
    switch (c.dtype()) {
      case Dtype::float32:
        return select<float, T>(c, x, y, pz, shape);
      case Dtype::float64:
        return select<double, T>(c, x, y, pz, shape);
      default:
        return select<bool, T>(c, x, y, pz, shape);
    }
  });
  const Tensor mask = c.detach();  // its values only, not the condition's graph
  if (auto* node = record<Where>(out, {a, b}, mask)) node->save({mask});
  return out;
}

Tensor where(const Tensor& condition, const Tensor& a, Scalar b) {
  return where(condition, a, scalar(b, {.dtype = with_scalar(a, b)}));
}

Tensor where(const Tensor& condition, Scalar a, const Tensor& b) {
  return where(condition, scalar(a, {.dtype = with_scalar(b, a)}), b);
}

Tensor where(const Tensor& condition, Scalar a, Scalar b) {
  const bool integral = a.is_integral() && b.is_integral();
  const TensorOptions options{.dtype = integral ? Dtype::int64 : Dtype::float32};
  return where(condition, scalar(a, options), scalar(b, options));
}
}  // namespace xgrad
