// gelu: z = x Phi(x),  Phi(x) = erfc(-x / sqrt 2) / 2, the standard normal's distribution
//   dz/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2 / 2) / sqrt(2 pi). Saves x.
//   JVP: dz = (Phi(x) + x phi(x)) dx.
// Phi through erfc rather than as (1 + erf(x / sqrt 2)) / 2 (PyTorch's form): the sum cancels in
// the lower tail (it is 0 below x = -5.5 in float, -8.3 in double); erfc keeps its relative digits.
// NOTE: a primitive for speed: the composite took five passes and kept four arrays; the transformer
// block's MLP spent a fifth of its step there. float32 runs forward and backward in one pass each,
// in vector lanes (detail::vec::gelu_forward, _backward). Under create_graph the backward is
// written in ops.
#include <cmath>
#include <numbers>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

constexpr double kInvSqrt2 = std::numbers::sqrt2 / 2;
constexpr double kInvSqrt2Pi = std::numbers::inv_sqrtpi * kInvSqrt2;

// gelu(x) (pg null) or its backward g gelu'(x), float32 in vector lanes, split across the threads.
Tensor gelu_f32(const Tensor& x, const float* pg) {
  const float* px = detail::data<float>(x);
  xt::xarray<float> out = detail::empty<float>(x.shape());
  float* dst = out.data();
  parallel_for(x.numel(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
    if (pg)
      detail::vec::gelu_backward(px + begin, pg + begin, dst + begin, end - begin);
    else
      detail::vec::gelu_forward(px + begin, dst + begin, end - begin);
  });
  return Tensor(std::move(out));
}

// dz/dx in ops (recorded: the second derivative).
Tensor slope(const Tensor& x) {
  const Tensor cdf = mul(erfc(mul(x, -kInvSqrt2)), 0.5);
  const Tensor pdf = mul(exp(mul(mul(x, x), -0.5)), kInvSqrt2Pi);
  return add(cdf, mul(x, pdf));
}

struct Gelu final : Node {
  std::string_view name() const override { return "gelu"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0);
    if (detail::differentiable_backward()) {  // in ops, so that the second derivative is recorded
      grads[0] = mul(g, slope(x));
      return;
    }
    if (x.dtype() == Dtype::float32) {
      grads[0] = gelu_f32(x, detail::data<float>(g));
      return;
    }
    grads[0] = detail::zip("gelu", g, x, [](auto gv, auto xv) {
      using T = decltype(xv);
      const T cdf = T(0.5) * std::erfc(-xv * T(kInvSqrt2));
      const T pdf = std::exp(T(-0.5) * xv * xv) * T(kInvSqrt2Pi);
      return gv * (cdf + xv * pdf);
    });
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return mul(in.tangent(0), slope(in.primal(0)));
  }
};
}  // namespace

Tensor gelu(const Tensor& x) {
  const ProfileScope profiled("gelu");
  Tensor out = x.dtype() == Dtype::float32 ? gelu_f32(x, nullptr) : detail::map(x, [](auto v) {
    using T = decltype(v);
    return v * T(0.5) * std::erfc(-v * T(kInvSqrt2));
  });
  if (auto* node = record<Gelu>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
