// gelu: z = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal's distribution
//   dz/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2 / 2) / sqrt(2 pi). Saves x.
// NOTE: a primitive for speed: the composite took five passes and kept four arrays; the transformer
// block's MLP spent a fifth of its step there. Under create_graph the backward is written in ops.
#include <array>
#include <cmath>
#include <numbers>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

constexpr double kInvSqrt2 = std::numbers::sqrt2 / 2;
constexpr double kInvSqrt2Pi = std::numbers::inv_sqrtpi * kInvSqrt2;

// g (Phi(x) + x phi(x)) in float32, erf and exp vectorized over blocks of the arrays.
Tensor slope_f32(const Tensor& g, const Tensor& x) {
  const float* px = detail::data<float>(x);
  const float* pg = detail::data<float>(g);
  xt::xarray<float> out = detail::empty<float>(x.shape());
  float* dst = out.data();
  parallel_for(x.numel(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
    detail::for_cache_blocks(begin, end, [=](std::size_t b, std::size_t e) {
      std::array<float, detail::kCacheBlock> pdf;
      for (std::size_t i = b; i < e; ++i) {
        dst[i] = px[i] * float(kInvSqrt2);
        pdf[i - b] = -0.5f * px[i] * px[i];
      }
      detail::vec::erf(dst + b, e - b);
      detail::vec::exp(pdf.data(), e - b);
      for (std::size_t i = b; i < e; ++i)
        dst[i] = pg[i] * (0.5f * (1.0f + dst[i]) + px[i] * pdf[i - b] * float(kInvSqrt2Pi));
    });
  });
  return Tensor(std::move(out));
}

struct Gelu final : Node {
  std::string_view name() const override { return "gelu"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0);
    if (GradMode::is_enabled()) {  // in ops, so that the second derivative is recorded
      const Tensor cdf = mul(add(erf(mul(x, kInvSqrt2)), 1.0), 0.5);
      const Tensor pdf = mul(exp(mul(mul(x, x), -0.5)), kInvSqrt2Pi);
      grads[0] = mul(g, add(cdf, mul(x, pdf)));
      return;
    }
    if (x.dtype() == Dtype::float32) {
      grads[0] = slope_f32(g, x);
      return;
    }
    grads[0] = detail::zip("gelu", g, x, [](auto gv, auto xv) {
      using T = decltype(xv);
      const T cdf = T(0.5) * (T(1) + std::erf(xv * T(kInvSqrt2)));
      const T pdf = std::exp(T(-0.5) * xv * xv) * T(kInvSqrt2Pi);
      return gv * (cdf + xv * pdf);
    });
  }
};
}  // namespace

Tensor gelu(const Tensor& x) {
  const ProfileScope profiled("gelu");
  Tensor out = detail::map_vectorized(
      x, detail::vec::erf, [](float v) { return v * float(kInvSqrt2); },
      [](float v, float e) { return v * 0.5f * (1.0f + e); },
      [](auto v) {
        using T = decltype(v);
        return v * T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2)));
      });
  if (auto* node = record<Gelu>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
