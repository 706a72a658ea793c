#pragma once
// The loops of vector_math.hpp for one xsimd architecture; included by the file of each one
// (compiled with that architecture's flags).

#include <immintrin.h>
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <type_traits>

#include "autograd/detail/vector_math.hpp"

namespace xgrad::detail::vec {

template <class Arch, class F>
void apply(float* x, std::size_t n, F f) {
  using Batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = Batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) f(Batch::load_unaligned(x + i)).store_unaligned(x + i);
  if (i == n) return;
  // Plain loops, not std::copy: an inline library function instantiated here would be compiled
  // for Arch and could be the copy the linker keeps for every other file.
  alignas(64) float tail[width] = {};
  for (std::size_t k = i; k < n; ++k) tail[k - i] = x[k];
  f(Batch::load_aligned(tail)).store_aligned(tail);
  for (std::size_t k = i; k < n; ++k) x[k] = tail[k - i];
}

template <class Arch>
struct Loops {
  static void exp(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::exp(b); });
  }
  static void tanh(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::tanh(b); });
  }
  static void erf(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::erf(b); });
  }

  using Batch = xsimd::batch<float, Arch>;
  static constexpr std::size_t width = Batch::size;

  // f(lanes i.. of x, of y) stored at out + i, for every i, the tail padded (as in apply).
  template <class F>
  static void zip(const float* x, const float* y, float* out, std::size_t n, F f) {
    std::size_t i = 0;
    for (; i + width <= n; i += width)
      f(Batch::load_unaligned(x + i), Batch::load_unaligned(y + i)).store_unaligned(out + i);
    if (i == n) return;
    alignas(64) float tx[width] = {}, ty[width] = {};
    for (std::size_t k = i; k < n; ++k) {
      tx[k - i] = x[k];
      ty[k - i] = y[k];
    }
    f(Batch::load_aligned(tx), Batch::load_aligned(ty)).store_aligned(tx);
    for (std::size_t k = i; k < n; ++k) out[k] = tx[k - i];
  }

  // Phi(x) and e^(-x^2 / 2) for GELU, in one formula for every x (no branch). Phi(-|x|) =
  // erfc(a) / 2, a = |x| / sqrt 2, is e^(-a^2) t P(t) with t = 1 / (1 + 0.4 a) in (0, 1] and P of
  // degree 10: the interpolant of erfc(a) e^(a^2) / (2t) at the 11 Chebyshev nodes of t in [0, 1],
  // 9e-9 from it in relative terms. Phi(x) is that for x < 0 and 1 minus it above, so the lower
  // tail keeps its relative accuracy where 1 + erf(x / sqrt 2) cancels to nothing (x below about
  // -5.5 in float). e^(-x^2 / 2) is the normal density's factor, which the backward reuses.
  static constexpr float kTailP = float(0.4 / std::numbers::sqrt2);
  static constexpr float kTail[11] = {0.112837918f,  0.112838157f,  0.103800364f,   0.0859452859f,
                                      0.0590475611f, 0.0435603224f, -0.0268965829f, 0.0734016225f,
                                      -0.121520869f, 0.0719205365f, -0.0149343144f};
  static constexpr float kInvSqrt2Pi = float(std::numbers::inv_sqrtpi * (std::numbers::sqrt2 / 2));
  static Batch normal_cdf(const Batch& v, const Batch& density) {
    const Batch t = Batch(1.0f) / (Batch(1.0f) + Batch(kTailP) * xsimd::abs(v));
    Batch p(kTail[10]);
#pragma GCC unroll 10
    for (int k = 9; k >= 0; --k) p = p * t + Batch(kTail[k]);
    const Batch lower = density * t * p;
    return xsimd::select(v < Batch(0.0f), lower, Batch(1.0f) - lower);
  }
  static Batch density_factor(const Batch& v) { return xsimd::exp(Batch(-0.5f) * v * v); }
  static void gelu_forward(const float* x, float* z, std::size_t n) {
    zip(x, x, z, n,
        [](const Batch& v, const Batch&) { return v * normal_cdf(v, density_factor(v)); });
  }
  static void gelu_backward(const float* x, const float* g, float* dx, std::size_t n) {
    zip(x, g, dx, n, [](const Batch& v, const Batch& gv) {
      const Batch e = density_factor(v);
      return gv * (normal_cdf(v, e) + v * e * Batch(kInvSqrt2Pi));
    });
  }

  // f(in, out) over the lanes of rows of H floats: in[r] + k and out[r] + k for k = 0, width,
  // ...; the last m < width lanes through copies padded with zeros (copied back), so that a lane's
  // value does not depend on where it sits in the row.
  template <std::size_t NIn, std::size_t NOut, class F>
  static void over_lanes(std::size_t H, const float* const (&in)[NIn], float* const (&out)[NOut],
                         F f) {
    const float* pi[NIn];
    float* po[NOut];
    std::size_t k = 0;
    for (; k + width <= H; k += width) {
      for (std::size_t r = 0; r < NIn; ++r) pi[r] = in[r] + k;
      for (std::size_t r = 0; r < NOut; ++r) po[r] = out[r] + k;
      f(pi, po);
    }
    if (k == H) return;
    const std::size_t m = H - k;
    alignas(64) float pin[NIn][width] = {}, pout[NOut][width];
    for (std::size_t r = 0; r < NIn; ++r) {
      for (std::size_t l = 0; l < m; ++l) pin[r][l] = in[r][k + l];
      pi[r] = pin[r];
    }
    for (std::size_t r = 0; r < NOut; ++r) po[r] = pout[r];
    f(pi, po);
    for (std::size_t r = 0; r < NOut; ++r)
      for (std::size_t l = 0; l < m; ++l) out[r][k + l] = pout[r][l];
  }

  static Batch sigmoid_of(const Batch& a) { return Batch(1.0f) / (Batch(1.0f) + xsimd::exp(-a)); }

  // Lanes of one GRU row: xp's and hp's r, z, n blocks, h.
  static void gru_lanes(const float* const in[7], float* const out[5]) {
    const auto at = [&](int r) { return Batch::load_unaligned(in[r]); };
    const Batch r = sigmoid_of(at(0) + at(3)), z = sigmoid_of(at(1) + at(4));
    const Batch hn = at(5);
    const Batch n = xsimd::tanh(at(2) + r * hn);
    (n + z * (at(6) - n)).store_unaligned(out[0]);
    r.store_unaligned(out[1]);
    z.store_unaligned(out[2]);
    n.store_unaligned(out[3]);
    hn.store_unaligned(out[4]);
  }
  static void gru_gates_forward(const float* xp, const float* hp, const float* h, std::size_t B,
                                std::size_t H, float* next, float* gates) {
    for (std::size_t b = 0; b < B; ++b) {
      const float* x = xp + b * 3 * H;
      const float* p = hp + b * 3 * H;
      float* s = gates + b * 4 * H;
      const float* const in[7] = {x, x + H, x + 2 * H, p, p + H, p + 2 * H, h + b * H};
      float* const out[5] = {next + b * H, s, s + H, s + 2 * H, s + 3 * H};
      over_lanes(H, in, out, gru_lanes);
    }
  }

  // Lanes of one GRU row's backward: g, h, then the gates r, z, n, hp_n.
  static void gru_back_lanes(const float* const in[6], float* const out[7]) {
    const auto at = [&](int k) { return Batch::load_unaligned(in[k]); };
    const Batch gv = at(0), hv = at(1), r = at(2), z = at(3), n = at(4), hn = at(5);
    const Batch one(1.0f);
    const Batch da_n = gv * (one - z) * (one - n * n);
    const Batch da_r = da_n * hn * r * (one - r);
    const Batch da_z = gv * (hv - n) * z * (one - z);
    da_r.store_unaligned(out[0]);
    da_z.store_unaligned(out[1]);
    da_n.store_unaligned(out[2]);
    da_r.store_unaligned(out[3]);
    da_z.store_unaligned(out[4]);
    (da_n * r).store_unaligned(out[5]);
    (gv * z).store_unaligned(out[6]);
  }
  static void gru_gates_backward(const float* g, const float* h, const float* gates, std::size_t B,
                                 std::size_t H, float* dxp, float* dhp, float* dh) {
    for (std::size_t b = 0; b < B; ++b) {
      const float* s = gates + b * 4 * H;
      float* x = dxp + b * 3 * H;
      float* y = dhp + b * 3 * H;
      const float* const in[6] = {g + b * H, h + b * H, s, s + H, s + 2 * H, s + 3 * H};
      float* const out[7] = {x, x + H, x + 2 * H, y, y + H, y + 2 * H, dh + b * H};
      over_lanes(H, in, out, gru_back_lanes);
    }
  }

  // Lanes of one LSTM row: a_* = x_* + p_* for the gates i, f, g, o; c the cell state.
  static void lstm_lanes(const float* const in[9], float* const out[7]) {
    const auto at = [&](int r) { return Batch::load_unaligned(in[r]); };
    const Batch i = sigmoid_of(at(0) + at(4)), f = sigmoid_of(at(1) + at(5));
    const Batch g = xsimd::tanh(at(2) + at(6)), o = sigmoid_of(at(3) + at(7));
    const Batch cn = f * at(8) + i * g;
    const Batch t = xsimd::tanh(cn);
    (o * t).store_unaligned(out[0]);
    cn.store_unaligned(out[1]);
    i.store_unaligned(out[2]);
    f.store_unaligned(out[3]);
    g.store_unaligned(out[4]);
    o.store_unaligned(out[5]);
    t.store_unaligned(out[6]);
  }
  static void lstm_gates_forward(const float* xp, const float* hp, const float* c, std::size_t B,
                                 std::size_t H, float* h_out, float* c_out, float* gates) {
    for (std::size_t b = 0; b < B; ++b) {
      const float* x = xp + b * 4 * H;
      const float* p = hp + b * 4 * H;
      float* s = gates + b * 5 * H;
      const float* const in[9] = {x,     x + H,     x + 2 * H, x + 3 * H, p,
                                  p + H, p + 2 * H, p + 3 * H, c + b * H};
      float* const out[7] = {h_out + b * H, c_out + b * H, s,        s + H,
                             s + 2 * H,     s + 3 * H,     s + 4 * H};
      over_lanes(H, in, out, lstm_lanes);
    }
  }

  // Lanes of one LSTM row's backward: G_h, G_c, c, then the gates i, f, g, o, t.
  static void lstm_back_lanes(const float* const in[8], float* const out[5]) {
    const auto at = [&](int r) { return Batch::load_unaligned(in[r]); };
    const Batch gh = at(0), i = at(3), f = at(4), gg = at(5), o = at(6), t = at(7);
    const Batch one(1.0f);
    const Batch dcn = at(1) + gh * o * (one - t * t);
    (dcn * gg * i * (one - i)).store_unaligned(out[0]);
    (dcn * at(2) * f * (one - f)).store_unaligned(out[1]);
    (dcn * i * (one - gg * gg)).store_unaligned(out[2]);
    (gh * t * o * (one - o)).store_unaligned(out[3]);
    (dcn * f).store_unaligned(out[4]);
  }
  static void lstm_gates_backward(const float* gh, const float* gc, const float* c,
                                  const float* gates, std::size_t B, std::size_t H, float* da,
                                  float* dc) {
    for (std::size_t b = 0; b < B; ++b) {
      const float* s = gates + b * 5 * H;
      float* d = da + b * 4 * H;
      const float* const in[8] = {gh + b * H, gc + b * H, c + b * H, s,
                                  s + H,      s + 2 * H,  s + 3 * H, s + 4 * H};
      float* const out[5] = {d, d + H, d + 2 * H, d + 3 * H, dc + b * H};
      over_lanes(H, in, out, lstm_back_lanes);
    }
  }

  // The sum of a batch's lanes.
  static float reduce(const Batch& a) {
    // xsimd 8's hadd for AVX-512F calls an AVX-512DQ instruction: the F one instead
    if constexpr (std::is_same_v<Arch, xsimd::avx512f>)
      return _mm512_reduce_add_ps(a);
    else
      return xsimd::hadd(a);
  }

  // The sum of f(i) over i = 0, width, 2 width, ... below n (f returns a Batch for lanes i..),
  // in two running vectors.
  template <class F>
  static double lane_sum(std::size_t n, F f) {
    Batch a(0.0f), b(0.0f);
    std::size_t i = 0;
    for (; i + 2 * width <= n; i += 2 * width) {
      a += f(i);
      b += f(i + width);
    }
    if (i + width <= n) a += f(i);
    return double(reduce(a + b));
  }

  // The largest of a batch's lanes.
  static float lane_max(const Batch& a) {
    alignas(64) float lanes[width];
    a.store_aligned(lanes);
    float top = lanes[0];
    for (std::size_t k = 1; k < width; ++k) top = lanes[k] > top ? lanes[k] : top;
    return top;
  }

  // Rows of softmax (vector_math.hpp). Entries past the last whole vector, if any, go through a
  // copy padded with -inf, which counts for nothing in the largest entry and whose e^ is 0.
  static void softmax_rows(float* x, std::size_t rows, std::size_t n, std::size_t ld, float* top,
                           float* total) {
    const float inf = std::numeric_limits<float>::infinity();
    const std::size_t body = n - n % width;
    alignas(64) float tail[width];
    for (std::size_t r = 0; r < rows; ++r) {
      float* row = x + r * ld;
      Batch most(-inf);
      if (body < n) {
        for (std::size_t k = 0; k < width; ++k) tail[k] = body + k < n ? row[body + k] : -inf;
        most = Batch::load_aligned(tail);
      }
      for (std::size_t j = 0; j < body; j += width)
        most = xsimd::max(most, Batch::load_unaligned(row + j));
      float t = lane_max(most);
      if (t == -inf) t = 0;  // every entry -inf: 0 / 0 below, NaN
      const Batch vt(t);
      Batch sum(0.0f);
      for (std::size_t j = 0; j < body; j += width) {
        const Batch e = xsimd::exp(Batch::load_unaligned(row + j) - vt);
        e.store_unaligned(row + j);
        sum += e;
      }
      Batch e_tail(0.0f);
      if (body < n) {
        e_tail = xsimd::exp(Batch::load_aligned(tail) - vt);
        sum += e_tail;
      }
      const float s = reduce(sum);
      const Batch inv(1.0f / s);
      for (std::size_t j = 0; j < body; j += width)
        (Batch::load_unaligned(row + j) * inv).store_unaligned(row + j);
      if (body < n) {
        (e_tail * inv).store_aligned(tail);
        for (std::size_t j = body; j < n; ++j) row[j] = tail[j - body];
      }
      top[r] = t;
      total[r] = s;
    }
  }

  // Rows of softmax's backward (vector_math.hpp): the dot product in float lanes, the tail and
  // the lanes' sum in double.
  static void softmax_backward_rows(float* d, std::size_t ldd, const float* p, std::size_t ldp,
                                    std::size_t rows, std::size_t n, float scale) {
    const std::size_t body = n - n % width;
    const Batch vs(scale);
    for (std::size_t r = 0; r < rows; ++r) {
      float* row = d + r * ldd;
      const float* pr = p + r * ldp;
      double dot = lane_sum(body, [row, pr](std::size_t j) {
        return Batch::load_unaligned(row + j) * Batch::load_unaligned(pr + j);
      });
      for (std::size_t j = body; j < n; ++j) dot += double(row[j]) * double(pr[j]);
      const float c = static_cast<float>(dot);
      const Batch vc(c);
      for (std::size_t j = 0; j < body; j += width)
        (Batch::load_unaligned(pr + j) * (Batch::load_unaligned(row + j) - vc) * vs)
            .store_unaligned(row + j);
      for (std::size_t j = body; j < n; ++j) row[j] = pr[j] * (row[j] - c) * scale;
    }
  }

  static void layer_norm_forward(const LayerNormRows& in, const float* b, double eps, float* z,
                                 float* mean, float* invstd) {
    const std::size_t d = in.d, body = d - d % width;
    for (std::size_t r = 0; r < in.rows; ++r) {
      const float* x = in.x + r * d;
      double sum = lane_sum(d, [x](std::size_t i) { return Batch::load_unaligned(x + i); });
      for (std::size_t j = body; j < d; ++j) sum += double(x[j]);
      const float m = static_cast<float>(sum / double(d));
      const Batch vm(m);
      double sq = lane_sum(d, [x, &vm](std::size_t i) {
        const Batch c = Batch::load_unaligned(x + i) - vm;
        return c * c;
      });
      for (std::size_t j = body; j < d; ++j) sq += double((x[j] - m) * (x[j] - m));
      // 1 / sqrt in double, as the scalar loop: no library call in this file (see apply)
      const float s = static_cast<float>(1 / __builtin_sqrt(sq / double(d) + eps));
      mean[r] = m;
      invstd[r] = s;
      const Batch vs(s);
      float* out = z + r * d;
      std::size_t j = 0;
      for (; j < body; j += width) {
        Batch t = (Batch::load_unaligned(x + j) - vm) * vs;
        if (in.w) t = t * Batch::load_unaligned(in.w + j);
        if (b) t = t + Batch::load_unaligned(b + j);
        t.store_unaligned(out + j);
      }
      for (; j < d; ++j) {
        float t = (x[j] - m) * s;
        if (in.w) t = t * in.w[j];
        if (b) t = t + b[j];
        out[j] = t;
      }
    }
  }

  // Plain loops, which this file's flags vectorize for the path's instruction set; four rows
  // added to a column's running sum at a time, one after the other (the same order as one by
  // one), so that the sums are loaded and stored once per four rows.
  static void column_sums(const float* x, std::size_t rows, std::size_t cols, std::size_t begin,
                          std::size_t end, double* acc) {
    const std::size_t n = end - begin;
    std::size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      const float* r0 = x + r * cols + begin;
      const float* r1 = r0 + cols;
      const float* r2 = r1 + cols;
      const float* r3 = r2 + cols;
      for (std::size_t j = 0; j < n; ++j) {
        double a = acc[j];
        a += static_cast<double>(r0[j]);
        a += static_cast<double>(r1[j]);
        a += static_cast<double>(r2[j]);
        a += static_cast<double>(r3[j]);
        acc[j] = a;
      }
    }
    for (; r < rows; ++r) {
      const float* row = x + r * cols + begin;
      for (std::size_t j = 0; j < n; ++j) acc[j] += static_cast<double>(row[j]);
    }
  }

  static void layer_norm_backward(const LayerNormRows& in, const float* g, const float* mean,
                                  const float* invstd, float* dx, double* dw, double* db,
                                  float* scratch) {
    const std::size_t d = in.d, body = d - d % width;
    const float* w = in.w;
    float* fw = scratch;  // float partial sums of dw and db over at most kBlock rows
    float* fb = scratch + d;
    constexpr std::size_t kBlock = 16;
    for (std::size_t j = 0; j < 2 * d; ++j) scratch[j] = 0;
    const auto flush = [&] {
      for (std::size_t j = 0; j < d; ++j) {
        if (dw) dw[j] += double(fw[j]);
        if (db) db[j] += double(fb[j]);
        fw[j] = fb[j] = 0;
      }
    };
    for (std::size_t r = 0; r < in.rows; ++r) {
      const float* x = in.x + r * d;
      const float* gr = g + r * d;
      const float m = mean[r], s = invstd[r];
      const Batch vm(m), vs(s);
      // dxhat = g w; the sums of dxhat and of dxhat xhat
      const auto dxhat = [gr, w](std::size_t i) {
        const Batch gi = Batch::load_unaligned(gr + i);
        return w ? gi * Batch::load_unaligned(w + i) : gi;
      };
      Batch acc_d(0.0f), acc_dx(0.0f);
      for (std::size_t i = 0; i < body; i += width) {
        const Batch di = dxhat(i);
        acc_d += di;
        acc_dx += di * ((Batch::load_unaligned(x + i) - vm) * vs);
      }
      double sum_d = reduce(acc_d), sum_dx = reduce(acc_dx);
      for (std::size_t j = body; j < d; ++j) {
        const float dj = w ? gr[j] * w[j] : gr[j];
        sum_d += double(dj);
        sum_dx += double(dj * ((x[j] - m) * s));
      }
      const float a = static_cast<float>(sum_d / double(d));
      const float c = static_cast<float>(sum_dx / double(d));
      const Batch va(a), vc(c);
      float* out = dx + r * d;
      std::size_t j = 0;
      for (; j < body; j += width) {
        const Batch gj = Batch::load_unaligned(gr + j);
        const Batch xhat = (Batch::load_unaligned(x + j) - vm) * vs;
        (vs * (dxhat(j) - va - xhat * vc)).store_unaligned(out + j);
        if (dw) (Batch::load_unaligned(fw + j) + gj * xhat).store_unaligned(fw + j);
        if (db) (Batch::load_unaligned(fb + j) + gj).store_unaligned(fb + j);
      }
      for (; j < d; ++j) {
        const float xhat = (x[j] - m) * s;
        const float dj = w ? gr[j] * w[j] : gr[j];
        out[j] = s * (dj - a - xhat * c);
        fw[j] += gr[j] * xhat;
        fb[j] += gr[j];
      }
      if ((r + 1) % kBlock == 0 || r + 1 == in.rows) flush();
    }
  }

  // The optimizers' updates (optim_kernels.hpp gives each one's order of operations). Every
  // a * b + c stays two roundings, as in the plain loop compiled without FMA (the compiler would
  // fuse them on AVX-512 and AVX2; the transcendental functions above gain a quarter from it), so
  // that every path gives the same bits. Each Lanes(g, a, c) updates one vector of lanes of the
  // state arrays a[r] (the parameters first; null when absent, which says which update runs) in
  // place from the gradient's at g.
