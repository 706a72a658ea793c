#include "autograd/detail/vector_math.hpp"

#include <cstdlib>
#include <string>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/vector_math_impl.hpp"
#include "autograd/error.hpp"

namespace xgrad::detail::vec {
namespace {

// The widest path allowed by XGRAD_CPU_CAPABILITY (unset or empty: any).
Isa capped() {
  const char* cap = std::getenv("XGRAD_CPU_CAPABILITY");
  if (!cap || !*cap) return Isa::avx512;
  for (Isa isa : {Isa::sse2, Isa::avx2, Isa::avx512})
    if (std::string(cap) == isa_name(isa)) return isa;
  throw ValueError(std::string("XGRAD_CPU_CAPABILITY=") + cap + ": expected sse2, avx2 or avx512");
}

const Functions& of(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return avx512_functions();
    case Isa::avx2:
      return avx2_functions();
    case Isa::sse2:
      break;
  }
  return Loops<xsimd::sse2>::table;
}

const Functions& best() {
  static const Functions& table = of(chosen());
  return table;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::sse2:
      break;
  }
  return "sse2";
}

bool supported(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f");
    case Isa::avx2:  // its file is compiled with FMA too (meson.build)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::sse2:
      break;
  }
  return true;
}

Isa chosen() {
  static const Isa isa = [] {
    const Isa cap = capped();
    for (Isa widest : {Isa::avx512, Isa::avx2})
      if (widest <= cap && supported(widest)) return widest;
    return Isa::sse2;
  }();
  return isa;
}

const char* instruction_set() { return isa_name(chosen()); }

const Functions& functions(Isa isa) {
  if (!supported(isa))
    throw ValueError(std::string("vector math: this processor has no ") + isa_name(isa));
  return of(isa);
}

void exp(float* x, std::size_t n) { best().exp(x, n); }
void tanh(float* x, std::size_t n) { best().tanh(x, n); }
void erf(float* x, std::size_t n) { best().erf(x, n); }
void gelu_forward(const float* x, float* z, std::size_t n) { best().gelu_forward(x, z, n); }
void gelu_backward(const float* x, const float* g, float* dx, std::size_t n) {
  best().gelu_backward(x, g, dx, n);
}
void gru_gates_forward(const float* xp, const float* hp, const float* h, std::size_t B,
                       std::size_t H, float* next, float* gates) {
  best().gru_gates_forward(xp, hp, h, B, H, next, gates);
}
void gru_gates_backward(const float* g, const float* h, const float* gates, std::size_t B,
                        std::size_t H, float* dxp, float* dhp, float* dh) {
  best().gru_gates_backward(g, h, gates, B, H, dxp, dhp, dh);
}
void lstm_gates_forward(const float* xp, const float* hp, const float* c, std::size_t B,
                        std::size_t H, float* h_out, float* c_out, float* gates) {
  best().lstm_gates_forward(xp, hp, c, B, H, h_out, c_out, gates);
}
void lstm_gates_backward(const float* gh, const float* gc, const float* c, const float* gates,
                         std::size_t B, std::size_t H, float* da, float* dc) {
  best().lstm_gates_backward(gh, gc, c, gates, B, H, da, dc);
}
void layer_norm_forward(const LayerNormRows& in, const float* b, double eps, float* z, float* mean,
                        float* invstd) {
  best().layer_norm_forward(in, b, eps, z, mean, invstd);
}
void layer_norm_backward(const LayerNormRows& in, const float* g, const float* mean,
                         const float* invstd, float* dx, double* dw, double* db, float* scratch) {
  best().layer_norm_backward(in, g, mean, invstd, dx, dw, db, scratch);
}
void column_sums(const float* x, std::size_t rows, std::size_t cols, std::size_t begin,
                 std::size_t end, double* acc) {
  best().column_sums(x, rows, cols, begin, end, acc);
}
void softmax_rows(float* x, std::size_t rows, std::size_t n, std::size_t ld, float* top,
                  float* total) {
  best().softmax_rows(x, rows, n, ld, top, total);
}
void softmax_backward_rows(float* d, std::size_t ldd, const float* p, std::size_t ldp,
                           std::size_t rows, std::size_t n, float scale) {
  best().softmax_backward_rows(d, ldd, p, ldp, rows, n, scale);
}
void max_pool_2x2(const Pool2x2& in, float* y, std::uint32_t* where) {
  best().max_pool_2x2(in, y, where);
}
void max_pool_2x2_blocked(const Pool2x2& in, std::size_t block, float* y, std::uint32_t* where) {
  best().max_pool_2x2_blocked(in, block, y, where);
}
void max_unpool_2x2_blocked(const Pool2x2& in, std::size_t block, const std::uint32_t* where,
                            const float* g, float* dx) {
  best().max_unpool_2x2_blocked(in, block, where, g, dx);
}
void small_gemm(const Product& g, float* scratch) {
  const double multiply_adds = double(g.m) * double(g.n) * double(g.k);
  if (best().small_gemm && multiply_adds <= kSmallProduct) {
    count_float32_product(multiply_adds);  // the bench's roofline counts them, as gemm's
    return best().small_gemm(g, scratch);
  }
  detail::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, g.c,
               g.ldc);
}

