// layer_norm: each row r of x viewed as (R, D), D the product of the normalized (trailing) axes,
//   mu_r, var_r = the row's mean and biased variance,  s_r = 1 / sqrt(var_r + eps)
//   xhat = (x - mu_r) s_r,  z = w xhat + b   (w, b of the normalized shape, or none)
//   dxhat = g w,  dx = s_r (dxhat - mean_r(dxhat) - xhat mean_r(dxhat xhat))
//   dw = sum over rows of g xhat,  db = sum over rows of g
//   Saves x, w, and mu and s per row.
// JVP, from tangents u, u_w, u_b:  dz = w s (u - mean_r(u) - xhat mean_r(u xhat)) + xhat u_w + u_b.
// NOTE: a primitive for speed: two passes over a row for its statistics, one for z; the backward
// one pass per row for both sums, one for dx. float32 runs them in vector lanes for the widest
// instruction set the processor has (detail::vec::layer_norm_forward, _backward). Under
// create_graph the backward is written in ops (the statistics recomputed from x by mean and var) so
// that its own derivative is recorded.
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// The last k axes of a tensor of the given rank.
Axes trailing_axes(std::size_t rank, std::size_t k) {
  Axes axes;
  for (std::size_t d = rank - k; d < rank; ++d) axes.push_back(static_cast<std::ptrdiff_t>(d));
  return axes;
}

struct LayerNorm final : Node {
  LayerNorm(std::size_t rows, std::size_t width, std::size_t k, bool affine, bool bias, double eps)
      : rows_(rows), width_(width), k_(k), affine_(affine), bias_(bias), eps_(eps) {}
  std::string_view name() const override { return "layer_norm"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0), mu = saved(1), invstd = saved(2);
    const Tensor w = affine_ ? saved(3) : Tensor();
    const std::size_t wi = 1, bi = affine_ ? 2 : 1;
    if (detail::differentiable_backward()) return recorded(g, x, w, grads, wi, bi);
    const std::size_t R = rows_, D = width_;
    detail::dispatch(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* px = detail::data<T>(x);
      const T* pg = detail::data<T>(g);
      const T* pm = detail::data<T>(mu);
      const T* ps = detail::data<T>(invstd);
      const T* pw = affine_ ? detail::data<T>(w) : nullptr;
      xt::xarray<T> dx = detail::empty<T>(x.shape());
      std::vector<double> dw(affine_ ? D : 0, 0.0), db(bias_ ? D : 0, 0.0);
      if constexpr (std::is_same_v<T, float>) {  // in vector lanes (detail/vector_math.hpp)
        std::vector<float> scratch(2 * D);
        detail::vec::layer_norm_backward({px, pw, R, D}, pg, pm, ps, dx.data(),
                                         affine_ ? dw.data() : nullptr, bias_ ? db.data() : nullptr,
                                         scratch.data());
      } else {
        backward_rows(px, pg, pm, ps, pw, dx.data(), dw, db);
      }
      const Shape normalized(x.shape().end() - static_cast<std::ptrdiff_t>(k_), x.shape().end());
      const auto to_tensor = [&](const std::vector<double>& v) {
        xt::xarray<T> t = detail::empty<T>(normalized);
        for (std::size_t j = 0; j < D; ++j) t.data()[j] = static_cast<T>(v[j]);
        return Tensor(std::move(t));
      };
      if (needs_grad(0)) grads[0] = Tensor(std::move(dx));
      if (affine_ && needs_grad(wi)) grads[wi] = to_tensor(dw);
      if (bias_ && needs_grad(bi)) grads[bi] = to_tensor(db);
    });
  }

  // The backward's loops for float64 (float32 takes detail::vec's).
  template <class T>
  void backward_rows(const T* px, const T* pg, const T* pm, const T* ps, const T* pw, T* pdx,
                     std::vector<double>& dw, std::vector<double>& db) const {
    const std::size_t R = rows_, D = width_;
    std::vector<T> dxhat(pw ? D : 0);
    for (std::size_t r = 0; r < R; ++r) {
      const T* xr = px + r * D;
      const T* gr = pg + r * D;
      const T m = pm[r], s = ps[r];
      // one loop per quantity, each of which vectorizes (the sums as the forward's, in eight
      // running sums); a single loop with all of them in double did not
      const T* d = gr;
      if (pw) {
        for (std::size_t j = 0; j < D; ++j) dxhat[j] = gr[j] * pw[j];
        d = dxhat.data();
      }
      const double sum_d = detail::row_sum(d, D, [](T e) { return e; });
      const double sum_dx =
          detail::row_sum2(d, xr, D, [m, s](T de, T xe) { return de * ((xe - m) * s); });
      if (affine_)
        for (std::size_t j = 0; j < D; ++j) dw[j] += double(gr[j]) * double((xr[j] - m) * s);
      if (bias_)
        for (std::size_t j = 0; j < D; ++j) db[j] += double(gr[j]);
      const T a = static_cast<T>(sum_d / double(D)), b = static_cast<T>(sum_dx / double(D));
      T* out = pdx + r * D;
      for (std::size_t j = 0; j < D; ++j) out[j] = s * (d[j] - a - (xr[j] - m) * s * b);
    }
  }

  // The same in ops, for create_graph: the statistics come from x again.
  void recorded(const Tensor& g, const Tensor& x, const Tensor& w, std::span<Tensor> grads,
                std::size_t wi, std::size_t bi) {
    const Axes axes = trailing_axes(x.dim(), k_);
    const detail::Standardized st = detail::standardize_in_ops(x, axes, eps_);
    if (needs_grad(0))
      grads[0] = detail::standardized_derivative(affine_ ? mul(g, w) : g, st, axes);
    const Shape normalized(x.shape().end() - static_cast<std::ptrdiff_t>(k_), x.shape().end());
    if (affine_ && needs_grad(wi)) grads[wi] = sum_to(mul(g, st.xhat), normalized);
    if (bias_ && needs_grad(bi)) grads[bi] = sum_to(g, normalized);
  }

  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor& x = in.primal(0);
    const std::size_t wi = 1, bi = affine_ ? 2 : 1;
    const Axes axes = trailing_axes(x.dim(), k_);
    const detail::Standardized st = detail::standardize_in_ops(x, axes, eps_);
    Tensor dz;
    if (in.has(0)) {
      dz = detail::standardized_derivative(in.tangent(0), st, axes);
      if (affine_) dz = mul(dz, in.primal(wi));
    }
    if (affine_ && in.has(wi)) dz = detail::add_defined(dz, mul(st.xhat, in.tangent(wi)));
    if (bias_ && in.has(bi)) dz = detail::add_defined(dz, in.tangent(bi));
    return dz;
  }
  std::size_t rows_, width_, k_;
  bool affine_, bias_;
  double eps_;
};

