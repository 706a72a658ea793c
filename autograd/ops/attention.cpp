// multi_head_attention: qkv (B, T, 3E) packed as an in-projection makes it, H heads of d = E / H:
//   for each batch b and head h, Q, K, V = the columns h d .. (h + 1) d - 1 of the three blocks,
//   S = scale Q K^T (entries above the diagonal -inf when causal), P = softmax(S) by rows,
//   D = P M (M the dropout mask, 1 / (1 - p) or 0; no dropout: D = P), O = D V,
//   written into the columns of head h of the output (B, T, E): the heads joined.
//   With G = dL/dO (head h's columns):  dV = D^T G,  dD = G V^T,  dP = dD M,
//   dS = P (dP - rowsum(dP P)),  dQ = scale dS K,  dK = scale dS^T Q.
//   Saves qkv, P and M.
// NOTE: a primitive for speed: the composite (chunk, reshape and permute into heads, batched
// products, masked_fill, softmax, then permute and reshape back) copied the activations six times;
// here each head's products read the packed input in place (leading dimension 3E) and write the
// joined output directly. Under create_graph the backward is written in ops.
#include <cmath>
#include <limits>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

struct Sizes {
  std::size_t B, T, E, H, d;
};

// (B, T, E) -> (B, H, T, d) and back, in ops.
Tensor to_heads(const Tensor& x, const Sizes& s) {
  return transpose(reshape(x, {long(s.B), long(s.T), long(s.H), long(s.d)}), 1, 2);
}
Tensor from_heads(const Tensor& x, const Sizes& s) {
  return reshape(transpose(x, 1, 2), {long(s.B), long(s.T), long(s.E)});
}

struct MultiHeadAttention final : Node {
  MultiHeadAttention(Sizes sizes, double scale, bool causal, bool dropout)
      : s_(sizes), scale_(scale), causal_(causal), dropout_(dropout) {}
  std::string_view name() const override { return "multi_head_attention"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor qkv = saved(0), p = saved(1), mask = dropout_ ? saved(2) : Tensor();
    if (GradMode::is_enabled()) return recorded(g, qkv, mask, grads);
    const Sizes s = s_;
    grads[0] = detail::dispatch(qkv.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* x = detail::data<T>(qkv);
      const T* pg = detail::data<T>(g);
      const T* pp = detail::data<T>(p);
      const T* pm = dropout_ ? detail::data<T>(mask) : nullptr;
      xt::xarray<T> dx = detail::empty<T>(qkv.shape());
      std::vector<T> dd(s.T * s.T), weights(pm ? s.T * s.T : 0);
      const std::size_t ld = 3 * s.E, tt = s.T * s.T;
      for (std::size_t b = 0; b < s.B; ++b)
        for (std::size_t h = 0; h < s.H; ++h) {
          const std::size_t at = b * s.T * ld + h * s.d;  // Q of (b, h); K at + E, V at + 2E
          const T* P = pp + (b * s.H + h) * tt;
          const T* D = P;
          if (pm) {
            const T* M = pm + (b * s.H + h) * tt;
            for (std::size_t i = 0; i < tt; ++i) weights[i] = P[i] * M[i];
            D = weights.data();
          }
          const T* G = pg + b * s.T * s.E + h * s.d;
          T* dQ = dx.data() + at;
          // dV = D^T G;  dD = G V^T
          detail::gemm(true, false, s.T, s.d, s.T, T{1}, D, s.T, G, s.E, T{0}, dQ + 2 * s.E, ld);
          detail::gemm(false, true, s.T, s.T, s.d, T{1}, G, s.E, x + at + 2 * s.E, ld, T{0},
                       dd.data(), s.T);
          // dS = P (dP - rowsum(dP P)), dP = dD M; scaled here once for both products
          for (std::size_t i = 0; i < s.T; ++i) {
            T* row = dd.data() + i * s.T;
            const T* prow = P + i * s.T;
            if (pm) {
              const T* mrow = pm + (b * s.H + h) * tt + i * s.T;
              for (std::size_t j = 0; j < s.T; ++j) row[j] *= mrow[j];
            }
            double dot = 0;
            for (std::size_t j = 0; j < s.T; ++j) dot += double(row[j]) * double(prow[j]);
            const T c = static_cast<T>(dot);
            for (std::size_t j = 0; j < s.T; ++j) row[j] = prow[j] * (row[j] - c) * T(scale_);
          }
          // dQ = dS K;  dK = dS^T Q
          detail::gemm(false, false, s.T, s.d, s.T, T{1}, dd.data(), s.T, x + at + s.E, ld, T{0},
                       dQ, ld);
          detail::gemm(true, false, s.T, s.d, s.T, T{1}, dd.data(), s.T, x + at, ld, T{0}, dQ + s.E,
                       ld);
        }
      return Tensor(std::move(dx));
    });
  }

  // The same in ops, for create_graph: P recomputed from qkv, so that its derivative is recorded.
  void recorded(const Tensor& g, const Tensor& qkv, const Tensor& mask, std::span<Tensor> grads) {
    const std::vector<Tensor> parts = chunk(qkv, 3, -1);
    const Tensor q = to_heads(parts[0], s_), k = to_heads(parts[1], s_), v = to_heads(parts[2], s_);
    Tensor scores = mul(matmul(q, transpose(k)), scale_);
    if (causal_)
      scores = masked_fill(scores, tril(ones_like(scores)) == 0,
                           -std::numeric_limits<double>::infinity());
    const Tensor p = softmax(scores, -1);
    const Tensor d = dropout_ ? mul(p, mask) : p;
    const Tensor gh = to_heads(g, s_);
    const Tensor dv = matmul(transpose(d), gh);
    Tensor dp = matmul(gh, transpose(v));
    if (dropout_) dp = mul(dp, mask);
    const Tensor ds = mul(mul(p, sub(dp, sum(mul(dp, p), {-1}, true))), scale_);
    const Tensor dq = matmul(ds, k), dk = matmul(transpose(ds), q);
    grads[0] = concat({from_heads(dq, s_), from_heads(dk, s_), from_heads(dv, s_)}, -1);
  }

  Sizes s_;
  double scale_;
  bool causal_, dropout_;
};

}  // namespace

