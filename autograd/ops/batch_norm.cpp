// batch_norm: per channel c (axis 1), over the M entries of every other axis,
//   training: mu, var = the batch's mean and biased variance; evaluation: the running ones
//   xhat = (x - mu) / sqrt(var + eps),  z = w xhat + b
//   training: dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) / sqrt(var + eps), dxhat = g w
//   evaluation: dx = g w / sqrt(var + eps);  both: dw = sum(g xhat), db = sum(g)
//   Saves x, w, and mu and 1 / sqrt(var + eps) per channel.
// JVP, from tangents u, u_w, u_b:  dz = w dxhat + xhat u_w + u_b, with
//   training: dxhat = (u - mean(u) - xhat mean(u xhat)) / sqrt(var + eps)
//   evaluation: dxhat = u / sqrt(var + eps)
// NOTE: a primitive for speed: two passes for the statistics, one for z; the backward one pass
// for sum(g) and sum(g (x - mu)) together, one for dx = a g + b (x - mu) + k (per-channel
// constants). Every pass walks x in memory order (batch, then channel), with a running sum per
// channel: a channel's rows are still added in batch order, and one channel at a time across the
// batch was about a fifth slower (a strided walk). Rows are summed in T with eight running sums,
// then in double across rows. Under create_graph the backward is written in ops (the statistics
// recomputed from x by mean and var), so that its own derivative is recorded.
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// A row's sums (kernels.hpp's row_sum and row_sums): for float32 the same sums in vector_math's
// registers, the same bits (the plain loops' code shuffled its eight lanes about: the reference
// CNN's batch_norm backward took half as long again).
template <class T>
double sum_of(const T* p, std::size_t n) {
  if constexpr (std::is_same_v<T, float>)
    return detail::vec::row_sum(p, n);
  else
    return detail::row_sum(p, n, [](T e) { return e; });
}
template <class T>
double squares_about(const T* p, std::size_t n, T m) {
  if constexpr (std::is_same_v<T, float>)
    return detail::vec::row_sum_squares(p, n, m);
  else
    return detail::row_sum(p, n, [m](T e) { return (e - m) * (e - m); });
}
template <class T>
detail::RowSums gradient_sums(const T* g, const T* x, std::size_t n, T m) {
  if constexpr (std::is_same_v<T, float>) {
    double sums[2];
    detail::vec::row_sums(g, x, n, m, sums);
    return {sums[0], sums[1]};
  } else {
    return detail::row_sums(g, x, n, m);
  }
}

// x viewed as (N, C, S): S the product of the axes after the channels.
struct Layout {
  std::size_t n, c, s;
  std::size_t m() const { return n * s; }
};

Layout layout(const Tensor& x) {
  std::size_t s = 1;
  for (std::size_t d = 2; d < x.dim(); ++d) s *= x.size(static_cast<std::ptrdiff_t>(d));
  return {x.size(0), x.size(1), s};
}

// Shape (1, C, 1, ...) of x's rank: a per-channel tensor broadcast over x.
Tensor per_channel(const Tensor& t, std::size_t rank) {
  std::vector<std::ptrdiff_t> shape(rank, 1);
  shape[1] = -1;
  return reshape(t, shape);
}

Axes reduced_axes(std::size_t rank) {
  Axes axes = {0};
  for (std::size_t d = 2; d < rank; ++d) axes.push_back(static_cast<std::ptrdiff_t>(d));
  return axes;
}