void check_affine(const char* what, const Tensor& t, const Tensor& x, const Shape& normalized) {
  if (!t.defined()) return;
  detail::check_same_dtype("layer_norm", x, t);
  if (t.shape() != normalized)
    throw ShapeError(std::string("layer_norm: ") + what + " " + shape_str(t.shape()) +
                     "; expected the normalized shape " + shape_str(normalized));
}
}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const ProfileScope profiled("layer_norm");
  const std::size_t k = normalized_shape.size();
  const bool fits =
      k >= 1 && k <= x.dim() &&
      std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - long(k));
  if (!fits)
    throw ShapeError("layer_norm: normalized shape " + shape_str(normalized_shape) +
                     " is not the trailing shape of the input " + shape_str(x.shape()));
  check_affine("weight", weight, x, normalized_shape);
  check_affine("bias", bias, x, normalized_shape);
  if (!(eps > 0)) throw ValueError("layer_norm: needs eps > 0, got " + number_str(eps));
  const std::size_t D = detail::product(normalized_shape);
  if (D == 0) throw ShapeError("layer_norm: empty normalized shape " + shape_str(normalized_shape));
  const std::size_t R = x.numel() / D;
  Shape stats_shape(x.shape().begin(), x.shape().end() - long(k));
  Tensor mu, invstd;
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = detail::data<T>(x);
    const T* pw = weight.defined() ? detail::data<T>(weight) : nullptr;
    const T* pb = bias.defined() ? detail::data<T>(bias) : nullptr;
    xt::xarray<T> means = detail::empty<T>(stats_shape), inv = detail::empty<T>(stats_shape);
    xt::xarray<T> z = detail::empty<T>(x.shape());
    if constexpr (std::is_same_v<T, float>)  // in vector lanes (detail/vector_math.hpp)
      detail::vec::layer_norm_forward({px, pw, R, D}, pb, eps, z.data(), means.data(), inv.data());
    else
      for (std::size_t r = 0; r < R; ++r) {
        const T* row = px + r * D;
        const double m = detail::row_sum(row, D, [](T e) { return e; }) / double(D);
        const T mt = static_cast<T>(m);
        const double v =
            detail::row_sum(row, D, [mt](T e) { return (e - mt) * (e - mt); }) / double(D);
        const T s = static_cast<T>(1 / std::sqrt(v + eps));
        means.data()[r] = mt;
        inv.data()[r] = s;
        T* dst = z.data() + r * D;
        for (std::size_t j = 0; j < D; ++j) {
          const T xhat = (row[j] - mt) * s;
          dst[j] = (pw ? xhat * pw[j] : xhat) + (pb ? pb[j] : T{0});
        }
      }
    mu = Tensor(std::move(means));
    invstd = Tensor(std::move(inv));
    return Tensor(std::move(z));
  });
  detail::record_normalization<LayerNorm>(out, x, weight, bias, mu, invstd, R, D, k,
                                          weight.defined(), bias.defined(), eps);
  return out;
}

}  // namespace xgrad
