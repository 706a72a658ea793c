#pragma once
// C = alpha * op(A) op(B) + beta * C on row-major matrices, op transposing when asked.
// A thin layer over cblas, kept in its own file: <cblas.h> clashes with xtensor-blas headers.

#include <cstddef>
#include <cstdint>
#include <memory>

namespace xgrad::detail {

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);

// Whether rows ld entries of `bytes` apart lie a multiple of 4 KB apart: then a column's entries
// fall in the same cache sets, and a product reading A's columns (gemm's T N form) slows down.
inline bool rows_alias(std::size_t ld, std::size_t bytes) { return ld * bytes % 4096 == 0; }
// Whether A^T B is better made as (B^T A)^T: A's rows alias and B's do not. oneDNN's gemm ran
// A^T B at 1024 x 256 x 1024 with A's rows 4 KB apart in 1.4x the time of B^T A with AVX2, 1.1x
// with AVX-512 (docs/performance.md). Where both alias (an MLP of 1024-wide layers), B^T A is as
// slow and the transpose cost its step 3-6%. float32 gemm takes it where beta is 0;
// recurrent_weight_grad across its two products, with one transpose.
inline bool transposed_product_pays(std::size_t lda, std::size_t ldb, std::size_t bytes) {
  return rows_alias(lda, bytes) && !rows_alias(ldb, bytes);
}

// B (cols, rows), rows ldb apart, = A^T, A (rows, cols) dense row-major; in 16 x 16 blocks.
template <class T>
void transpose(const T* a, std::size_t rows, std::size_t cols, T* b, std::size_t ldb) {
  constexpr std::size_t kBlock = 16;
  for (std::size_t i0 = 0; i0 < rows; i0 += kBlock)
    for (std::size_t j0 = 0; j0 < cols; j0 += kBlock) {
      const std::size_t i1 = i0 + kBlock < rows ? i0 + kBlock : rows;
      const std::size_t j1 = j0 + kBlock < cols ? j0 + kBlock : cols;
      for (std::size_t j = j0; j < j1; ++j)
        for (std::size_t i = i0; i < i1; ++i) b[j * ldb + i] = a[i * cols + j];
    }
}

// Z (m, n) = X (m, k) W^T + b: a linear layer's forward; X, W (n, k) and Z row-major and dense,
// b (n) or null (no bias). float32 on oneDNN from 128 rows of X (64 when k >= 2048): a matmul
// primitive (made once per shape and thread) that reads W in place and adds b as it writes Z;
// gemm's N T form took 1.04-1.16x its time on the transformer's layers, 1.3x on the reference
// CNN's hidden layer (docs/performance.md). Elsewhere (fewer rows, float64, an OpenBLAS build, an
// empty side): b copied to every row, then gemm adds X W^T.
void linear_product(std::size_t m, std::size_t n, std::size_t k, const float* x, const float* w,
                    const float* b, float* z);
void linear_product(std::size_t m, std::size_t n, std::size_t k, const double* x, const double* w,
                    const double* b, double* z);

// C (m, n) += A (m, k) W^T for a run of A's and C's against one W (n, k, row-major) of fixed
// shape: the steps of a recurrent layer. float32 on oneDNN: a matmul primitive, W reordered once,
// at construction, to the blocked layout the primitive reads fastest. gemm's N T form packs W again
// at every call, and an N N form against a transposed copy reads it in rows far apart; at
// 32 x 768 x 256 the primitive took 0.82x the time of N T (docs/performance.md). Elsewhere
// (float64, an OpenBLAS build, an empty side) each call is a gemm. W must outlive the object.
template <class T>
class RepeatedProduct {
 public:
  RepeatedProduct(std::size_t m, std::size_t n, std::size_t k, const T* w);
  ~RepeatedProduct();
  RepeatedProduct(const RepeatedProduct&) = delete;
  RepeatedProduct& operator=(const RepeatedProduct&) = delete;
  void add_to(const T* a, T* c) const;  // C += A W^T

 private:
  struct Prepared;  // the primitive and the reordered W; null when each call is a gemm
  std::size_t m_, n_, k_;
  const T* w_;
  std::unique_ptr<Prepared> prepared_;
};
extern template class RepeatedProduct<float>;
extern template class RepeatedProduct<double>;
// For tests: RepeatedProduct<float> on vector_math's panels wherever the vector path has them,
// even where oneDNN keeps W packed itself; returns the previous setting.
bool force_repeated_panels(bool on);

const char* gemm_backend();  // where the float32 gemm runs: "onednn" or "openblas"

// The floating-point operations (2 per multiply-add) of every float32 product run so far: the
// gemm above and the convolutions of conv_onednn.hpp. bench/ reads it around a training step to
// get the step's GEMM work, the numerator of its roofline. Counted whatever the thread.
std::uint64_t float32_product_flops();
void count_float32_product(double multiply_adds);

}  // namespace xgrad::detail