Tensor multi_head_attention(const Tensor& qkv, std::size_t num_heads,
                            const AttentionOptions& options) {
  const char* op = "multi_head_attention";
  if (qkv.dim() != 3 || qkv.size(2) % 3 != 0)
    throw ShapeError(std::string(op) + ": needs qkv (B, T, 3E), got " + shape_str(qkv.shape()));
  const std::size_t B = qkv.size(0), T = qkv.size(1), E = qkv.size(2) / 3;
  if (num_heads == 0 || E % num_heads != 0)
    throw ShapeError(std::string(op) + ": " + std::to_string(num_heads) +
                     " heads do not divide the width " + std::to_string(E) + " (qkv " +
                     shape_str(qkv.shape()) + ")");
  const Sizes s{B, T, E, num_heads, E / num_heads};
  if (options.mask.defined()) {  // any mask: the composite, which broadcasts it
    const CompositeScope composite("multi_head_attention");
    const std::vector<Tensor> parts = chunk(qkv, 3, -1);
    return from_heads(scaled_dot_product_attention(to_heads(parts[0], s), to_heads(parts[1], s),
                                                   to_heads(parts[2], s), options),
                      s);
  }
  if (!(options.dropout_p >= 0 && options.dropout_p < 1))
    throw ValueError(std::string(op) + ": dropout_p must be in [0, 1), got " +
                     number_str(options.dropout_p));
  const ProfileScope profiled("multi_head_attention");
  const double scale = detail::attention_scale(op, options.scale, s.d);
  const bool dropout = options.dropout_p > 0;
  Tensor mask = dropout ? rand({B, s.H, T, T}, {.dtype = qkv.dtype()},
                               options.generator ? *options.generator : default_generator())
                        : Tensor();
  Tensor probs;
  Tensor out = detail::dispatch(qkv.dtype(), [&](auto zero) {
    using T_ = decltype(zero);
    const T_* x = detail::data<T_>(qkv);
    T_* pm = nullptr;
    if (dropout) {  // the uniform draws become the mask: 1 / (1 - p) where kept, else 0
      pm = mask.mutable_value<T_>().data();
      const T_ keep = T_(1 / (1 - options.dropout_p)), p = T_(options.dropout_p);
      for (std::size_t i = 0; i < mask.numel(); ++i) pm[i] = pm[i] >= p ? keep : T_{0};
    }
    xt::xarray<T_> z = detail::empty<T_>({B, T, E});
    xt::xarray<T_> pp = detail::empty<T_>({B, s.H, T, T});
    std::vector<T_> weights(dropout ? T * T : 0);
    const std::size_t ld = 3 * E, tt = T * T;
    const T_ minus_inf = -std::numeric_limits<T_>::infinity();
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t h = 0; h < s.H; ++h) {
        const std::size_t at = b * T * ld + h * s.d;
        T_* P = pp.data() + (b * s.H + h) * tt;
        detail::gemm(false, true, T, T, s.d, T_(scale), x + at, ld, x + at + E, ld, T_{0}, P, T);
        for (std::size_t i = 0; i < T; ++i) {
          T_* row = P + i * T;
          if (options.is_causal)
            for (std::size_t j = i + 1; j < T; ++j) row[j] = minus_inf;
          T_ m = row[0];
          for (std::size_t j = 1; j < T; ++j) m = std::max(m, row[j]);
          if (m == minus_inf) m = 0;  // a row all masked: NaN below, as the composite
          for (std::size_t j = 0; j < T; ++j) row[j] -= m;
          detail::exp_in_place(row, T);  // vectorized in float32
          T_ total = 0;
          for (std::size_t j = 0; j < T; ++j) total += row[j];
          const T_ inv = T_{1} / total;
          for (std::size_t j = 0; j < T; ++j) row[j] *= inv;
        }
        const T_* D = P;
        if (dropout) {
          const T_* M = pm + (b * s.H + h) * tt;
          for (std::size_t i = 0; i < tt; ++i) weights[i] = P[i] * M[i];
          D = weights.data();
        }
        detail::gemm(false, false, T, s.d, T, T_{1}, D, T, x + at + 2 * E, ld, T_{0},
                     z.data() + b * T * E + h * s.d, E);
      }
    probs = Tensor(std::move(pp));
    return Tensor(std::move(z));
  });
  if (auto* node = record<MultiHeadAttention>(out, {qkv}, s, scale, options.is_causal, dropout)) {
    if (dropout)
      node->save({qkv, probs, mask});
    else
      node->save({qkv, probs});
  }
  return out;
}

}  // namespace xgrad
