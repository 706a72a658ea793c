#pragma once
// Transcendental functions over float arrays, in place (x[i] = f(x[i])), and the loops of GELU,
// the GRU and LSTM gates, layer norm, column sums, softmax rows, 2 x 2 max pooling, attention's
// small products, batch norm's row sums and the optimizers' updates, vectorized with xsimd (and a
// few raw intrinsics) for the widest instruction set the processor has, chosen once at the first
// call: AVX-512 (16 lanes), AVX2 with FMA (8), or SSE2 (4, x86-64's baseline; all a plain loop gets
// from the compiler's default flags). std::exp and friends are calls that no loop vectorizes; these
// run to about 1 ulp. The elements past the last full vector go through the same vector code
// (padded), so a value never depends on where it sits in the array.
// XGRAD_CPU_CAPABILITY=sse2|avx2|avx512 in the environment caps the choice (as ATen's
// ATEN_CPU_CAPABILITY), to measure or test a narrower path on a wider processor.

#include <cstddef>
#include <cstdint>

#include "autograd/optim_kernels.hpp"

namespace xgrad::detail::vec {

void exp(float* x, std::size_t n);
void tanh(float* x, std::size_t n);
void erf(float* x, std::size_t n);

// GELU in one pass (autograd/ops/gelu.cpp's formulas), out of place:
//   forward  z = x Phi(x),  Phi(x) = erfc(-x / sqrt 2) / 2
//   backward dx = g (Phi(x) + x e^(-x x / 2) / sqrt(2 pi))
// Phi from one formula that shares the exponential with the backward's density (Loops::normal_cdf),
// within 16 ulp plus the rounding of x^2 / 2 through the exponential, relative, down to the
// lower tail.
void gelu_forward(const float* x, float* z, std::size_t n);
void gelu_backward(const float* x, const float* g, float* dx, std::size_t n);

// A GRU step's gates over B rows (detail/recurrent_gates.hpp's formulas and layout, float32):
// next (B, H) and gates (B, 4H: r, z, n, hp_n) from xp, hp (B, 3H) and h (B, H); and the
// backward's dxp, dhp (B, 3H) and dh (B, H) from g (B, H), h and the saved gates.
void gru_gates_forward(const float* xp, const float* hp, const float* h, std::size_t B,
                       std::size_t H, float* next, float* gates);
void gru_gates_backward(const float* g, const float* h, const float* gates, std::size_t B,
                        std::size_t H, float* dxp, float* dhp, float* dh);

// An LSTM step's gates over B rows (detail/recurrent_gates.hpp's formulas and layout, float32):
// h_out, c_out (B, H) and gates (B, 5H: i, f, g, o, tanh c') from xp, hp (B, 4H) and c (B, H);
// and the backward's da (B, 4H) and dc (B, H) from G_h, G_c (B, H), c and the saved gates.
void lstm_gates_forward(const float* xp, const float* hp, const float* c, std::size_t B,
                        std::size_t H, float* h_out, float* c_out, float* gates);
void lstm_gates_backward(const float* gh, const float* gc, const float* c, const float* gates,
                         std::size_t B, std::size_t H, float* da, float* dc);

// Layer norm over the rows of x (rows x d), float32, as autograd/ops/layer_norm.cpp writes it:
// each row's mean and 1 / sqrt(biased variance + eps) into mean[r] and invstd[r], and
// z = (x - mean) invstd w + b (w, b null when absent). The row sums run in float vector lanes;
// the mean, the variance and 1 / sqrt are taken in double.
struct LayerNormRows {
  const float* x;
  const float* w;  // null: no weight
  std::size_t rows, d;
};
void layer_norm_forward(const LayerNormRows& in, const float* b, double eps, float* z, float* mean,
                        float* invstd);
// Its backward from g (rows x d) and the forward's mean and invstd: dx (rows x d); dw += the
// column sums of g xhat and db += those of g, in double (each null when not wanted; the rows'
// sums go through float partial sums of at most 16 rows). scratch: 2 d floats.
void layer_norm_backward(const LayerNormRows& in, const float* g, const float* mean,
                         const float* invstd, float* dx, double* dw, double* db, float* scratch);

// A bias's gradient: acc[j - begin] += x[r cols + j] for every row r, over the columns
// [begin, end) of x (rows x cols, float32), in double, each column added in row order (so the
// same bits on every path and any split of the columns). A plain loop that the compiler
// vectorizes for each path's instruction set (the float-to-double widening is most of its work).
void column_sums(const float* x, std::size_t rows, std::size_t cols, std::size_t begin,
                 std::size_t end, double* acc);

// softmax over each of `rows` rows of n floats, rows ld apart, in place, as the attention op
// (autograd/ops/attention.cpp) takes it: top[r] = the row's largest entry (0 when that is -inf),
// total[r] = the sum of e^(x - top[r]), and each entry e^(x - top[r]) / total[r]; the row's
// log-sum-exp is top[r] + log total[r]. The largest entry and the sum run in vector lanes, e^ is
// exp's above. A row all -inf gives NaN, as does a row with a NaN or +inf.
void softmax_rows(float* x, std::size_t rows, std::size_t n, std::size_t ld, float* top,
                  float* total);

// Its backward, as the attention op takes it: each of `rows` rows of n entries of d (rows ldd
// apart, the gradient at the probabilities) becomes p (d - sum_j d_j p_j) scale, p the rows of
// probabilities (ldp apart). The sum runs in float vector lanes, added up in double.
void softmax_backward_rows(float* d, std::size_t ldd, const float* p, std::size_t ldp,
                           std::size_t rows, std::size_t n, float scale);

// max_pool2d's 2 x 2 windows of stride 2 without padding (autograd/ops/max_pool2d.cpp) over
// `planes` planes of H x W floats, one after another: y (planes, oh, ow) the first largest entry of
// each window in row-major order, a NaN counting as the largest (the first NaN), and `where` its
// offset within its plane. W < 2^24.
struct Pool2x2 {
  const float* x;
  std::size_t planes, H, W, oh, ow;
};
void max_pool_2x2(const Pool2x2& in, float* y, std::uint32_t* where);
// The same over blocked values (autograd/node.hpp's BlockedArray, whole blocks of channels):
// in.planes planes of (H, W, block), y and where in the blocked order (plane, output, lane), where
// the chosen entry's offset in its channel's (H, W) plane (below 2^24). The backward writes every
// window's four entries of dx: g where chosen, else 0.
void max_pool_2x2_blocked(const Pool2x2& in, std::size_t block, float* y, std::uint32_t* where);
void max_unpool_2x2_blocked(const Pool2x2& in, std::size_t block, const std::uint32_t* where,
                            const float* g, float* dx);

// C (m x n) = alpha op(A) op(B) + beta C, row-major, as detail::gemm (blas.hpp) takes it (op
// transposing when asked; beta 0: C is not read), for the products of one attention head: tens to
// hundreds of rows and columns, where a call to oneDNN's sgemm costs more than its arithmetic (at
// 32 x 32 x 32 on an AVX-512 Zen 5, 0.46-0.71 us against the tiles' 0.30-0.37: bench/micro's
// HeadProduct). On AVX-512: tiles of 4 rows of C by 32 columns, each summed over all of k in
// registers, op(A)'s entries broadcast from where they lie; op(B) = B^T is first transposed into
// scratch (n k floats, unused otherwise). detail::gemm for products of more than kSmallProduct
// multiply-adds (attention's blocks past 128 keys, where the tiles took longer than oneDNN) and on
// the other paths (on AVX2 the tiles left the transformer's step unchanged and were slower at 128
// keys: docs/performance.md).
struct Product {
  bool trans_a, trans_b;
  std::size_t m, n, k;
  float alpha;
  const float* a;
  std::size_t lda;
  const float* b;
  std::size_t ldb;
  float beta;
  float* c;
  std::size_t ldc;
};
inline constexpr double kSmallProduct = 1 << 18;
void small_gemm(const Product& g, float* scratch);

// C (m x n) += A (m x k) W^T, A and C row-major and dense, against a W (n x k, row-major) packed
// once by pack_panels: W^T in panels of kPanelWidth columns, panel p holding columns
// 16p .. 16p + 15 of W^T as k rows of 16 (zeros past column n), panels_size(n, k) floats. The
// recurrent layers' product of every step (detail::RepeatedProduct) where oneDNN has no kernel that
// keeps W packed between calls: on AVX2, oneDNN 2.6's matmul runs its sgemm, which packs W again
// at each one (its brgemm matmul, which reads W reordered once, is AVX-512's alone). Each panel
// goes against all of A's rows, 6 at a time, while it is in the first-level cache. AVX2 and
// AVX-512 (panel_product_available()); on SSE2 the entry of Functions is null.
inline constexpr std::size_t kPanelWidth = 16;
std::size_t panels_size(std::size_t n, std::size_t k);
void pack_panels(const float* w, std::size_t n, std::size_t k, float* panels);
bool panel_product_available();
void panel_product(std::size_t m, std::size_t n, std::size_t k, const float* a, const float* panels,
                   float* c);

// batch_norm's sums over a row of n floats, with the bits of kernels.hpp's row_sum and row_sums
// on every path: eight running sums in float (lane k adds entries k, k + 8, ...; one 256-bit
// register on AVX2 and AVX-512, where the plain loop's code shuffled lanes about), then the tail
// and the eight lanes in double. row_sum: sum p; row_sum_squares: sum (p - m)^2; row_sums:
// sum g into sums[0] and sum g (x - m) into sums[1].
double row_sum(const float* p, std::size_t n);
double row_sum_squares(const float* p, std::size_t n, float m);
void row_sums(const float* g, const float* x, std::size_t n, float m, double* sums);

// batch_norm's output and input gradient over a row of n floats (one channel of one sample), with
// z = x scale + shift rounded twice (a product, then a sum) on every path, as the plain loop of
// float64 and of SSE2's default flags: the same bits everywhere. With relu (the epilogue), the
// output is relu(z), a NaN passing, and the backward makes z's mask again from x.
//   norm_row_forward: z, or relu(z);
//   masked_row_sums: row_sums of relu's gradient g' = g where z > 0 or is NaN, else 0 (the
//     same bits as row_sums over g' made first);
//   norm_row_backward: in training dx = (a g' + b (x - mean)) + k, in evaluation dx = a g' (where
//     0 (x - mean) would make a NaN in x a NaN gradient), g' = g, or masked as above with relu.
// NormRowOf<double> is batch_norm.cpp's own loops' (float64).
template <class T>
struct NormRowOf {
  T scale, shift;
  bool relu;
  bool training = true;
  T a = 0, b = 0, k = 0, mean = 0;  // the backward's constants
};
using NormRow = NormRowOf<float>;
void norm_row_forward(const float* x, std::size_t n, const NormRow& r, float* z);
void masked_row_sums(const float* g, const float* x, std::size_t n, float m, const NormRow& r,
                     double* sums);
void norm_row_backward(const float* g, const float* x, std::size_t n, const NormRow& r, float* dx);

// The same over blocked values (autograd/node.hpp's BlockedArray, whole blocks of channels):
// `planes` (N C / block) planes of area x block floats, plane p holding channel
// (p % blocks) block + lane at lane. Per entry the rows' arithmetic (the same bits for the same
// constants); the sums run in float lanes over up to 64 entries of a channel, then in double.
// Constants are per channel (C of each; null where not used: scale and shift without relu).
struct BlockedNorm {
  const float* x;
  std::size_t planes, blocks, area, block;
  const float *scale = nullptr, *shift = nullptr, *mean = nullptr;
  const float *a = nullptr, *b = nullptr, *k = nullptr;
  bool relu = false, training = true;
};
// sums[c] += sum of channel c's x (mean null), or of (x - mean[c])^2
void blocked_sums(const BlockedNorm& in, bool squares, double* sums);
// sums[c] += sum of g', sums[C + c] += sum of g' (x - mean[c]): g' as masked_row_sums' (relu) or g
void blocked_grad_sums(const BlockedNorm& in, const float* g, double* sums);
void blocked_norm_forward(const BlockedNorm& in, float* z);
void blocked_norm_backward(const BlockedNorm& in, const float* g, float* dx);

// xgrad::adam_update, sgd_update, rmsprop_update and adagrad_update (autograd/optim_kernels.hpp)
// on this path.
void adam_update(float* p, const float* g, float* m, float* v, std::size_t n, const AdamStep& c);
void sgd_update(float* p, const float* g, float* b, std::size_t n, const SgdStep& c);
void rmsprop_update(float* p, const float* g, float* v, float* m, float* b, std::size_t n,
                    const RmspropStep& c);
void adagrad_update(float* p, const float* g, float* s, std::size_t n, const AdagradStep& c);

// The instruction sets with a path, narrowest first.
enum class Isa { sse2, avx2, avx512 };
// "sse2", "avx2" or "avx512".
const char* isa_name(Isa isa);
// Whether this processor runs `isa`'s path.
bool supported(Isa isa);
// The path the functions above take: the widest supported, capped by XGRAD_CPU_CAPABILITY.
Isa chosen();
// The name of chosen(): which instruction set runs them.
const char* instruction_set();

// One path's functions, for tests and benchmarks that compare paths. ValueError when the
// processor does not have `isa`.
struct Functions {
  void (*exp)(float*, std::size_t);
  void (*tanh)(float*, std::size_t);
  void (*erf)(float*, std::size_t);
  void (*gelu_forward)(const float*, float*, std::size_t);
  void (*gelu_backward)(const float*, const float*, float*, std::size_t);
  void (*gru_gates_forward)(const float*, const float*, const float*, std::size_t, std::size_t,
                            float*, float*);
  void (*gru_gates_backward)(const float*, const float*, const float*, std::size_t, std::size_t,
                             float*, float*, float*);
  void (*lstm_gates_forward)(const float*, const float*, const float*, std::size_t, std::size_t,
                             float*, float*, float*);
  void (*lstm_gates_backward)(const float*, const float*, const float*, const float*, std::size_t,
                              std::size_t, float*, float*);
  void (*layer_norm_forward)(const LayerNormRows&, const float*, double, float*, float*, float*);
  void (*layer_norm_backward)(const LayerNormRows&, const float*, const float*, const float*,
                              float*, double*, double*, float*);
  void (*column_sums)(const float*, std::size_t, std::size_t, std::size_t, std::size_t, double*);
  void (*softmax_rows)(float*, std::size_t, std::size_t, std::size_t, float*, float*);
  void (*softmax_backward_rows)(float*, std::size_t, const float*, std::size_t, std::size_t,
                                std::size_t, float);
  void (*max_pool_2x2)(const Pool2x2&, float*, std::uint32_t*);
  void (*max_pool_2x2_blocked)(const Pool2x2&, std::size_t, float*, std::uint32_t*);
  void (*max_unpool_2x2_blocked)(const Pool2x2&, std::size_t, const std::uint32_t*, const float*,
                                 float*);
  void (*small_gemm)(const Product&, float*);  // null: detail::gemm
  void (*panel_product)(std::size_t, std::size_t, std::size_t, const float*, const float*,
                        float*);  // null: none on this path
  double (*row_sum)(const float*, std::size_t);
  double (*row_sum_squares)(const float*, std::size_t, float);
  void (*row_sums)(const float*, const float*, std::size_t, float, double*);
  void (*norm_row_forward)(const float*, std::size_t, const NormRow&, float*);
  void (*masked_row_sums)(const float*, const float*, std::size_t, float, const NormRow&, double*);
  void (*norm_row_backward)(const float*, const float*, std::size_t, const NormRow&, float*);
  void (*blocked_sums)(const BlockedNorm&, bool, double*);
  void (*blocked_grad_sums)(const BlockedNorm&, const float*, double*);
  void (*blocked_norm_forward)(const BlockedNorm&, float*);
  void (*blocked_norm_backward)(const BlockedNorm&, const float*, float*);
  void (*adam_update)(float*, const float*, float*, float*, std::size_t, const AdamStep&);
  void (*sgd_update)(float*, const float*, float*, std::size_t, const SgdStep&);
  void (*rmsprop_update)(float*, const float*, float*, float*, float*, std::size_t,
                         const RmspropStep&);
  void (*adagrad_update)(float*, const float*, float*, std::size_t, const AdagradStep&);
};
const Functions& functions(Isa isa);

}  // namespace xgrad::detail::vec
