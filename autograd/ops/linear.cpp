// linear: Z = X W^T + b, X of shape (batch, in) or (in), W (out, in), b (out) or none
//   dX = G W,  dW = G^T X,  db = the column sums of G (the engine's sum_to over the batch)
//   Each product is one gemm with transpose flags. Saves X and W.
//   JVP: dZ = dX W^T + X dW^T + db.
// NOTE: a primitive rather than add(mm(x, w, false, true), b) for speed: one product that leaves
// the bias in the output (detail::linear_product: from 128 rows in float32 on oneDNN, a matmul
// primitive adding it as it writes; else the bias copied into the rows and gemm accumulating onto
// it), one pass and one tape entry.
//
// linear with an epilogue: Y = act(X W^T + b), act relu, tanh or sigmoid, one op
//   dZ = G act'(Z), written from Y: relu [Y > 0] (a NaN passes, as relu's), tanh 1 - Y^2,
//   sigmoid Y (1 - Y); then dX, dW, db as above from dZ. Saves X, W and Y.
//   JVP: dY = act'(Z) (dX W^T + X dW^T + db), act' written from Y as above.
// NOTE: that product, then the activation in place over the output while it is in cache: the
// pre-activation is never kept, and no second array is made. The activation is not a post-op of
// oneDNN's primitive: its relu turns NaN into 0, and tanh and sigmoid must agree with the ops'
// vectorized values; and at batch 64 and below, where the MLP's fused layers run, gemm is the
// faster product (docs/performance.md).
#include <cmath>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// dX, dW (and db = dz, summed over the batch by the engine) from the gradient at Z.
void linear_backward(const Node& node, const Tensor& x, const Tensor& w, const Tensor& dz,
                     std::span<Tensor> grads) {
  if (x.dim() == 1) {  // one sample: treat as a batch of one
    const Tensor g2 = reshape(dz, {1, -1});
    if (node.needs_grad(0)) grads[0] = reshape(mm(g2, w), {-1});
    if (node.needs_grad(1)) grads[1] = mm(g2, reshape(x, {1, -1}), true, false);
  } else {
    if (node.needs_grad(0)) grads[0] = mm(dz, w);
    if (node.needs_grad(1)) grads[1] = mm(dz, x, true, false);
  }
  if (node.num_inputs() == 3 && node.needs_grad(2)) grads[2] = dz;
}

// dZ = dX W^T + X dW^T + db, for the inputs that have a tangent.
Tensor linear_jvp(const ForwardInputs& in) {
  Tensor dz;
  if (in.has(0)) dz = linear(in.tangent(0), in.primal(1), Tensor());
  if (in.has(1)) dz = detail::add_defined(dz, linear(in.primal(0), in.tangent(1), Tensor()));
  if (in.primals.size() == 3 && in.has(2)) dz = detail::add_defined(dz, in.tangent(2));
  return dz;
}

struct Linear final : Node {
  std::string_view name() const override { return "linear"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    linear_backward(*this, saved(0), saved(1), g, grads);
  }
  Tensor jvp(const ForwardInputs& in) const override { return linear_jvp(in); }
};

// The gradient at Z from the gradient at Y = act(Z) and Y (kernels.hpp's epilogue_grad).
Tensor activation_grad(Epilogue act, const Tensor& y, const Tensor& g) {
  detail::check_same_dtype("linear", y, g);
  return detail::dispatch(y.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> out = detail::empty<T>(y.shape());
    const T* py = detail::data<T>(y);
    const T* pg = detail::data<T>(g);
    T* po = out.data();
    parallel_for(out.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      detail::epilogue_grad(act, py + begin, pg + begin, po + begin, end - begin);
    });
    return Tensor(std::move(out));
  });
}

// Each epilogue's name, and its node's: indexed by the enum.
constexpr const char* kEpilogueNames[][2] = {{"none", "linear"},
                                             {"relu", "linear+relu"},
                                             {"tanh", "linear+tanh"},
                                             {"sigmoid", "linear+sigmoid"}};

const char* fused_name(Epilogue act) { return kEpilogueNames[static_cast<int>(act)][1]; }

