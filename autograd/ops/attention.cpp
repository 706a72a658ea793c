// multi_head_attention: qkv (B, T, 3E) packed as an in-projection makes it, H heads of d = E / H:
//   for each batch b and head h, Q, K, V = the columns h d .. (h + 1) d - 1 of the three blocks,
//   S = scale Q K^T (entries above the diagonal -inf when causal), P = softmax(S) by rows,
//   D = P M (M the dropout mask, 1 / (1 - p) or 0; no dropout: D = P), O = D V,
//   written into the columns of head h of the output (B, T, E): the heads joined.
//   With G = dL/dO (head h's columns):  dV = D^T G,  dD = G V^T,  dP = dD M,
//   dS = P (dP - rowsum(dP P)),  dQ = scale dS K,  dK = scale dS^T Q.
//   Saves qkv, M, and P or each row's log-sum-exp l (then P = e^(S - l) again in the backward).
//   JVP, from the tangents U_Q, U_K, U_V of Q, K, V (the same columns of qkv's tangent):
//   dS = scale (U_Q K^T + Q U_K^T),  dP = P (dS - rowsum(P dS)),  dO = (dP M) V + D U_V
//   (a causal mask's entries have P = 0: their dS counts for nothing).
// NOTE: a primitive for speed: the composite (chunk, reshape and permute into heads, batched
// products, masked_fill, softmax, then permute and reshape back) copied the activations six times;
// here each head's products read the packed input in place (leading dimension 3E) and write the
// joined output directly; float32 products go through vector_math's small_gemm (at 32 x 32 x 32
// a call to oneDNN's sgemm took 0.46-0.71 us, the tiles 0.30-0.37). Rows of queries go in blocks
// (detail::kAttentionRows): a block's scores are made, turned into probabilities and used while
// they are in the caches, and when causal a block stops at its last row's key. Under create_graph
// the backward is written in ops.
#include <atomic>
#include <cmath>
#include <limits>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {

namespace detail {
namespace {
std::atomic<AttentionSaves> attention_saves{AttentionSaves::automatic};
}  // namespace
AttentionSaves set_attention_saves(AttentionSaves saves) { return attention_saves.exchange(saves); }
}  // namespace detail

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

// Whether the probabilities are saved whole: up to T = 128 (B = 32, E = 128, 4 heads), computing
// them again cost more than reading them back (docs/performance.md).
bool saves_probabilities(std::size_t T) {
  switch (detail::attention_saves.load()) {
    case detail::AttentionSaves::probabilities:
      return true;
    case detail::AttentionSaves::row_statistics:
      return false;
    default:
      return T <= 128;
  }
}

// Each of m rows of n entries (rows ld apart) = softmax(row) in place; top[i] gets the row's
// largest entry and total[i] the sum of e^(row - top[i]), so that top[i] + log total[i] is the
// row's log-sum-exp. A row all -inf (every key masked) gives NaN, as the composite. float32 in
// vector lanes (detail::vec::softmax_rows): a scalar loop's largest entry and sum, each a chain of
// dependent steps, took most of the forward at T = 32.
void softmax_rows(float* x, std::size_t m, std::size_t n, std::size_t ld, float* top,
                  float* total) {
  detail::vec::softmax_rows(x, m, n, ld, top, total);
}
void softmax_rows(double* x, std::size_t m, std::size_t n, std::size_t ld, double* top,
                  double* total) {
  for (std::size_t i = 0; i < m; ++i) {
    double* row = x + i * ld;
    double t = row[0];
    for (std::size_t j = 1; j < n; ++j) t = std::max(t, row[j]);
    if (t == -std::numeric_limits<double>::infinity()) t = 0;
    double s = 0;
    for (std::size_t j = 0; j < n; ++j) s += row[j] = std::exp(row[j] - t);
    const double inv = 1 / s;
    for (std::size_t j = 0; j < n; ++j) row[j] *= inv;
    top[i] = t;
    total[i] = s;
  }
}

