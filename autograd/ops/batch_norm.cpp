// batch_norm: per channel c (axis 1), over the M entries of every other axis,
//   training: mu, var = the batch's mean and biased variance; evaluation: the running ones
//   xhat = (x - mu) / sqrt(var + eps),  z = w xhat + b
//   training: dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) / sqrt(var + eps), dxhat = g w
//   evaluation: dx = g w / sqrt(var + eps);  both: dw = sum(g xhat), db = sum(g)
//   Saves x, w, and mu and 1 / sqrt(var + eps) per channel.
// JVP, from tangents u, u_w, u_b:  dz = w dxhat + xhat u_w + u_b, with
//   training: dxhat = (u - mean(u) - xhat mean(u xhat)) / sqrt(var + eps)
//   evaluation: dxhat = u / sqrt(var + eps)
// With an epilogue (relu, tanh, sigmoid): y = act(z), and the above from g act'(z) (linear's
// epilogue's rule: relu [z > 0 or NaN], tanh 1 - y^2, sigmoid y (1 - y)); JVP act'(z) dz. Saves
// y too, and with relu z's scale and shift per channel (z = x scale + shift): relu's mask is made
// again from x, so that its backward reads no array more than batch_norm's own.
// NOTE: a primitive for speed: two passes for the statistics, one for z (and the epilogue, while
// a row is in cache); the backward one pass for sum(g) and sum(g (x - mu)) together, one for
// dx = a g + b (x - mu) + k (per-channel constants; a g in evaluation). The reference CNN's step
// with relu fused so: docs/performance.md. Every pass walks x in memory order (batch, then
// channel), with a running sum per channel: a channel's rows are still added in batch order, and
// one channel at a time across the batch was about a fifth slower (a strided walk). Rows are summed
// in T with eight running sums, then in double across rows. float32 values in oneDNN's blocked
// layout (a convolution's output, autograd/detail/blocked.hpp) stay so: the same passes over a
// plane of channel blocks, each lane a channel (vector_math's blocked_*), the output and dx
// blocked too. Under create_graph the backward is written in ops (the statistics recomputed from x
// by mean and var), so that its own derivative is recorded.
#include <cmath>

#include "autograd/detail/blocked.hpp"
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

