#include "autograd/detail/blas.hpp"

#include <cblas.h>

#include <atomic>
#include <string>

#include "autograd/error.hpp"

#ifdef XGRAD_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

namespace xgrad::detail {

namespace {
std::atomic<std::uint64_t> float32_flops{0};
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint as_int(std::size_t v) { return static_cast<blasint>(v); }

// A product with an empty side: nothing to do (m or n is 0), or C = beta C (k is 0: each entry a
// sum of nothing). The backends refuse the leading dimensions of 0 such shapes bring (oneDNN:
// status 2), so these never reach them. Row-major C, m x n with leading dimension ldc.
template <class T>
bool empty_product(std::size_t m, std::size_t n, std::size_t k, T beta, T* c, std::size_t ldc) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T{0} ? T{0} : beta * c[i * ldc + j];
  return true;
}
}  // namespace

// float32 goes to oneDNN where the build has it: its JIT kernels for the CPU at hand ran at about
// twice OpenBLAS's rate on this project's shapes (docs/performance.md, ../shared/GEMM-NOTES.md).
// float64 stays on OpenBLAS: oneDNN has no double GEMM on CPU.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  count_float32_product(double(m) * double(n) * double(k));
#ifdef XGRAD_ONEDNN
  const auto d = [](std::size_t v) { return static_cast<dnnl_dim_t>(v); };
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', d(m), d(n),
                                          d(k), alpha, a, d(lda), b, d(ldb), beta, c, d(ldc));
  if (status != dnnl_success)
    throw Error("gemm: oneDNN's sgemm failed (status " + std::to_string(status) + ") for " +
                std::to_string(m) + " x " + std::to_string(n) + " x " + std::to_string(k));
#else
  cblas_sgemm(CblasRowMajor, flag(trans_a), flag(trans_b), as_int(m), as_int(n), as_int(k), alpha,
              a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
#endif
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  cblas_dgemm(CblasRowMajor, flag(trans_a), flag(trans_b), as_int(m), as_int(n), as_int(k), alpha,
              a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
}

std::uint64_t float32_product_flops() { return float32_flops.load(std::memory_order_relaxed); }
void count_float32_product(double multiply_adds) {
  float32_flops.fetch_add(static_cast<std::uint64_t>(2 * multiply_adds), std::memory_order_relaxed);
}

const char* gemm_backend() {
#ifdef XGRAD_ONEDNN
  return "onednn";
#else
  return "openblas";
#endif
}

}  // namespace xgrad::detail