// Each of m rows of n entries of d (rows ldd apart) = p (d - rowsum(d p)) scale, p's rows ldp
// apart: softmax's backward, scaled. float32 in vector lanes (detail::vec::softmax_backward_rows).
void softmax_backward_rows(float* d, std::size_t ldd, const float* p, std::size_t ldp,
                           std::size_t m, std::size_t n, float scale) {
  detail::vec::softmax_backward_rows(d, ldd, p, ldp, m, n, scale);
}
void softmax_backward_rows(double* d, std::size_t ldd, const double* p, std::size_t ldp,
                           std::size_t m, std::size_t n, double scale) {
  for (std::size_t i = 0; i < m; ++i) {
    double* row = d + i * ldd;
    const double* prow = p + i * ldp;
    double dot = 0;
    for (std::size_t j = 0; j < n; ++j) dot += row[j] * prow[j];
    for (std::size_t j = 0; j < n; ++j) row[j] = prow[j] * (row[j] - dot) * scale;
  }
}

// A block's D = P M with dropout: m rows of n keys of P (rows ldp apart) times the mask's (rows
// ldm apart), into w (rows n apart).
template <class T_>
void dropped(const T_* P, std::size_t ldp, const T_* M, std::size_t ldm, std::size_t m,
             std::size_t n, T_* w) {
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) w[i * n + j] = P[i * ldp + j] * M[i * ldm + j];
}

