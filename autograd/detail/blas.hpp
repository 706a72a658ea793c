#pragma once
// C = alpha * op(A) op(B) + beta * C on row-major matrices, op transposing when asked.
// A thin layer over cblas, kept in its own file: <cblas.h> clashes with xtensor-blas headers.

#include <cstddef>
#include <cstdint>

namespace xgrad::detail {

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);

const char* gemm_backend();  // where the float32 gemm runs: "onednn" or "openblas"

// The floating-point operations (2 per multiply-add) of every float32 product run so far: the
// gemm above and the convolutions of conv_onednn.hpp. bench/ reads it around a training step to
// get the step's GEMM work, the numerator of its roofline. Counted whatever the thread.
std::uint64_t float32_product_flops();
void count_float32_product(double multiply_adds);

}  // namespace xgrad::detail
