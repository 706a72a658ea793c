// linear: Z = X W^T + b, X of shape (batch, in) or (in), W (out, in), b (out) or none
//   dX = G W,  dW = G^T X,  db = the column sums of G (the engine's sum_to over the batch)
//   Each product is one gemm with transpose flags. Saves X and W.
// NOTE: a primitive rather than add(mm(x, w, false, true), b) for speed: the bias is copied into
// the output rows and gemm accumulates onto it (beta = 1), one pass and one tape entry.
#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Linear final : Node {
  std::string_view name() const override { return "linear"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0), w = saved(1);
    if (x.dim() == 1) {  // one sample: treat as a batch of one
      const Tensor g2 = reshape(g, {1, -1});
      if (needs_grad(0)) grads[0] = reshape(mm(g2, w), {-1});
      if (needs_grad(1)) grads[1] = mm(g2, reshape(x, {1, -1}), true, false);
    } else {
      if (needs_grad(0)) grads[0] = mm(g, w);
      if (needs_grad(1)) grads[1] = mm(g, x, true, false);
    }
    if (num_inputs() == 3 && needs_grad(2)) grads[2] = g;  // summed over the batch by the engine
  }
};
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_same_dtype("linear", x, weight);
  const bool has_bias = bias.defined();
  if (has_bias) detail::check_same_dtype("linear", x, bias);
  if ((x.dim() != 1 && x.dim() != 2) || weight.dim() != 2 || x.size(-1) != weight.size(1) ||
      (has_bias && (bias.dim() != 1 || bias.size(0) != weight.size(0))))
    throw ShapeError("linear: input " + shape_str(x.shape()) + ", weight " +
                     shape_str(weight.shape()) + ", bias " +
                     (has_bias ? shape_str(bias.shape()) : std::string("none")) +
                     "; expected input (batch, in) or (in), weight (out, in), bias (out)");
  const std::size_t batch = x.dim() == 2 ? x.size(0) : 1, in = weight.size(1), out = weight.size(0);
  const Shape shape = x.dim() == 2 ? Shape{batch, out} : Shape{out};
  Tensor z = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> result = detail::empty<T>(shape);
    T* pz = result.data();
    if (has_bias) {
      const T* pb = detail::data<T>(bias);
      for (std::size_t r = 0; r < batch; ++r) std::copy_n(pb, out, pz + r * out);
    } else {
      result.fill(T{0});
    }
    if (in > 0 && batch > 0 && out > 0)
      detail::gemm(false, true, batch, out, in, T{1}, detail::data<T>(x), in,
                   detail::data<T>(weight), in, T{1}, pz, out);
    return Tensor(std::move(result));
  });
  Node* node = has_bias ? static_cast<Node*>(record<Linear>(z, {x, weight, bias}))
                        : static_cast<Node*>(record<Linear>(z, {x, weight}));
  if (node) node->save({x, weight});
  return z;
}
}  // namespace xgrad