struct BatchNorm final : Node {
  // In evaluation the running statistics are constants: kept here too, for the rule (jvp), which
  // runs before save().
  BatchNorm(bool training, bool affine, bool bias, double eps, const Tensor& mu,
            const Tensor& invstd)
      : training_(training), affine_(affine), bias_(bias), eps_(eps) {
    if (training) return;
    running_mean_ = mu;
    running_invstd_ = invstd;
  }
  std::string_view name() const override { return "batch_norm"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0), mu = saved(1), invstd = saved(2);
    const Tensor w = affine_ ? saved(3) : Tensor();
    const std::size_t wi = 1, bi = affine_ ? 2 : 1;
    if (detail::differentiable_backward()) return recorded(g, x, mu, invstd, w, grads, wi, bi);
    const Layout L = layout(x);
    detail::dispatch(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* px = detail::data<T>(x);
      const T* pg = detail::data<T>(g);
      const T* pm = detail::data<T>(mu);
      const T* pi = detail::data<T>(invstd);
      const T* pw = affine_ ? detail::data<T>(w) : nullptr;
      xt::xarray<T> dx = detail::empty<T>(x.shape());
      xt::xarray<T> dw = detail::empty<T>({L.c}), db = detail::empty<T>({L.c});
      const double M = double(L.m());
      // sum(g) and sum(g (x - mu)) per channel, in memory order (a channel's rows are added in
      // the same order either way)
      std::vector<detail::RowSums> sums(L.c, detail::RowSums{0, 0});
      for (std::size_t n = 0; n < L.n; ++n)
        for (std::size_t c = 0; c < L.c; ++c) {
          const std::size_t at = (n * L.c + c) * L.s;
          const detail::RowSums row = gradient_sums(pg + at, px + at, L.s, pm[c]);
          sums[c].g += row.g;
          sums[c].gd += row.gd;
        }
      // dx = a g + b (x - mu) + k, with a, b, k per channel
      std::vector<T> a(L.c), b(L.c), k(L.c);
      for (std::size_t c = 0; c < L.c; ++c) {
        const double wc = pw ? double(pw[c]) : 1.0, inv = double(pi[c]);
        const double sum_g = sums[c].g, sum_gx = sums[c].gd * inv;  // sum(g), sum(g xhat)
        a[c] = static_cast<T>(wc * inv);
        b[c] = training_ ? static_cast<T>(-wc * inv * inv * sum_gx / M) : T{0};
        k[c] = training_ ? static_cast<T>(-wc * inv * sum_g / M) : T{0};
        dw.data()[c] = static_cast<T>(sum_gx);
        db.data()[c] = static_cast<T>(sum_g);
      }
      for (std::size_t n = 0; n < L.n; ++n)
        for (std::size_t c = 0; c < L.c; ++c) {
          const std::size_t at = (n * L.c + c) * L.s;
          const T* gr = pg + at;
          const T* xr = px + at;
          T* out = dx.data() + at;
          const T ac = a[c], bc = b[c], kc = k[c], m = pm[c];
          for (std::size_t s = 0; s < L.s; ++s) out[s] = ac * gr[s] + bc * (xr[s] - m) + kc;
        }
      if (needs_grad(0)) grads[0] = Tensor(std::move(dx));
      if (affine_ && needs_grad(wi)) grads[wi] = Tensor(std::move(dw));
      if (bias_ && needs_grad(bi)) grads[bi] = Tensor(std::move(db));
    });
  }

  // The same in ops, for create_graph: in training the statistics come from x again.
  void recorded(const Tensor& g, const Tensor& x, const Tensor& mu, const Tensor& invstd,
                const Tensor& w, std::span<Tensor> grads, std::size_t wi, std::size_t bi) {
    const Axes axes = reduced_axes(x.dim());
    const detail::Standardized st = statistics(x, mu, invstd);
    const Tensor dxhat = affine_ ? mul(g, per_channel(w, x.dim())) : g;
    if (needs_grad(0))
      grads[0] =
          training_ ? detail::standardized_derivative(dxhat, st, axes) : mul(dxhat, st.invstd);
    if (affine_ && needs_grad(wi)) grads[wi] = sum(mul(g, st.xhat), axes);
    if (bias_ && needs_grad(bi)) grads[bi] = sum(g, axes);
  }

  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor& x = in.primal(0);
    const std::size_t rank = x.dim(), wi = 1, bi = affine_ ? 2 : 1;
    const Axes axes = reduced_axes(rank);
    const detail::Standardized st = statistics(x, running_mean_, running_invstd_);
    Tensor dz;
    if (in.has(0)) {
      dz = training_ ? detail::standardized_derivative(in.tangent(0), st, axes)
                     : mul(in.tangent(0), st.invstd);
      if (affine_) dz = mul(dz, per_channel(in.primal(wi), rank));
    }
    if (affine_ && in.has(wi))
      dz = detail::add_defined(dz, mul(st.xhat, per_channel(in.tangent(wi), rank)));
    if (bias_ && in.has(bi)) dz = detail::add_defined(dz, per_channel(in.tangent(bi), rank));
    return dz;
  }

  // xhat and 1 / sqrt(var + eps) broadcast over x: in training made again from x in ops, in
  // evaluation from the given statistics (mu and invstd per channel).
  detail::Standardized statistics(const Tensor& x, const Tensor& mu, const Tensor& invstd) const {
    if (training_) return detail::standardize_in_ops(x, reduced_axes(x.dim()), eps_);
    const Tensor is = per_channel(invstd, x.dim());
    return {mul(sub(x, per_channel(mu, x.dim())), is), is};
  }

  bool training_, affine_, bias_;
  double eps_;
  Tensor running_mean_, running_invstd_;  // evaluation only: mu, 1 / sqrt(var + eps) per channel
};