#define XGRAD_TWO_ROUNDINGS __attribute__((optimize("fp-contract=off")))

  // Lanes over n elements; the tail through copies padded with zeros (as in apply).
  template <auto Lanes, std::size_t K, class C>
  XGRAD_TWO_ROUNDINGS static void update(std::size_t n, const float* g, float* const (&a)[K],
                                         const C& c) {
    float* at[K];
    std::size_t i = 0;
    for (; i + width <= n; i += width) {
      for (std::size_t r = 0; r < K; ++r) at[r] = a[r] ? a[r] + i : nullptr;
      Lanes(g + i, at, c);
    }
    if (i == n) return;
    alignas(64) float tail[K + 1][width] = {};
    for (std::size_t k = i; k < n; ++k) {
      tail[K][k - i] = g[k];
      for (std::size_t r = 0; r < K; ++r)
        if (a[r]) tail[r][k - i] = a[r][k];
    }
    for (std::size_t r = 0; r < K; ++r) at[r] = a[r] ? tail[r] : nullptr;
    Lanes(tail[K], at, c);
    for (std::size_t r = 0; r < K; ++r)
      if (a[r])
        for (std::size_t k = i; k < n; ++k) a[r][k] = tail[r][k - i];
  }
  static Batch load(const float* x) { return Batch::load_unaligned(x); }

  // a: p, m, v
  XGRAD_TWO_ROUNDINGS static void adam_lanes(const float* g, float* const* a, const AdamStep& c) {
    Batch p = load(a[0]);
    if (c.decay_first) p = p - Batch(c.lr * c.wd) * p;
    const Batch d = load(g) + Batch(c.l2) * p;
    const Batch m = Batch(c.b1) * load(a[1]) + Batch(1 - c.b1) * d;
    const Batch v = Batch(c.b2) * load(a[2]) + Batch(1 - c.b2) * d * d;
    p = p - Batch(c.step_size) * m / (xsimd::sqrt(v) / Batch(c.root_c2) + Batch(c.eps));
    p.store_unaligned(a[0]);
    m.store_unaligned(a[1]);
    v.store_unaligned(a[2]);
  }
  static void adam_update(float* p, const float* g, float* m, float* v, std::size_t n,
                          const AdamStep& c) {
    update<adam_lanes>(n, g, {p, m, v}, c);
  }

  // ---- max_pool_2x2: the even and odd entries of 2 width floats, and partial loads and stores --
  static constexpr bool kAvx512 = std::is_same_v<Arch, xsimd::avx512f>;
  static constexpr bool kAvx2 = std::is_same_v<Arch, xsimd::avx2>;
  // The first n <= width floats at p, the other lanes 0 (nothing past p + n is read).
  static Batch load_n(const float* p, std::size_t n) {
    if (n == width) return Batch::load_unaligned(p);
    if constexpr (kAvx512) {
      return Batch(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p));
    } else if constexpr (kAvx2) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      return Batch(_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lanes)));
    } else {
      alignas(64) float t[width] = {};
      for (std::size_t k = 0; k < n; ++k) t[k] = p[k];
      return Batch::load_aligned(t);
    }
  }
  // v's first n <= width lanes to p (nothing past p + n is written): float or int32 lanes.
  template <class E>
  static void store_n(E* p, const xsimd::batch<E, Arch>& v, std::size_t n) {
    if (n == width) return v.store_unaligned(p);
    if constexpr (kAvx512) {
      const auto mask = static_cast<__mmask16>((1u << n) - 1);
      if constexpr (std::is_same_v<E, float>)
        _mm512_mask_storeu_ps(p, mask, v);
      else
        _mm512_mask_storeu_epi32(p, mask, v);
    } else if constexpr (kAvx2) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lanes);
      if constexpr (std::is_same_v<E, float>)
        _mm256_maskstore_ps(p, mask, v);
      else
        _mm256_maskstore_epi32(p, mask, v);
    } else {
      alignas(64) E t[width];
      v.store_aligned(t);
      for (std::size_t k = 0; k < n; ++k) p[k] = t[k];
    }
  }
  // Lanes 0, 2, 4, ... (odd = 0) or 1, 3, 5, ... (odd = 1) of lo then hi.
  template <int odd>
  static Batch every_other(const Batch& lo, const Batch& hi) {
    if constexpr (kAvx512) {
      const __m512i at = _mm512_setr_epi32(odd, 2 + odd, 4 + odd, 6 + odd, 8 + odd, 10 + odd,
                                           12 + odd, 14 + odd, 16 + odd, 18 + odd, 20 + odd,
                                           22 + odd, 24 + odd, 26 + odd, 28 + odd, 30 + odd);
      return Batch(_mm512_permutex2var_ps(lo, at, hi));
    } else if constexpr (kAvx2) {
      // within each 128-bit half: lo's pair, then hi's; then the 64-bit quarters in order 0 2 1 3
      const __m256 pairs =
          _mm256_shuffle_ps(lo, hi, odd ? _MM_SHUFFLE(3, 1, 3, 1) : _MM_SHUFFLE(2, 0, 2, 0));
      return Batch(_mm256_castpd_ps(
          _mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0))));
    } else {
      return Batch(_mm_shuffle_ps(lo, hi, odd ? _MM_SHUFFLE(3, 1, 3, 1) : _MM_SHUFFLE(2, 0, 2, 0)));
    }
  }

  // where[l] = top + 2 l + off[l] for the first n <= width lanes (off holds whole numbers below
  // 2^24; the sum is taken modulo 2^32 in int32 lanes, the same bits as in uint32).
  using Ints = xsimd::batch<std::int32_t, Arch>;
  static void store_offsets(std::uint32_t* where, std::uint32_t top, const Ints& twice_lane,
                            const Batch& off, std::size_t n) {
    const Ints at =
        xsimd::batch_cast<std::int32_t>(off) + twice_lane + Ints(static_cast<std::int32_t>(top));
    store_n(reinterpret_cast<std::int32_t*>(where), at, n);  // int32 may alias uint32
  }

  // A window's choice, lane by lane, from its four entries v (row-major) and their offsets at: the
  // first largest (a later entry replaces the best only when greater), then the first NaN.
  static void choose(const Batch (&v)[4], const Batch (&at)[4], Batch& best, Batch& off) {
    best = v[0];
    off = at[0];
    for (int k = 1; k < 4; ++k) {
      const auto greater = v[k] > best;
      best = xsimd::select(greater, v[k], best);
      off = xsimd::select(greater, at[k], off);
    }
    for (int k = 4; k-- > 0;) {
      const auto nan = xsimd::isnan(v[k]);  // not v != v: xsimd 8.1 compares ordered
      best = xsimd::select(nan, v[k], best);
      off = xsimd::select(nan, at[k], off);
    }
  }

  // Each window's a, b (its first row) and c, d (its second), width windows at a time: the first
  // largest (a later entry replaces the best only when greater), then the first NaN; the chosen
  // entry's offset from a (0, 1, W, W + 1) kept as a float, exact below 2^24.
  static void max_pool_2x2(const Pool2x2& in, float* y, std::uint32_t* where) {
    const Batch right(1.0f), below(float(in.W)), below_right(float(in.W + 1));
    alignas(64) std::int32_t twice[width];
    for (std::size_t l = 0; l < width; ++l) twice[l] = static_cast<std::int32_t>(2 * l);
    const Ints twice_lane = Ints::load_aligned(twice);
    for (std::size_t p = 0; p < in.planes; ++p) {
      const float* plane = in.x + p * in.H * in.W;
      for (std::size_t i = 0; i < in.oh; ++i) {
        const float* r0 = plane + 2 * i * in.W;
        const float* r1 = r0 + in.W;
        const std::size_t out = (p * in.oh + i) * in.ow;
        for (std::size_t j = 0; j < in.ow; j += width) {
          // n windows, their 2n entries of a row in a full batch and a partial one (plain
          // conditionals, not std::min: see apply)
          const std::size_t n = in.ow - j < width ? in.ow - j : width;
          const std::size_t first = 2 * n < width ? 2 * n : width;
          const Batch t0 = load_n(r0 + 2 * j, first),
                      t1 = load_n(r0 + 2 * j + first, 2 * n - first);
          const Batch b0 = load_n(r1 + 2 * j, first),
                      b1 = load_n(r1 + 2 * j + first, 2 * n - first);
          const Batch v[4] = {every_other<0>(t0, t1), every_other<1>(t0, t1),
                              every_other<0>(b0, b1), every_other<1>(b0, b1)};
          const Batch at[4] = {Batch(0.0f), right, below, below_right};
          Batch best, off;
          choose(v, at, best, off);
          store_n(y + out + j, best, n);
          store_offsets(where + out + j, static_cast<std::uint32_t>(2 * i * in.W + 2 * j),
                        twice_lane, off, n);
        }
      }
    }
  }

  // The same over blocked planes (vector_math.hpp): a position's block lanes in whole vectors, the
  // four entries of a window `block` lanes apart; where a vector spans more than a block (block 8
  // on 16 lanes) lane by lane.
  static void max_pool_2x2_blocked(const Pool2x2& in, std::size_t block, float* y,
                                   std::uint32_t* where) {
    const Batch at[4] = {Batch(0.0f), Batch(1.0f), Batch(float(in.W)), Batch(float(in.W + 1))};
    const std::size_t offsets[4] = {0, 1, in.W, in.W + 1};
    for (std::size_t p = 0; p < in.planes; ++p) {
      const float* plane = in.x + p * in.H * in.W * block;
      for (std::size_t i = 0; i < in.oh; ++i)
        for (std::size_t j = 0; j < in.ow; ++j) {
          const std::size_t top = 2 * i * in.W + 2 * j, o = ((p * in.oh + i) * in.ow + j) * block;
          const float* a = plane + top * block;
          if (block % width != 0) {
            for (std::size_t lane = 0; lane < block; ++lane) {
              float best = a[lane];
              std::size_t off = 0;
              for (int k = 1; k < 4; ++k) {
                const float v = a[offsets[k] * block + lane];
                off = v > best ? offsets[k] : off;
                best = v > best ? v : best;
              }
              for (int k = 4; k-- > 0;) {
                const float v = a[offsets[k] * block + lane];
                off = v != v ? offsets[k] : off;
                best = v != v ? v : best;
              }
              y[o + lane] = best;
              where[o + lane] = static_cast<std::uint32_t>(top + off);
            }
            continue;
          }
          for (std::size_t l = 0; l < block; l += width) {
            Batch v[4];
            for (int k = 0; k < 4; ++k) v[k] = Batch::load_unaligned(a + offsets[k] * block + l);
            Batch best, off;
            choose(v, at, best, off);
            best.store_unaligned(y + o + l);
            (xsimd::batch_cast<std::int32_t>(off) + Ints(static_cast<std::int32_t>(top)))
                .store_unaligned(reinterpret_cast<std::int32_t*>(where + o + l));
          }
        }
    }
  }
  // Its backward: a window's four entries get the output's gradient where chosen, else 0 (dx's
  // entries that no window covers are left as they are).
  static void max_unpool_2x2_blocked(const Pool2x2& in, std::size_t block,
                                     const std::uint32_t* where, const float* g, float* dx) {
    const std::size_t offsets[4] = {0, 1, in.W, in.W + 1};
    for (std::size_t p = 0; p < in.planes; ++p) {
      float* plane = dx + p * in.H * in.W * block;
      for (std::size_t i = 0; i < in.oh; ++i)
        for (std::size_t j = 0; j < in.ow; ++j) {
          const std::size_t top = 2 * i * in.W + 2 * j, o = ((p * in.oh + i) * in.ow + j) * block;
          float* a = plane + top * block;
          if (block % width != 0) {
            for (int k = 0; k < 4; ++k)
              for (std::size_t lane = 0; lane < block; ++lane)
                a[offsets[k] * block + lane] =
                    where[o + lane] == top + offsets[k] ? g[o + lane] : 0.0f;
            continue;
          }
          for (std::size_t l = 0; l < block; l += width) {
            const Batch chosen = xsimd::batch_cast<float>(
                Ints::load_unaligned(reinterpret_cast<const std::int32_t*>(where + o + l)));
            const Batch gv = Batch::load_unaligned(g + o + l);
            for (int k = 0; k < 4; ++k)
              xsimd::select(chosen == Batch(float(top + offsets[k])), gv, Batch(0.0f))
                  .store_unaligned(a + offsets[k] * block + l);
          }
        }
    }
  }

  // ---- small_gemm (vector_math.hpp): register tiles of C ---------------------------------------
  // R rows by V vectors of columns of C = alpha op(A) op(B) + beta C, summed over all of k in
  // registers: op(A)'s entry (i, q) read at a[i ar + q ac] and broadcast, op(B) row-major (rows ldb
  // apart); when Partial, the last vector holds the columns' last `last` < width lanes.
  template <std::size_t R, std::size_t V, bool Partial>
  static void product_tile(const Product& g, const float* a, std::size_t ar, std::size_t ac,
                           const float* b, std::size_t ldb, float* c, std::size_t last) {
    const auto lanes = [last](std::size_t v) { return Partial && v + 1 == V ? last : width; };
    Batch acc[R][V];
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (std::size_t v = 0; v < V; ++v) acc[r][v] = Batch(0.0f);
    for (std::size_t q = 0; q < g.k; ++q) {
      Batch bq[V];
#pragma GCC unroll 8
      for (std::size_t v = 0; v < V; ++v) bq[v] = load_n(b + q * ldb + v * width, lanes(v));
#pragma GCC unroll 8
      for (std::size_t r = 0; r < R; ++r) {
        const Batch ai(a[r * ar + q * ac]);
#pragma GCC unroll 8
        for (std::size_t v = 0; v < V; ++v) acc[r][v] = xsimd::fma(ai, bq[v], acc[r][v]);
      }
    }
    const Batch alpha(g.alpha), beta(g.beta);
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (std::size_t v = 0; v < V; ++v) {
        float* at = c + r * g.ldc + v * width;
        Batch z = alpha * acc[r][v];
        if (g.beta != 0.0f) z = z + beta * load_n(at, lanes(v));  // beta 0: C is not read
        store_n(at, z, lanes(v));
      }
  }
  // R rows of C, all its columns: two vectors at a time, then one, then the lanes left.
  template <std::size_t R>
  static void product_rows(const Product& g, const float* a, std::size_t ar, std::size_t ac,
                           const float* b, std::size_t ldb, float* c) {
    std::size_t j = 0;
    for (; j + 2 * width <= g.n; j += 2 * width)
      product_tile<R, 2, false>(g, a, ar, ac, b + j, ldb, c + j, width);
    if (j + width <= g.n) {
      product_tile<R, 1, false>(g, a, ar, ac, b + j, ldb, c + j, width);
      j += width;
    }
    if (j < g.n) product_tile<R, 1, true>(g, a, ar, ac, b + j, ldb, c + j, g.n - j);
  }
  // to (k x n, rows n apart) = B^T, B (n x k) with rows ld apart: 8 x 8 blocks through eight
  // 256-bit registers, the edges one entry at a time.
  static void transpose_into(const float* from, std::size_t ld, std::size_t n, std::size_t k,
                             float* to) {
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8) {
      std::size_t q = 0;
      for (; q + 8 <= k; q += 8) transpose_8x8(from + j * ld + q, ld, to + q * n + j, n);
      for (; q < k; ++q)
        for (std::size_t t = j; t < j + 8; ++t) to[q * n + t] = from[t * ld + q];
    }
    for (; j < n; ++j)
      for (std::size_t q = 0; q < k; ++q) to[q * n + j] = from[j * ld + q];
  }
  static void transpose_8x8(const float* x, std::size_t ld, float* y, std::size_t ldy) {
    __m256 r[8], t[8], u[8];
    for (std::size_t i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(x + i * ld);
    for (std::size_t i = 0; i < 8; i += 2) {  // rows i, i + 1 interleaved
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (std::size_t i = 0; i < 8; i += 4) {  // then pairs of them
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (std::size_t i = 0; i < 4; ++i) {  // then the 128-bit halves of rows 0-3 and 4-7
      _mm256_storeu_ps(y + i * ldy, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
      _mm256_storeu_ps(y + (i + 4) * ldy, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
  }
  static void small_gemm(const Product& g, float* scratch) {
    if (g.m == 0 || g.n == 0) return;
    const float* b = g.b;
    std::size_t ldb = g.ldb;
    if (g.trans_b) {
      transpose_into(g.b, g.ldb, g.n, g.k, scratch);
      b = scratch;
      ldb = g.n;
    }
    const std::size_t ar = g.trans_a ? 1 : g.lda, ac = g.trans_a ? g.lda : 1;
    std::size_t i = 0;
    for (; i + 4 <= g.m; i += 4) product_rows<4>(g, g.a + i * ar, ar, ac, b, ldb, g.c + i * g.ldc);
    for (; i < g.m; ++i) product_rows<1>(g, g.a + i * ar, ar, ac, b, ldb, g.c + i * g.ldc);
  }
  // The table's entry: AVX-512 alone (see vector_math.hpp).
  static constexpr auto small_gemm_entry() {
    if constexpr (kAvx512)
      return &small_gemm;
    else
      return static_cast<void (*)(const Product&, float*)>(nullptr);
  }

  // ---- panel_product (vector_math.hpp): C += A W^T against W^T packed in panels of 16 columns ---
  // Each panel (k rows of 16, row-major) is the B of small_gemm's tiles for its columns of C, with
  // beta 1, against all of A's rows six at a time while it stays in the first-level cache.
  static void panel_product(std::size_t m, std::size_t n, std::size_t k, const float* a,
                            const float* panels, float* c) {
    for (std::size_t j = 0; j < n; j += kPanelWidth) {
      const float* panel = panels + j * k;
      const std::size_t cols = n - j < kPanelWidth ? n - j : kPanelWidth;
      const Product g{false, false, m, cols, k, 1.0f, a, k, panel, kPanelWidth, 1.0f, c + j, n};
      std::size_t i = 0;
      for (; i + 6 <= m; i += 6)
        product_rows<6>(g, a + i * k, k, 1, panel, kPanelWidth, c + i * n + j);
      for (; i < m; ++i) product_rows<1>(g, a + i * k, k, 1, panel, kPanelWidth, c + i * n + j);
    }
  }
  // The table's entry: AVX2 and AVX-512 (see vector_math.hpp).
  static constexpr auto panel_product_entry() {
    if constexpr (kAvx2 || kAvx512)
      return &panel_product;
    else
      return static_cast<void (*)(std::size_t, std::size_t, std::size_t, const float*, const float*,
                                  float*)>(nullptr);
  }

  // a: p, b
  XGRAD_TWO_ROUNDINGS static void sgd_lanes(const float* g, float* const* a, const SgdStep& c) {
    Batch p = load(a[0]);
    if (!a[1] && c.wd == 0) {
      p = p - Batch(c.lr) * load(g);
    } else {
      const Batch d = load(g) + Batch(c.wd) * p;
      if (!a[1]) {
        p = p - Batch(c.lr) * d;
      } else {
        const Batch b = c.first ? d : Batch(c.momentum) * load(a[1]) + Batch(c.damp) * d;
        p = c.nesterov ? p - Batch(c.lr) * (d + Batch(c.momentum) * b) : p - Batch(c.lr) * b;
        b.store_unaligned(a[1]);
      }
    }
    p.store_unaligned(a[0]);
  }
  static void sgd_update(float* p, const float* g, float* b, std::size_t n, const SgdStep& c) {
    update<sgd_lanes>(n, g, {p, b}, c);
  }

  // a: p, the square average, the gradient average, the momentum buffer
  XGRAD_TWO_ROUNDINGS static void rmsprop_lanes(const float* g, float* const* a,
                                                const RmspropStep& c) {
    Batch p = load(a[0]);
    const Batch d = load(g) + Batch(c.wd) * p;
    const Batch v = Batch(c.alpha) * load(a[1]) + Batch(1 - c.alpha) * d * d;
    v.store_unaligned(a[1]);
    Batch var = v;
    if (a[2]) {
      const Batch m = Batch(c.alpha) * load(a[2]) + Batch(1 - c.alpha) * d;
      m.store_unaligned(a[2]);
      var = var - m * m;
    }
    const Batch s = xsimd::sqrt(var) + Batch(c.eps);
    if (a[3]) {
      const Batch b = Batch(c.momentum) * load(a[3]) + d / s;
      b.store_unaligned(a[3]);
      p = p - Batch(c.lr) * b;
    } else {
      p = p - Batch(c.lr) * d / s;
    }
    p.store_unaligned(a[0]);
  }
  static void rmsprop_update(float* p, const float* g, float* v, float* m, float* b, std::size_t n,
                             const RmspropStep& c) {
    update<rmsprop_lanes>(n, g, {p, v, m, b}, c);
  }

  // a: p, the sum of squares
  XGRAD_TWO_ROUNDINGS static void adagrad_lanes(const float* g, float* const* a,
                                                const AdagradStep& c) {
    Batch p = load(a[0]);
    const Batch d = load(g) + Batch(c.wd) * p;
    const Batch s = load(a[1]) + d * d;
    p = p - Batch(c.lr) * d / (xsimd::sqrt(s) + Batch(c.eps));
    s.store_unaligned(a[1]);
    p.store_unaligned(a[0]);
  }
  static void adagrad_update(float* p, const float* g, float* s, std::size_t n,
                             const AdagradStep& c) {
    update<adagrad_lanes>(n, g, {p, s}, c);
  }
  // ---- batch_norm's row sums (vector_math.hpp): lane k of eight adds entries k, k + 8, ... -----
  // One 256-bit register on AVX2 and AVX-512 (the same lanes as the plain loop of SSE2, so the
  // same bits), each lane in float; then the tail and the eight lanes, in that order, in double.
  static constexpr bool kEightWide = kAvx2 || kAvx512;
  static double add_lanes(double total, const float (&lanes)[8]) {
    for (float a : lanes) total += static_cast<double>(a);
    return total;
  }
  static double row_sum(const float* p, std::size_t n) {
    alignas(32) float acc[8] = {};
    std::size_t i = 0;
    if constexpr (kEightWide) {
      __m256 a = _mm256_setzero_ps();
      for (; i + 8 <= n; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
      _mm256_store_ps(acc, a);
    } else {
      for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += p[i + k];
    }
    double total = 0;
    for (; i < n; ++i) total += static_cast<double>(p[i]);
    return add_lanes(total, acc);
  }
  XGRAD_TWO_ROUNDINGS static double row_sum_squares(const float* p, std::size_t n, float m) {
    alignas(32) float acc[8] = {};
    std::size_t i = 0;
    if constexpr (kEightWide) {
      const __m256 mean = _mm256_set1_ps(m);
      __m256 a = _mm256_setzero_ps();
      for (; i + 8 <= n; i += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(p + i), mean);
        a = _mm256_add_ps(a, _mm256_mul_ps(d, d));
      }
      _mm256_store_ps(acc, a);
    } else {
      for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += (p[i + k] - m) * (p[i + k] - m);
    }
    double total = 0;
    for (; i < n; ++i) total += static_cast<double>((p[i] - m) * (p[i] - m));
    return add_lanes(total, acc);
  }
  // row_sums of g, or (masked_row_sums) of relu's gradient g' = g where x scale + shift > 0 or
  // is NaN, else 0: the same lanes, so the same bits as row_sums over g' made first.
  template <bool Masked>
  XGRAD_TWO_ROUNDINGS static void sums_of(const float* g, const float* x, std::size_t n, float m,
                                          const NormRow* r, double* sums) {
    alignas(32) float acc_g[8] = {}, acc_gd[8] = {};
    std::size_t i = 0;
    if constexpr (kEightWide) {
      const __m256 mean = _mm256_set1_ps(m);
      __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
      for (; i + 8 <= n; i += 8) {
        const __m256 xi = _mm256_loadu_ps(x + i);
        __m256 gi = _mm256_loadu_ps(g + i);
        if constexpr (Masked) {
          const __m256 z =
              _mm256_add_ps(_mm256_mul_ps(xi, _mm256_set1_ps(r->scale)), _mm256_set1_ps(r->shift));
          gi = _mm256_and_ps(gi, _mm256_or_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ),
                                              _mm256_cmp_ps(z, z, _CMP_UNORD_Q)));
        }
        a = _mm256_add_ps(a, gi);
        b = _mm256_add_ps(b, _mm256_mul_ps(gi, _mm256_sub_ps(xi, mean)));
      }
      _mm256_store_ps(acc_g, a);
      _mm256_store_ps(acc_gd, b);
    } else {
      for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) {
          const float gk = Masked ? masked(g[i + k], x[i + k], *r) : g[i + k];
          acc_g[k] += gk;
          acc_gd[k] += gk * (x[i + k] - m);
        }
    }
    double total_g = 0, total_gd = 0;
    for (; i < n; ++i) {
      const float gk = Masked ? masked(g[i], x[i], *r) : g[i];
      total_g += static_cast<double>(gk);
      total_gd += static_cast<double>(gk * (x[i] - m));
    }
    sums[0] = add_lanes(total_g, acc_g);
    sums[1] = add_lanes(total_gd, acc_gd);
  }
  XGRAD_TWO_ROUNDINGS static void row_sums(const float* g, const float* x, std::size_t n, float m,
                                           double* sums) {
    sums_of<false>(g, x, n, m, nullptr, sums);
  }
  XGRAD_TWO_ROUNDINGS static void masked_row_sums(const float* g, const float* x, std::size_t n,
                                                  float m, const NormRow& r, double* sums) {
    sums_of<true>(g, x, n, m, &r, sums);
  }

  // ---- batch_norm's rows (vector_math.hpp): whole vectors, then the tail in scalars ----------
  // relu's value and its gradient's mask: v > 0 or NaN (isnan, not v != v: xsimd 8.1 compares
  // ordered).
  static auto kept(const Batch& v) { return (v > Batch(0.0f)) | xsimd::isnan(v); }
  static bool kept(float v) { return (v > 0) | (v != v); }
  static Batch relu_of(const Batch& v) { return xsimd::select(kept(v), v, Batch(0.0f)); }
  static float relu_of(float v) { return kept(v) ? v : 0.0f; }
  XGRAD_TWO_ROUNDINGS static Batch masked(const Batch& g, const Batch& x, const NormRow& r) {
    return xsimd::select(kept(x * Batch(r.scale) + Batch(r.shift)), g, Batch(0.0f));
  }
  XGRAD_TWO_ROUNDINGS static float masked(float g, float x, const NormRow& r) {
    return kept(x * r.scale + r.shift) ? g : 0.0f;
  }
  XGRAD_TWO_ROUNDINGS static void norm_row_forward(const float* x, std::size_t n, const NormRow& r,
                                                   float* z) {
    std::size_t i = 0;
    for (; i + width <= n; i += width) {
      const Batch v = load(x + i) * Batch(r.scale) + Batch(r.shift);
      (r.relu ? relu_of(v) : v).store_unaligned(z + i);
    }
    for (; i < n; ++i) {
      const float v = x[i] * r.scale + r.shift;
      z[i] = r.relu ? relu_of(v) : v;
    }
  }
  XGRAD_TWO_ROUNDINGS static void norm_row_backward(const float* g, const float* x, std::size_t n,
                                                    const NormRow& r, float* dx) {
    const Batch a(r.a), b(r.b), k(r.k), mean(r.mean);
    std::size_t i = 0;
    for (; i + width <= n; i += width) {
      const Batch xv = load(x + i), gv = r.relu ? masked(load(g + i), xv, r) : load(g + i);
      (r.training ? a * gv + b * (xv - mean) + k : a * gv).store_unaligned(dx + i);
    }
    for (; i < n; ++i) {
      const float gv = r.relu ? masked(g[i], x[i], r) : g[i];
      dx[i] = r.training ? r.a * gv + r.b * (x[i] - r.mean) + r.k : r.a * gv;
    }
  }

  // ---- batch_norm over blocked planes (vector_math.hpp) ---------------------------------------
  // A plane is walked in groups of P = max(width, block) floats (a whole number of blocks and of
  // vectors); vector v of a group holds the lanes v width .. (v + 1) width - 1 of the group,
  // channel (lane mod block; a block is 8 or 16, so a mask, not a division). A plane's tail (block
  // 8 in 16 lanes, an odd area) goes through scalars.
  static constexpr std::size_t kGroup = 16;  // P at most: block <= 16, width <= 16
  static constexpr std::size_t kSpill = 64;  // groups summed in float before double
  struct Groups {
    std::size_t p, vectors, whole, floats;  // P, vectors per group, whole groups, plane's floats
  };
  static Groups groups_of(const BlockedNorm& in) {
    const std::size_t p = std::max(width, in.block), floats = in.area * in.block;
    return {p, p / width, floats / p, floats};
  }
  // A per-channel constant (C entries, null: 0) from channel `first`, repeated over a group.
  static void repeat(const float* c, std::size_t first, std::size_t block, std::size_t p,
                     Batch* out) {
    alignas(64) float lanes[kGroup];
    for (std::size_t j = 0; j < p; ++j) lanes[j] = c ? c[first + (j & (block - 1))] : 0.0f;
    for (std::size_t v = 0; v < p / width; ++v) out[v] = Batch::load_aligned(lanes + v * width);
  }
  // g's vector, loaded whole: the compiler would fold the select on relu's mask that follows into
  // a masked load, which waits for the mask (computed from x); on the Zen 5 the passes that did so
  // took 1.4x as long (bench/micro's BatchNormReluLayout, 28 x 28).
  static Batch loaded(const float* g) {
    Batch v = Batch::load_unaligned(g);
    asm("" : "+v"(v.data));
    return v;
  }
  XGRAD_TWO_ROUNDINGS static float masked_at(float g, float x, float scale, float shift) {
    return kept(x * scale + shift) ? g : 0.0f;
  }
  // Adds a group's float lanes into the channels' double sums.
  static void spill(const Batch* acc, std::size_t vectors, std::size_t first, std::size_t block,
                    double* sums) {
    alignas(64) float lanes[kGroup];
    for (std::size_t v = 0; v < vectors; ++v) acc[v].store_aligned(lanes + v * width);
    for (std::size_t j = 0; j < vectors * width; ++j)
      sums[first + (j & (block - 1))] += static_cast<double>(lanes[j]);
  }
  template <std::size_t V>
  XGRAD_TWO_ROUNDINGS static void blocked_sums_of(const BlockedNorm& in, bool squares,
                                                  double* sums) {
    const Groups G = groups_of(in);
    for (std::size_t p = 0; p < in.planes; ++p) {
      const std::size_t first = (p % in.blocks) * in.block;
      const float* x = in.x + p * G.floats;
      Batch m[V], acc[V];
      repeat(squares ? in.mean : nullptr, first, in.block, G.p, m);
      for (std::size_t at = 0; at < G.whole; at += kSpill) {
        for (std::size_t v = 0; v < V; ++v) acc[v] = Batch(0.0f);
        for (std::size_t q = at; q < std::min(at + kSpill, G.whole); ++q)
          for (std::size_t v = 0; v < V; ++v) {
            const Batch d = Batch::load_unaligned(x + q * G.p + v * width) - m[v];
            acc[v] += squares ? d * d : d;
          }
        spill(acc, V, first, in.block, sums);
      }
      for (std::size_t j = G.whole * G.p; j < G.floats; ++j) {
        const float d = x[j] - (squares ? in.mean[first + (j & (in.block - 1))] : 0.0f);
        sums[first + (j & (in.block - 1))] += static_cast<double>(squares ? d * d : d);
      }
    }
  }
  template <std::size_t V>
  XGRAD_TWO_ROUNDINGS static void blocked_grad_sums_of(const BlockedNorm& in, const float* g,
                                                       double* sums) {
    const Groups G = groups_of(in);
    const std::size_t C = in.blocks * in.block;
    for (std::size_t p = 0; p < in.planes; ++p) {
      const std::size_t first = (p % in.blocks) * in.block;
      const float* x = in.x + p * G.floats;
      const float* gp = g + p * G.floats;
      Batch m[V], sc[V], sh[V], ag[V], agd[V];
      repeat(in.mean, first, in.block, G.p, m);
      repeat(in.scale, first, in.block, G.p, sc);
      repeat(in.shift, first, in.block, G.p, sh);
      for (std::size_t at = 0; at < G.whole; at += kSpill) {
        for (std::size_t v = 0; v < V; ++v) ag[v] = agd[v] = Batch(0.0f);
        for (std::size_t q = at; q < std::min(at + kSpill, G.whole); ++q)
          for (std::size_t v = 0; v < V; ++v) {
            const std::size_t j = q * G.p + v * width;
            const Batch xv = Batch::load_unaligned(x + j);
            Batch gv = loaded(gp + j);
            if (in.relu) gv = xsimd::select(kept(xv * sc[v] + sh[v]), gv, Batch(0.0f));
            ag[v] += gv;
            agd[v] += gv * (xv - m[v]);
          }
        spill(ag, V, first, in.block, sums);
        spill(agd, V, first, in.block, sums + C);
      }
      for (std::size_t j = G.whole * G.p; j < G.floats; ++j) {
        const std::size_t c = first + (j & (in.block - 1));
        const float gv = in.relu ? masked_at(gp[j], x[j], in.scale[c], in.shift[c]) : gp[j];
        sums[c] += static_cast<double>(gv);
        sums[C + c] += static_cast<double>(gv * (x[j] - in.mean[c]));
      }
    }
  }
  template <std::size_t V>
  XGRAD_TWO_ROUNDINGS static void blocked_norm_forward_of(const BlockedNorm& in, float* z) {
    const Groups G = groups_of(in);
    for (std::size_t p = 0; p < in.planes; ++p) {
      const std::size_t first = (p % in.blocks) * in.block;
      const float* x = in.x + p * G.floats;
      float* zp = z + p * G.floats;
      Batch sc[V], sh[V];
      repeat(in.scale, first, in.block, G.p, sc);
      repeat(in.shift, first, in.block, G.p, sh);
      for (std::size_t q = 0; q < G.whole; ++q)
        for (std::size_t v = 0; v < V; ++v) {
          const std::size_t j = q * G.p + v * width;
          const Batch r = Batch::load_unaligned(x + j) * sc[v] + sh[v];
          (in.relu ? relu_of(r) : r).store_unaligned(zp + j);
        }
      for (std::size_t j = G.whole * G.p; j < G.floats; ++j) {
        const std::size_t c = first + (j & (in.block - 1));
        const float r = x[j] * in.scale[c] + in.shift[c];
        zp[j] = in.relu ? relu_of(r) : r;
      }
    }
  }
  template <std::size_t V>
  XGRAD_TWO_ROUNDINGS static void blocked_norm_backward_of(const BlockedNorm& in, const float* g,
                                                           float* dx) {
    const Groups G = groups_of(in);
    for (std::size_t p = 0; p < in.planes; ++p) {
      const std::size_t first = (p % in.blocks) * in.block;
      const float* x = in.x + p * G.floats;
      const float* gp = g + p * G.floats;
      float* out = dx + p * G.floats;
      Batch sc[V], sh[V], m[V], a[V], b[V], k[V];
      repeat(in.scale, first, in.block, G.p, sc);
      repeat(in.shift, first, in.block, G.p, sh);
      repeat(in.mean, first, in.block, G.p, m);
      repeat(in.a, first, in.block, G.p, a);
      repeat(in.b, first, in.block, G.p, b);
      repeat(in.k, first, in.block, G.p, k);
      for (std::size_t q = 0; q < G.whole; ++q)
        for (std::size_t v = 0; v < V; ++v) {
          const std::size_t j = q * G.p + v * width;
          const Batch xv = Batch::load_unaligned(x + j);
          Batch gv = loaded(gp + j);
          if (in.relu) gv = xsimd::select(kept(xv * sc[v] + sh[v]), gv, Batch(0.0f));
          (in.training ? a[v] * gv + b[v] * (xv - m[v]) + k[v] : a[v] * gv)
              .store_unaligned(out + j);
        }
      for (std::size_t j = G.whole * G.p; j < G.floats; ++j) {
        const std::size_t c = first + (j & (in.block - 1));
        const float gv = in.relu ? masked_at(gp[j], x[j], in.scale[c], in.shift[c]) : gp[j];
        out[j] =
            in.training ? in.a[c] * gv + in.b[c] * (x[j] - in.mean[c]) + in.k[c] : in.a[c] * gv;
      }
    }
  }

  // Each kernel with its vectors per group (P / width: 1, 2 or 4) known to the compiler, so that
  // the group's lanes stay in registers.
  template <class F>
  static void with_vectors(std::size_t block, F f) {
    const std::size_t vectors = std::max(width, block) / width;
    if constexpr (4 * width <= kGroup)
      if (vectors == 4) return f(std::integral_constant<std::size_t, 4>{});
    if constexpr (2 * width <= kGroup)
      if (vectors == 2) return f(std::integral_constant<std::size_t, 2>{});
    f(std::integral_constant<std::size_t, 1>{});
  }
  static void blocked_sums(const BlockedNorm& in, bool squares, double* sums) {
    with_vectors(in.block, [&](auto v) { blocked_sums_of<v()>(in, squares, sums); });
  }
  static void blocked_grad_sums(const BlockedNorm& in, const float* g, double* sums) {
    with_vectors(in.block, [&](auto v) { blocked_grad_sums_of<v()>(in, g, sums); });
  }
  static void blocked_norm_forward(const BlockedNorm& in, float* z) {
    with_vectors(in.block, [&](auto v) { blocked_norm_forward_of<v()>(in, z); });
  }
  static void blocked_norm_backward(const BlockedNorm& in, const float* g, float* dx) {
    with_vectors(in.block, [&](auto v) { blocked_norm_backward_of<v()>(in, g, dx); });
  }

#undef XGRAD_TWO_ROUNDINGS

  static constexpr Functions table = {exp,
                                      tanh,
                                      erf,
                                      gelu_forward,
                                      gelu_backward,
                                      gru_gates_forward,
                                      gru_gates_backward,
                                      lstm_gates_forward,
                                      lstm_gates_backward,
                                      layer_norm_forward,
                                      layer_norm_backward,
                                      column_sums,
                                      softmax_rows,
                                      softmax_backward_rows,
                                      max_pool_2x2,
                                      max_pool_2x2_blocked,
                                      max_unpool_2x2_blocked,
                                      small_gemm_entry(),
                                      panel_product_entry(),
                                      row_sum,
                                      row_sum_squares,
                                      row_sums,
                                      norm_row_forward,
                                      masked_row_sums,
                                      norm_row_backward,
                                      blocked_sums,
                                      blocked_grad_sums,
                                      blocked_norm_forward,
                                      blocked_norm_backward,
                                      adam_update,
                                      sgd_update,
                                      rmsprop_update,
                                      adagrad_update};
};

// Each path's table, from the file compiled for it.
const Functions& avx2_functions();
const Functions& avx512_functions();

}  // namespace xgrad::detail::vec
