#pragma once
// C = alpha * op(A) op(B) + beta * C on row-major matrices, op transposing when asked.
// A thin layer over cblas, kept in its own file: <cblas.h> clashes with xtensor-blas headers.

#include <cstddef>

namespace xgrad::detail {

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);

const char* gemm_backend();  // where the float32 gemm runs: "onednn" or "openblas"

}  // namespace xgrad::detail