void check_channel(const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  detail::check_same_dtype("batch_norm", x, t);
  if (t.dim() != 1 || t.size(0) != x.size(1))
    throw ShapeError(std::string("batch_norm: ") + what + " " + shape_str(t.shape()) + " for " +
                     std::to_string(x.size(1)) + " channels (input " + shape_str(x.shape()) +
                     "); expected [" + std::to_string(x.size(1)) + "]");
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  const ProfileScope profiled("batch_norm");
  if (x.dim() < 2)
    throw ShapeError("batch_norm: needs (N, C) or (N, C, ...), got " + shape_str(x.shape()));
  check_channel("running_mean", running_mean, x);
  check_channel("running_var", running_var, x);
  check_channel("weight", weight, x);
  check_channel("bias", bias, x);
  if (running_mean.defined() != running_var.defined())
    throw ValueError("batch_norm: give both running statistics or neither");
  if (!training && !running_mean.defined())
    throw ValueError("batch_norm: evaluation needs the running statistics");
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
    throw ValueError("batch_norm: needs eps > 0 and momentum in [0, 1], got eps " +
                     number_str(eps) + ", momentum " + number_str(momentum));
  const Layout L = layout(x);
  if (training && L.m() < 2)
    throw ValueError("batch_norm: training needs more than one value per channel, got input " +
                     shape_str(x.shape()));
  Tensor mu, invstd;
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = detail::data<T>(x);
    xt::xarray<T> means = detail::empty<T>({L.c}), inv = detail::empty<T>({L.c});
    // two passes in training: the mean, then the squares around it; each in memory order (the
    // rows of a channel are added in the same order either way)
    std::vector<double> m_of(L.c, 0.0), v_of(L.c, 0.0);
    if (training) {
      for (std::size_t n = 0; n < L.n; ++n)
        for (std::size_t c = 0; c < L.c; ++c) m_of[c] += sum_of(px + (n * L.c + c) * L.s, L.s);
      for (double& m : m_of) m /= double(L.m());
      for (std::size_t n = 0; n < L.n; ++n)
        for (std::size_t c = 0; c < L.c; ++c) {
          v_of[c] += squares_about(px + (n * L.c + c) * L.s, L.s, static_cast<T>(m_of[c]));
        }
      for (double& v : v_of) v /= double(L.m());
    }
    for (std::size_t c = 0; c < L.c; ++c) {
      double m = m_of[c], v = v_of[c];
      if (!training) {
        m = double(detail::values<T>(running_mean)(c));
        v = double(detail::values<T>(running_var)(c));
      }
      means.data()[c] = static_cast<T>(m);
      inv.data()[c] = static_cast<T>(1 / std::sqrt(v + eps));
      if (training && running_mean.defined()) {  // the running variance is the unbiased one
        const double unbiased = v * double(L.m()) / double(L.m() - 1);
        T& rm = running_mean.mutable_value<T>().data()[c];
        T& rv = running_var.mutable_value<T>().data()[c];
        rm = static_cast<T>((1 - momentum) * double(rm) + momentum * m);
        rv = static_cast<T>((1 - momentum) * double(rv) + momentum * unbiased);
      }
    }
    xt::xarray<T> z = detail::empty<T>(x.shape());
    const T* pw = weight.defined() ? detail::data<T>(weight) : nullptr;
    const T* pb = bias.defined() ? detail::data<T>(bias) : nullptr;
    for (std::size_t n = 0; n < L.n; ++n)
      for (std::size_t c = 0; c < L.c; ++c) {
        const T scale = inv.data()[c] * (pw ? pw[c] : T{1});
        const T shift = (pb ? pb[c] : T{0}) - means.data()[c] * scale;
        const T* src = px + (n * L.c + c) * L.s;
        T* dst = z.data() + (n * L.c + c) * L.s;
        for (std::size_t s = 0; s < L.s; ++s) dst[s] = src[s] * scale + shift;
      }
    mu = Tensor(std::move(means));
    invstd = Tensor(std::move(inv));
    return Tensor(std::move(z));
  });
  detail::record_normalization<BatchNorm>(out, x, weight, bias, mu, invstd, training,
                                          weight.defined(), bias.defined(), eps, mu, invstd);
  return out;
}

}  // namespace xgrad