std::size_t panels_size(std::size_t n, std::size_t k) {
  return (n + kPanelWidth - 1) / kPanelWidth * kPanelWidth * k;
}
void pack_panels(const float* w, std::size_t n, std::size_t k, float* panels) {
  for (std::size_t j = 0; j < n; j += kPanelWidth)
    for (std::size_t q = 0; q < k; ++q)
      for (std::size_t t = 0; t < kPanelWidth; ++t)
        panels[j * k + q * kPanelWidth + t] = j + t < n ? w[(j + t) * k + q] : 0.0f;
}
bool panel_product_available() { return best().panel_product != nullptr; }
void panel_product(std::size_t m, std::size_t n, std::size_t k, const float* a, const float* panels,
                   float* c) {
  if (!panel_product_available())
    throw ValueError(std::string("vector math: no panel_product on the ") + instruction_set() +
                     " path");
  count_float32_product(double(m) * double(n) * double(k));
  best().panel_product(m, n, k, a, panels, c);
}
double row_sum(const float* p, std::size_t n) { return best().row_sum(p, n); }
double row_sum_squares(const float* p, std::size_t n, float m) {
  return best().row_sum_squares(p, n, m);
}
void row_sums(const float* g, const float* x, std::size_t n, float m, double* sums) {
  best().row_sums(g, x, n, m, sums);
}
void norm_row_forward(const float* x, std::size_t n, const NormRow& r, float* z) {
  best().norm_row_forward(x, n, r, z);
}
void masked_row_sums(const float* g, const float* x, std::size_t n, float m, const NormRow& r,
                     double* sums) {
  best().masked_row_sums(g, x, n, m, r, sums);
}
void norm_row_backward(const float* g, const float* x, std::size_t n, const NormRow& r, float* dx) {
  best().norm_row_backward(g, x, n, r, dx);
}
void blocked_sums(const BlockedNorm& in, bool squares, double* sums) {
  best().blocked_sums(in, squares, sums);
}
void blocked_grad_sums(const BlockedNorm& in, const float* g, double* sums) {
  best().blocked_grad_sums(in, g, sums);
}
void blocked_norm_forward(const BlockedNorm& in, float* z) { best().blocked_norm_forward(in, z); }
void blocked_norm_backward(const BlockedNorm& in, const float* g, float* dx) {
  best().blocked_norm_backward(in, g, dx);
}
void adam_update(float* p, const float* g, float* m, float* v, std::size_t n, const AdamStep& c) {
  best().adam_update(p, g, m, v, n, c);
}
void sgd_update(float* p, const float* g, float* b, std::size_t n, const SgdStep& c) {
  best().sgd_update(p, g, b, n, c);
}
void rmsprop_update(float* p, const float* g, float* v, float* m, float* b, std::size_t n,
                    const RmspropStep& c) {
  best().rmsprop_update(p, g, v, m, b, n, c);
}
void adagrad_update(float* p, const float* g, float* s, std::size_t n, const AdagradStep& c) {
  best().adagrad_update(p, g, s, n, c);
}

}  // namespace xgrad::detail::vec

namespace xgrad {

void adam_update(float* p, const float* g, float* m, float* v, std::size_t n, const AdamStep& c) {
  detail::vec::adam_update(p, g, m, v, n, c);
}

void sgd_update(float* p, const float* g, float* b, std::size_t n, const SgdStep& c) {
  if (!b && c.momentum != 0)
    throw ValueError("sgd_update: momentum " + number_str(c.momentum) + " needs a momentum buffer");
  detail::vec::sgd_update(p, g, b, n, c);
}

void rmsprop_update(float* p, const float* g, float* v, float* m, float* b, std::size_t n,
                    const RmspropStep& c) {
  if (!b && c.momentum != 0)
    throw ValueError("rmsprop_update: momentum " + number_str(c.momentum) +
                     " needs a momentum buffer");
  detail::vec::rmsprop_update(p, g, v, m, b, n, c);
}

void adagrad_update(float* p, const float* g, float* s, std::size_t n, const AdagradStep& c) {
  detail::vec::adagrad_update(p, g, s, n, c);
}

}  // namespace xgrad