// A product within one head (detail::gemm's arguments): float32 through vector_math's small
// products (scratch: n k floats, for a transposed B), float64 through gemm.
void head_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
               const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
               float* c, std::size_t ldc, float* scratch) {
  detail::vec::small_gemm({ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc}, scratch);
}
void head_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha,
               const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
               double* c, std::size_t ldc, double*) {
  detail::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// One head of one batch entry, its rows of queries in blocks: where its Q, K and V start in the
// packed qkv, and how many keys the block of rows [i0, i1) sees.
template <class T_>
struct Head {
  const T_* q;  // K at q + E, V at q + 2E; leading dimension 3E
  std::size_t ld;
  const Sizes& s;
  bool causal;
  std::size_t keys(std::size_t i1) const { return causal ? i1 : s.T; }

  // S (rows x n, leading dimension lds) = scale Q[i0, i1) K[0, n)^T, -inf above the diagonal;
  // scratch: T d entries.
  void scores(std::size_t i0, std::size_t i1, T_ scale, T_* S, std::size_t lds, T_* scratch) const {
    const std::size_t n = keys(i1);
    head_gemm(false, true, i1 - i0, n, s.d, scale, q + i0 * ld, ld, q + s.E, ld, T_{0}, S, lds,
              scratch);
    if (causal)
      for (std::size_t i = i0; i < i1; ++i)
        std::fill(S + (i - i0) * lds + i + 1, S + (i - i0) * lds + n,
                  -std::numeric_limits<T_>::infinity());
  }
};

struct MultiHeadAttention final : Node {
  // The dropout mask goes to the rule (jvp), which runs inside record(), before save(): mask_ holds
  // it until then.
  MultiHeadAttention(Sizes sizes, double scale, bool causal, bool probabilities, const Tensor& mask)
      : s_(sizes),
        scale_(scale),
        causal_(causal),
        dropout_(mask.defined()),
        probabilities_(probabilities),
        mask_(mask) {}
  std::string_view name() const override { return "multi_head_attention"; }

  // saved: qkv, then P (B, H, T, T) or the rows' log-sum-exp (B, H, T), then the mask if any.
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor qkv = saved(0), rows = saved(1), mask = dropout_ ? saved(2) : Tensor();
    if (detail::differentiable_backward()) return recorded(g, qkv, mask, grads);
    const Sizes s = s_;
    grads[0] = detail::dispatch(qkv.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* x = detail::data<T>(qkv);
      const T* pg = detail::data<T>(g);
      const T* pr = detail::data<T>(rows);
      const T* pm = dropout_ ? detail::data<T>(mask) : nullptr;
      xt::xarray<T> dx = detail::empty<T>(qkv.shape());
      const std::size_t bs = std::max<std::size_t>(1, std::min(s.T, detail::kAttentionRows));
      std::vector<T> probs(probabilities_ ? 0 : bs * s.T), weights(pm ? bs * s.T : 0), dd(bs * s.T),
          packed(s.T * s.d);
      const std::size_t ld = 3 * s.E, tt = s.T * s.T;
      for (std::size_t b = 0; b < s.B; ++b)
        for (std::size_t h = 0; h < s.H; ++h) {
          const std::size_t at = b * s.T * ld + h * s.d;  // Q of (b, h); K at + E, V at + 2E
          const Head<T> head{x + at, ld, s, causal_};
          const std::size_t bh = b * s.H + h;
          const T* M = pm ? pm + bh * tt : nullptr;
          T* dQ = dx.data() + at;
          // dK and dV add up over the blocks; the last block sees every key: it goes first.
          for (std::size_t k = (s.T + bs - 1) / bs; k-- > 0;) {
            const std::size_t i0 = k * bs, i1 = std::min(s.T, i0 + bs), m = i1 - i0,
                              n = head.keys(i1);
            const T first = i1 == s.T ? T{0} : T{1};  // beta of the sums into dK and dV
            // P of the block: read back, or e^(S - l) from its rows' log-sum-exp l.
            const T* P = pr + bh * tt + i0 * s.T;
            std::size_t ldp = s.T;
            if (!probabilities_) {
              head.scores(i0, i1, T(scale_), probs.data(), n, packed.data());
              const T* l = pr + bh * s.T + i0;
              for (std::size_t i = 0; i < m; ++i) {
                T* row = probs.data() + i * n;
                for (std::size_t j = 0; j < n; ++j) row[j] -= l[i];
                detail::exp_in_place(row, n);
              }
              P = probs.data();
              ldp = n;
            }
            const T* D = P;
            std::size_t ldd = ldp;
            if (M) {
              dropped(P, ldp, M + i0 * s.T, s.T, m, n, weights.data());
              D = weights.data();
              ldd = n;
            }
            const T* G = pg + (b * s.T + i0) * s.E + h * s.d;
            // dV[0, n) += D^T G;  dD = G V[0, n)^T
            head_gemm(true, false, n, s.d, m, T{1}, D, ldd, G, s.E, first, dQ + 2 * s.E, ld,
                      nullptr);
            head_gemm(false, true, m, n, s.d, T{1}, G, s.E, head.q + 2 * s.E, ld, T{0}, dd.data(),
                      n, packed.data());
            // dS = P (dP - rowsum(dP P)), dP = dD M; scaled here once for both products
            if (M)
              for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) dd[i * n + j] *= M[(i0 + i) * s.T + j];
            softmax_backward_rows(dd.data(), n, P, ldp, m, n, T(scale_));
            // dQ[i0, i1) = dS K[0, n);  dK[0, n) += dS^T Q[i0, i1)
            head_gemm(false, false, m, s.d, n, T{1}, dd.data(), n, head.q + s.E, ld, T{0},
                      dQ + i0 * ld, ld, nullptr);
            head_gemm(true, false, n, s.d, m, T{1}, dd.data(), n, head.q + i0 * ld, ld, first,
                      dQ + s.E, ld, nullptr);
          }
        }
      return Tensor(std::move(dx));
    });
  }

  // Q, K, V by heads, P and D = P M made again in ops from qkv (recorded: a backward or a tangent
  // made from them can be differentiated).
  struct InOps {
    Tensor q, k, v, p, d;
  };
  InOps in_ops(const Tensor& qkv, const Tensor& mask) const {
    const std::vector<Tensor> parts = chunk(qkv, 3, -1);
    const Tensor q = to_heads(parts[0], s_), k = to_heads(parts[1], s_), v = to_heads(parts[2], s_);
    Tensor scores = mul(matmul(q, transpose(k)), scale_);
    if (causal_)
      scores = masked_fill(scores, tril(ones_like(scores)) == 0,
                           -std::numeric_limits<double>::infinity());
    const Tensor p = softmax(scores, -1);
    return {q, k, v, p, dropout_ ? mul(p, mask) : p};
  }

  // The same in ops, for create_graph: P recomputed from qkv, so that its derivative is recorded.
  void recorded(const Tensor& g, const Tensor& qkv, const Tensor& mask, std::span<Tensor> grads) {
    const auto [q, k, v, p, d] = in_ops(qkv, mask);
    const Tensor gh = to_heads(g, s_);
    const Tensor dv = matmul(transpose(d), gh);
    Tensor dp = matmul(gh, transpose(v));
    if (dropout_) dp = mul(dp, mask);
    const Tensor ds = mul(mul(p, sub(dp, sum(mul(dp, p), {-1}, true))), scale_);
    const Tensor dq = matmul(ds, k), dk = matmul(transpose(ds), q);
    grads[0] = concat({from_heads(dq, s_), from_heads(dk, s_), from_heads(dv, s_)}, -1);
  }

  Tensor jvp(const ForwardInputs& in) const override {
    const auto [q, k, v, p, d] = in_ops(in.primal(0), mask_);
    const std::vector<Tensor> u = chunk(in.tangent(0), 3, -1);
    const Tensor uq = to_heads(u[0], s_), uk = to_heads(u[1], s_), uv = to_heads(u[2], s_);
    const Tensor ds = mul(add(matmul(uq, transpose(k)), matmul(q, transpose(uk))), scale_);
    Tensor dd = mul(p, sub(ds, sum(mul(p, ds), {-1}, true)));
    if (dropout_) dd = mul(dd, mask_);
    return from_heads(add(matmul(dd, v), matmul(d, uv)), s_);
  }

  Sizes s_;
  double scale_;
  bool causal_, dropout_, probabilities_;
  Tensor mask_;
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
  const bool dropout = options.dropout_p > 0, probabilities = saves_probabilities(T);
  Tensor mask = dropout ? rand({B, s.H, T, T}, {.dtype = qkv.dtype()},
                               options.generator ? *options.generator : default_generator())
                        : Tensor();
  Tensor rows;  // what the backward reads: P, or the rows' log-sum-exp
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
    xt::xarray<T_> saved =
        probabilities ? detail::empty<T_>({B, s.H, T, T}) : detail::empty<T_>({B, s.H, T});
    const std::size_t bs = std::max<std::size_t>(1, std::min(T, detail::kAttentionRows));
    std::vector<T_> block(probabilities ? 0 : bs * T), weights(dropout ? bs * T : 0), tops(bs),
        packed(T * s.d), totals(bs);
    const std::size_t ld = 3 * E, tt = T * T;
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t h = 0; h < s.H; ++h) {
        const Head<T_> head{x + b * T * ld + h * s.d, ld, s, options.is_causal};
        const std::size_t bh = b * s.H + h;
        for (std::size_t i0 = 0; i0 < T; i0 += bs) {
          const std::size_t i1 = std::min(T, i0 + bs), m = i1 - i0, n = head.keys(i1);
          T_* P = probabilities ? saved.data() + bh * tt + i0 * T : block.data();
          const std::size_t ldp = probabilities ? T : n;
          head.scores(i0, i1, T_(scale), P, ldp, packed.data());
          softmax_rows(P, m, n, ldp, tops.data(), totals.data());
          for (std::size_t i = 0; i < m; ++i) {
            if (probabilities)  // a causal block's keys stop at its last row: zeros past them
              std::fill(P + i * ldp + n, P + i * ldp + T, T_{0});
            else
              saved.data()[bh * T + i0 + i] = tops[i] + std::log(totals[i]);
          }
          const T_* D = P;
          std::size_t ldd = ldp;
          if (dropout) {
            dropped<T_>(P, ldp, pm + bh * tt + i0 * T, T, m, n, weights.data());
            D = weights.data();
            ldd = n;
          }
          head_gemm(false, false, m, s.d, n, T_{1}, D, ldd, head.q + 2 * E, ld, T_{0},
                    z.data() + (b * T + i0) * E + h * s.d, E, nullptr);
        }
      }
    rows = Tensor(std::move(saved));
    return Tensor(std::move(z));
  });
  if (auto* node = record<MultiHeadAttention>(out, {qkv}, s, scale, options.is_causal,
                                              probabilities, mask)) {
    if (dropout) {
      node->save({qkv, rows, mask});
      node->mask_ = Tensor();  // saved now
    } else
      node->save({qkv, rows});
  }
  return out;
}

}  // namespace xgrad