// A row's output, relu's mask and input gradient (vector_math.hpp's norm_row_*): float32 on the
// vectorized path, float64 in the same arithmetic here.
using detail::vec::NormRowOf;
template <class T>
bool kept(T z) {  // relu's: z > 0, or NaN
  return (z > 0) | (z != z);
}
template <class T>
void output_row(const T* x, std::size_t n, const NormRowOf<T>& r, T* z) {
  if constexpr (std::is_same_v<T, float>) {
    detail::vec::norm_row_forward(x, n, r, z);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const T v = x[i] * r.scale + r.shift;
      z[i] = r.relu && !kept(v) ? T{0} : v;
    }
  }
}
// gradient_sums of relu's gradient g' = g where z > 0 or NaN, else 0; float64 makes g' in
// `scratch` (n entries) first.
template <class T>
detail::RowSums masked_sums(const T* g, const T* x, std::size_t n, T m, const NormRowOf<T>& r,
                            T* scratch) {
  if constexpr (std::is_same_v<T, float>) {
    double sums[2];
    detail::vec::masked_row_sums(g, x, n, m, r, sums);
    return {sums[0], sums[1]};
  } else {
    for (std::size_t i = 0; i < n; ++i) scratch[i] = kept(x[i] * r.scale + r.shift) ? g[i] : T{0};
    return detail::row_sums(scratch, x, n, m);
  }
}
template <class T>
void input_grad_row(const T* g, const T* x, std::size_t n, const NormRowOf<T>& r, T* dx) {
  if constexpr (std::is_same_v<T, float>) {
    detail::vec::norm_row_backward(g, x, n, r, dx);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const T gv = r.relu && !kept(x[i] * r.scale + r.shift) ? T{0} : g[i];
      dx[i] = r.training ? r.a * gv + r.b * (x[i] - r.mean) + r.k : r.a * gv;
    }
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

// x's values when batch norm runs on them blocked: float32 in the blocked layout, whole blocks of
// channels.
const BlockedArray* blocked_input(const Tensor& x) {
  const BlockedArray* b = detail::blocked(x);
  return b && b->logical[1] % b->block == 0 ? b : nullptr;
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

// The node's name with each epilogue: indexed by the enum.
constexpr const char* kNames[] = {"batch_norm", "batch_norm+relu", "batch_norm+tanh",
                                  "batch_norm+sigmoid"};
const char* fused_name(Epilogue act) { return kNames[static_cast<int>(act)]; }

struct BatchNorm final : Node {
  // In evaluation the running statistics are constants: kept here too, for the rule (jvp), which
  // runs before save().
  BatchNorm(bool training, bool affine, bool bias, double eps, const Tensor& mu,
            const Tensor& invstd, Epilogue act)
      : training_(training), affine_(affine), bias_(bias), eps_(eps), act_(act) {
    if (training) return;
    running_mean_ = mu;
    running_invstd_ = invstd;
  }
  std::string_view name() const override { return fused_name(act_); }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0), mu = saved(1), invstd = saved(2);
    const Tensor w = affine_ ? saved(3) : Tensor();
    const std::size_t wi = 1, bi = affine_ ? 2 : 1, yi = affine_ ? 4 : 3;
    const Tensor y = act_ == Epilogue::none ? Tensor() : saved(yi);
    if (detail::differentiable_backward())
      return recorded(y.defined() ? detail::epilogue_grad_recorded(act_, y, g) : g, x, mu, invstd,
                      w, grads, wi, bi);
    if (const BlockedArray* bx = blocked_input(x))
      return blocked_backward(*bx, g, mu, invstd, w, y, grads, wi, bi);
    const Layout L = layout(x);
    detail::dispatch(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* px = detail::data<T>(x);
      const T* pg = detail::data<T>(g);
      // With an epilogue, the gradient at z = w xhat + b a row at a time as each pass comes to it:
      // relu's mask made again from x with the forward's scale and shift (saved) inside both
      // passes' loops; tanh's and sigmoid's derivative from the output, into `row` first.
      const bool relu = act_ == Epilogue::relu;
      const T* py = y.defined() ? detail::data<T>(y) : nullptr;
      const T* pz = relu ? detail::data<T>(saved(yi + 1)) : nullptr;  // scales, shifts
      std::vector<T> row(y.defined() ? L.s : 0);
      const auto grad_at = [&](std::size_t at) {  // tanh, sigmoid, none
        if (!py) return pg + at;
        detail::epilogue_grad(act_, py + at, pg + at, row.data(), L.s);
        return static_cast<const T*>(row.data());
      };
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
          const detail::RowSums s =
              relu ? masked_sums(pg + at, px + at, L.s, pm[c],
                                 NormRowOf<T>{pz[c], pz[L.c + c], true}, row.data())
                   : gradient_sums(grad_at(at), px + at, L.s, pm[c]);
          sums[c].g += s.g;
          sums[c].gd += s.gd;
        }
      // dx = a g + b (x - mu) + k, with a, b, k per channel (in evaluation a g: b and k are 0,
      // and 0 (x - mu) would turn a NaN in x into a NaN gradient, which PyTorch's does not)
      std::vector<T> a(L.c), b(L.c), k(L.c);
      for (std::size_t c = 0; c < L.c; ++c)
        input_grad_constants(pw, pi, c, sums[c], M, a[c], b[c], k[c], dw.data()[c], db.data()[c]);
      for (std::size_t n = 0; n < L.n; ++n)
        for (std::size_t c = 0; c < L.c; ++c) {
          const std::size_t at = (n * L.c + c) * L.s;
          // relu's mask in the same pass; tanh's and sigmoid's gradient made first in `row`
          const T* gr = relu ? pg + at : grad_at(at);
          const NormRowOf<T> r{relu ? pz[c] : T{0},
                               relu ? pz[L.c + c] : T{0},
                               relu,
                               training_,
                               a[c],
                               b[c],
                               k[c],
                               pm[c]};
          input_grad_row(gr, px + at, L.s, r, dx.data() + at);
        }
      if (needs_grad(0)) grads[0] = Tensor(std::move(dx));
      if (affine_ && needs_grad(wi)) grads[wi] = Tensor(std::move(dw));
      if (bias_ && needs_grad(bi)) grads[bi] = Tensor(std::move(db));
    });
  }

  // dx = a g + b (x - mu) + k's constants of channel c, and its dw and db, from the channel's
  // sum(g) and sum(g (x - mu))
  template <class T>
  void input_grad_constants(const T* pw, const T* pi, std::size_t c, detail::RowSums s, double M,
                            T& a, T& b, T& k, T& dw, T& db) const {
    const double wc = pw ? double(pw[c]) : 1.0, inv = double(pi[c]);
    const double sum_g = s.g, sum_gx = s.gd * inv;  // sum(g), sum(g xhat)
    a = static_cast<T>(wc * inv);
    b = training_ ? static_cast<T>(-wc * inv * inv * sum_gx / M) : T{0};
    k = training_ ? static_cast<T>(-wc * inv * sum_g / M) : T{0};
    dw = static_cast<T>(sum_gx);
    db = static_cast<T>(sum_g);
  }

  // The backward over blocked values (a convolution's output): g in x's layout (reordered into it
  // when it comes plain), dx in it too; the same passes as above, a plane at a time.
  void blocked_backward(const BlockedArray& bx, const Tensor& g, const Tensor& mu,
                        const Tensor& invstd, const Tensor& w, const Tensor& y,
                        std::span<Tensor> grads, std::size_t wi, std::size_t bi) {
    const std::size_t C = bx.logical[1], block = bx.block;
    const BlockedArray* bg = detail::blocked(g);
    BlockedArray g_here;
    if (!bg || bg->block != block) {
      g_here = detail::to_blocked(g, block);
      bg = &g_here;
    }
    const bool relu = act_ == Epilogue::relu;
    const float* pg = bg->values.data();
    std::vector<float> through;  // g act'(z) for tanh and sigmoid, from the saved output
    if (y.defined() && !relu) {
      BlockedArray y_here;
      const BlockedArray* by = detail::blocked(y);
      if (!by || by->block != block) {
        y_here = detail::to_blocked(y, block);
        by = &y_here;
      }
      through.resize(bg->values.size());
      detail::epilogue_grad(act_, by->values.data(), pg, through.data(), through.size());
      pg = through.data();
    }
    const float* pm = detail::data<float>(mu);
    const float* pi = detail::data<float>(invstd);
    const float* pw = affine_ ? detail::data<float>(w) : nullptr;
    const float* pz = relu ? detail::data<float>(saved(affine_ ? 5 : 4)) : nullptr;
    detail::vec::BlockedNorm in{bx.values.data(), bx.logical[0] * (C / block), C / block,
                                bx.logical[2] * bx.logical[3], block};
    in.mean = pm;
    in.relu = relu;
    if (relu) {
      in.scale = pz;
      in.shift = pz + C;
    }
    std::vector<double> sums(2 * C, 0.0);
    detail::vec::blocked_grad_sums(in, pg, sums.data());
    std::vector<float> a(C), b(C), k(C);
    xt::xarray<float> dw = detail::empty<float>({C}), db = detail::empty<float>({C});
    const double M = double(bx.logical[0] * bx.logical[2] * bx.logical[3]);
    for (std::size_t c = 0; c < C; ++c)
      input_grad_constants(pw, pi, c, detail::RowSums{sums[c], sums[C + c]}, M, a[c], b[c], k[c],
                           dw.data()[c], db.data()[c]);
    in.a = a.data();
    in.b = b.data();
    in.k = k.data();
    in.training = training_;
    if (needs_grad(0)) {
      BlockedArray dx = detail::blocked_empty(bx.logical, block);
      detail::vec::blocked_norm_backward(in, pg, dx.values.data());
      grads[0] = detail::make_blocked(std::move(dx));
    }
    if (affine_ && needs_grad(wi)) grads[wi] = Tensor(std::move(dw));
    if (bias_ && needs_grad(bi)) grads[bi] = Tensor(std::move(db));
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
    const Tensor dz = normalization_jvp(in);
    return act_ == Epilogue::none ? dz : detail::epilogue_grad_recorded(act_, in.out, dz);
  }

  Tensor normalization_jvp(const ForwardInputs& in) const {
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
  Epilogue act_;
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
  return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps,
                    Epilogue::none);
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, Epilogue activation) {
  const ProfileScope profiled(fused_name(activation));
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
  Tensor mu, invstd, scales_shifts;
  // float32 values in the blocked layout (a convolution's output) stay so: the same passes a
  // plane at a time
  const BlockedArray* bx = blocked_input(x);
  detail::vec::BlockedNorm planes{};
  if (bx) planes = {bx->values.data(), L.n * (L.c / bx->block), L.c / bx->block, L.s, bx->block};
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = bx ? nullptr : detail::data<T>(x);
    xt::xarray<T> means = detail::empty<T>({L.c}), inv = detail::empty<T>({L.c});
    // two passes in training: the mean, then the squares around it; each in memory order (the
    // rows of a channel are added in the same order either way)
    std::vector<double> m_of(L.c, 0.0), v_of(L.c, 0.0);
    if (training && bx) {
      detail::vec::blocked_sums(planes, false, m_of.data());
      std::vector<float> m_float(L.c);
      for (std::size_t c = 0; c < L.c; ++c) {
        m_of[c] /= double(L.m());
        m_float[c] = static_cast<float>(m_of[c]);
      }
      planes.mean = m_float.data();
      detail::vec::blocked_sums(planes, true, v_of.data());
      for (double& v : v_of) v /= double(L.m());
    } else if (training) {
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
    // z = x scale + shift per channel, scale = w / sqrt(var + eps), shift = b - mu scale: kept
    // (scales, then shifts) for relu's mask in the backward
    xt::xarray<T> scale_shift = detail::empty<T>({2 * L.c});
    const T* pw = weight.defined() ? detail::data<T>(weight) : nullptr;
    const T* pb = bias.defined() ? detail::data<T>(bias) : nullptr;
    T* scale = scale_shift.data();
    T* shift = scale + L.c;
    for (std::size_t c = 0; c < L.c; ++c) {
      scale[c] = inv.data()[c] * (pw ? pw[c] : T{1});
      shift[c] = (pb ? pb[c] : T{0}) - means.data()[c] * scale[c];
    }
    const bool relu = activation == Epilogue::relu;
    mu = Tensor(std::move(means));
    invstd = Tensor(std::move(inv));
    if constexpr (std::is_same_v<T, float>) {
      if (bx) {
        planes.scale = scale;
        planes.shift = shift;
        planes.relu = relu;
        BlockedArray zb = detail::blocked_empty(x.shape(), bx->block);
        detail::vec::blocked_norm_forward(planes, zb.values.data());
        if (!relu) detail::apply_epilogue(activation, zb.values.data(), zb.values.size());
        scales_shifts = Tensor(std::move(scale_shift));
        return detail::make_blocked(std::move(zb));
      }
    }
    xt::xarray<T> z = detail::empty<T>(x.shape());
    for (std::size_t n = 0; n < L.n; ++n)
      for (std::size_t c = 0; c < L.c; ++c) {
        const std::size_t at = (n * L.c + c) * L.s;
        output_row(px + at, L.s, NormRowOf<T>{scale[c], shift[c], relu}, z.data() + at);
        if (!relu) detail::apply_epilogue(activation, z.data() + at, L.s);  // tanh, sigmoid
      }
    scales_shifts = Tensor(std::move(scale_shift));
    return Tensor(std::move(z));
  });
  BatchNorm* node = detail::record_normalization<BatchNorm>(
      out, x, weight, bias, mu, invstd, training, weight.defined(), bias.defined(), eps, mu, invstd,
      activation);
  if (node && activation == Epilogue::relu)
    node->save({out, scales_shifts});
  else if (node && activation != Epilogue::none)
    node->save({out});
  return out;
}

}  // namespace xgrad