struct LinearActivation final : Node {
  explicit LinearActivation(Epilogue act) : act_(act) {}
  std::string_view name() const override { return fused_name(act_); }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor y = saved(2);
    const Tensor dz = detail::differentiable_backward() ? detail::epilogue_grad_recorded(act_, y, g)
                                                        : activation_grad(act_, y, g);
    linear_backward(*this, saved(0), saved(1), dz, grads);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return detail::epilogue_grad_recorded(act_, in.out, linear_jvp(in));
  }
  Epilogue act_;
};

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_same_dtype("linear", x, weight);
  const bool has_bias = bias.defined();
  if (has_bias) detail::check_same_dtype("linear", x, bias);
  if (x.dim() == 0 || weight.dim() != 2 || x.size(-1) != weight.size(1) ||
      (has_bias && (bias.dim() != 1 || bias.size(0) != weight.size(0))))
    throw ShapeError("linear: input " + shape_str(x.shape()) + ", weight " +
                     shape_str(weight.shape()) + ", bias " +
                     (has_bias ? shape_str(bias.shape()) : std::string("none")) +
                     "; expected input (..., in), weight (out, in), bias (out)");
}

// An input (..., in) of more than two axes, as rows: (rows, in) -> (rows, out) -> (..., out).
// Returns an undefined tensor for 1-D and 2-D inputs, which the ops take as they are.
template <class F>
Tensor as_rows(const Tensor& x, const Tensor& weight, F&& f) {
  if (x.dim() <= 2) return Tensor();
  std::vector<std::ptrdiff_t> shape = detail::spec(x.shape());
  shape.back() = static_cast<std::ptrdiff_t>(weight.size(0));
  return reshape(
      f(reshape(x, {detail::leading_count(x.shape(), 1), static_cast<std::ptrdiff_t>(x.size(-1))})),
      shape);
}

// act(x W^T + b) without recording anything.
Tensor linear_values(const Tensor& x, const Tensor& weight, const Tensor& bias, Epilogue act) {
  const bool has_bias = bias.defined();
  const std::size_t batch = x.dim() == 2 ? x.size(0) : 1, in = weight.size(1), out = weight.size(0);
  const Shape shape = x.dim() == 2 ? Shape{batch, out} : Shape{out};
  return detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> result = detail::empty<T>(shape);
    T* pz = result.data();
    detail::linear_product(batch, out, in, detail::data<T>(x), detail::data<T>(weight),
                           has_bias ? detail::data<T>(bias) : nullptr, pz);
    parallel_for(result.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      detail::apply_epilogue(act, pz + begin, end - begin);
    });
    return Tensor(std::move(result));
  });
}
}  // namespace

const char* epilogue_name(Epilogue epilogue) {
  return kEpilogueNames[static_cast<int>(epilogue)][0];
}

Epilogue epilogue_from_name(const std::string& name) {
  for (Epilogue e : {Epilogue::none, Epilogue::relu, Epilogue::tanh, Epilogue::sigmoid})
    if (name == epilogue_name(e)) return e;
  throw ValueError("epilogue_from_name: no fused activation \"" + name +
                   "\"; expected one of none, relu, tanh, sigmoid");
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias);
  if (Tensor z = as_rows(x, weight, [&](const Tensor& r) { return linear(r, weight, bias); });
      z.defined())
    return z;
  const ProfileScope profiled("linear");
  Tensor z = linear_values(x, weight, bias, Epilogue::none);
  Node* node = bias.defined() ? static_cast<Node*>(record<Linear>(z, {x, weight, bias}))
                              : static_cast<Node*>(record<Linear>(z, {x, weight}));
  if (node) node->save({x, weight});
  return z;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Epilogue activation) {
  if (activation == Epilogue::none) return linear(x, weight, bias);
  check_linear(x, weight, bias);
  if (Tensor y = as_rows(x, weight, [&](const Tensor& r) { return linear(r, weight, bias, activation); });
      y.defined())
    return y;
  const ProfileScope profiled(fused_name(activation));
  Tensor y = linear_values(x, weight, bias, activation);
  Node* node = bias.defined()
                   ? static_cast<Node*>(record<LinearActivation>(y, {x, weight, bias}, activation))
                   : static_cast<Node*>(record<LinearActivation>(y, {x, weight}, activation));
  if (node) node->save({x, weight, y});
  return y;
}
}  // namespace xgrad
