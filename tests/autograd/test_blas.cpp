// The matrix-product backend (oneDNN or OpenBLAS for float32, OpenBLAS for float64) against a
// double-precision loop, on odd shapes, every transpose, and the single row of batch 1; and the
// repeated product of the recurrent layers (one W, many A's) and linear's X W^T + b against the
// same loop.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/detail/blas.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/ops.hpp"

using namespace xgrad;

namespace {

// op(a) op(b) in double with plain loops, and the bound on float32 rounding: for each entry,
// 2 K eps sum_k |a_ik b_kj| (a dot product of K terms, each rounded).
template <class T>
void check_product(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, Generator& gen) {
  const Dtype dtype = dtype_of<T>();
  const Tensor a = randn(ta ? Shape{k, m} : Shape{m, k}, {.dtype = dtype}, gen);
  const Tensor b = randn(tb ? Shape{n, k} : Shape{k, n}, {.dtype = dtype}, gen);
  const Tensor product = mm(a, b, ta, tb);
  const xt::xarray<T>& c = product.value<T>();
  REQUIRE(c.shape() == Shape{m, n});
  const T* pa = a.value<T>().data();
  const T* pb = b.value<T>().data();
  const double eps = std::numeric_limits<T>::epsilon();
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double exact = 0, magnitude = 0;
      for (std::size_t t = 0; t < k; ++t) {
        const double x = pa[ta ? t * m + i : i * k + t], y = pb[tb ? j * k + t : t * n + j];
        exact += x * y;
        magnitude += std::abs(x * y);
      }
      const double got = c(i, j);
      if (!(std::abs(got - exact) <= 2 * static_cast<double>(k) * eps * magnitude + 1e-30)) {
        INFO(m << " x " << n << " x " << k << (ta ? " A^T" : "") << (tb ? " B^T" : "") << " at ["
               << i << ", " << j << "]: " << got << " vs " << exact);
        CHECK(false);
        return;
      }
    }
}

}  // namespace

TEST_CASE("matrix products agree with a double-precision loop: odd shapes, transposes, batch 1") {
  INFO("float32 backend: " << gemm_backend());
  Generator gen(5);
  const std::size_t shapes[][3] = {{1, 256, 784}, {7, 13, 5}, {33, 65, 129}, {1, 1, 1},
                                   {64, 10, 128}, {3, 1, 17},  {2, 300, 1},   {257, 31, 63}};
  for (const auto& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_product<float>(s[0], s[1], s[2], ta, tb, gen);
        check_product<double>(s[0], s[1], s[2], ta, tb, gen);
      }
  CHECK((std::string(gemm_backend()) == "onednn" || std::string(gemm_backend()) == "openblas"));
}

TEST_CASE(
    "A^T B with A's rows 4 KB apart (made as (B^T A)^T) agrees with the loop, C's rows "
    "apart or dense") {
  // float32 gemm takes C^T and transposes it when transposed_product_pays(lda, ldb) and beta is
  // 0; with beta 1, or B's rows 4 KB apart too (the last shape), it keeps the T N form.
  // m = 1000 of A's 1024 columns leaves partial 16 x 16 blocks.
  Generator gen(9);
  for (auto [m, n, k, ldc] :
       {std::array<std::size_t, 4>{1024, 40, 9, 40}, std::array<std::size_t, 4>{1000, 37, 5, 50},
        std::array<std::size_t, 4>{1024, 3, 70, 3},
        std::array<std::size_t, 4>{1024, 1024, 3, 1024}}) {
    const std::size_t lda = 1024;
    REQUIRE(detail::rows_alias(lda, sizeof(float)));
    const xt::xarray<float> a = randn({k, lda}, {}, gen).value<float>();
    const xt::xarray<float> b = randn({k, n}, {}, gen).value<float>();
    for (float beta : {0.0f, 1.0f}) {
      INFO(m << " x " << n << " x " << k << ", ldc " << ldc << ", beta " << beta);
      std::vector<float> c(m * ldc, 0.5f);
      detail::gemm(true, false, m, n, k, 2.0f, a.data(), lda, b.data(), n, beta, c.data(), ldc);
      const double eps = std::numeric_limits<float>::epsilon();
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < ldc; ++j) {
          double exact = j < n ? 0.5 * beta : 0.5, magnitude = std::abs(exact);
          for (std::size_t t = 0; t < k && j < n; ++t) {
            exact += 2.0 * a(t, i) * b(t, j);
            magnitude += std::abs(2.0 * a(t, i) * b(t, j));
          }
          wrong += !(std::abs(c[i * ldc + j] - exact) <= 2 * double(k + 1) * eps * magnitude);
        }
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("batched products (3-D) and linear go through the same backend") {
  Generator gen(6);
  const Tensor a = randn({3, 5, 7}, {}, gen), b = randn({3, 7, 4}, {}, gen);
  const xt::xarray<float> c = matmul(a, b).value<float>();
  for (std::size_t s = 0; s < 3; ++s)
    for (std::size_t i = 0; i < 5; ++i)
      for (std::size_t j = 0; j < 4; ++j) {
        double exact = 0;
        for (std::size_t t = 0; t < 7; ++t)
          exact += double(a.value<float>()(s, i, t)) * double(b.value<float>()(s, t, j));
        CHECK(c(s, i, j) == doctest::Approx(exact).epsilon(1e-5));
      }
}

// C += A W^T twice over with the same prepared W and different A's, from a C that is not zero,
// against the double loop: the second call must see the first's C and the same W.
template <class T>
void check_repeated_product(std::size_t m, std::size_t n, std::size_t k, Generator& gen) {
  const Dtype dtype = dtype_of<T>();
  const Tensor w = randn({n, k}, {.dtype = dtype}, gen), c0 = randn({m, n}, {.dtype = dtype}, gen);
  const Tensor a1 = randn({m, k}, {.dtype = dtype}, gen), a2 = randn({m, k}, {.dtype = dtype}, gen);
  const T* pw = w.value<T>().data();
  std::vector<T> c(c0.value<T>().begin(), c0.value<T>().end());
  const detail::RepeatedProduct<T> product(m, n, k, pw);
  product.add_to(a1.value<T>().data(), c.data());
  product.add_to(a2.value<T>().data(), c.data());
  const double eps = std::numeric_limits<T>::epsilon();
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double exact = c0.value<T>().data()[i * n + j], magnitude = std::abs(exact);
      for (const Tensor* a : {&a1, &a2})
        for (std::size_t t = 0; t < k; ++t) {
          const double x = a->value<T>().data()[i * k + t], y = pw[j * k + t];
          exact += x * y;
          magnitude += std::abs(x * y);
        }
      const double got = c[i * n + j];
      if (!(std::abs(got - exact) <=
            2 * static_cast<double>(2 * k + 1) * eps * magnitude + 1e-30)) {
        INFO(m << " x " << n << " x " << k << " at [" << i << ", " << j << "]: " << got << " vs "
               << exact);
        CHECK(false);
        return;
      }
    }
}

TEST_CASE("the repeated product C += A W^T (the recurrent layers' steps) agrees with a loop") {
  INFO("float32 backend: " << gemm_backend());
  Generator gen(7);
  const std::size_t shapes[][3] = {{32, 768, 256}, {7, 13, 5}, {1, 1, 1}, {33, 65, 129},
                                   {3, 0, 4},      {0, 5, 4},  {3, 5, 0}};
  for (const auto& s : shapes) {
    check_repeated_product<float>(s[0], s[1], s[2], gen);
    check_repeated_product<double>(s[0], s[1], s[2], gen);
  }
}

TEST_CASE("the repeated product on vector_math's panels (an AVX2 machine's path) agrees too") {
  if (!detail::vec::panel_product_available()) {
    MESSAGE("no panel_product on the " << std::string(detail::vec::instruction_set()) << " path");
    return;
  }
  const bool before = detail::force_repeated_panels(true);
  Generator gen(8);
  const std::size_t shapes[][3] = {{32, 1024, 256}, {7, 13, 5}, {1, 1, 1}, {33, 65, 129}};
  for (const auto& s : shapes) check_repeated_product<float>(s[0], s[1], s[2], gen);
  // the FLOPs the bench's roofline reads, counted once
  std::vector<float> w(40 * 24, 0.5f), a(6 * 24, 0.25f), c(6 * 40, 0.0f);
  const detail::RepeatedProduct<float> product(6, 40, 24, w.data());
  const std::uint64_t flops = detail::float32_product_flops();
  product.add_to(a.data(), c.data());
  CHECK(detail::float32_product_flops() - flops == 2 * 6 * 40 * 24);
  CHECK(c[6 * 40 - 1] == doctest::Approx(24 * 0.125));
  detail::force_repeated_panels(before);
}

// linear(x, w, b) = x W^T + b (its own product: linear_product) against the double loop, with and
// without the bias, x of rows or one vector.
template <class T>
void check_linear(std::size_t m, std::size_t n, std::size_t k, bool bias, bool vector,
                  Generator& gen) {
  const Dtype dtype = dtype_of<T>();
  const Tensor x = randn(vector ? Shape{k} : Shape{m, k}, {.dtype = dtype}, gen);
  const Tensor w = randn({n, k}, {.dtype = dtype}, gen), b = randn({n}, {.dtype = dtype}, gen);
  // Twice: the second call gives the first one's bits (the same kernel for a shape every time).
  std::vector<T> first;
  for (int call = 0; call < 2; ++call) {
    const Tensor z = bias ? linear(x, w, b) : linear(x, w);
    const std::vector<T> bits(z.value<T>().begin(), z.value<T>().end());
    if (call == 0) first = bits;
    CHECK(bits == first);
    REQUIRE(z.shape() == (vector ? Shape{n} : Shape{m, n}));
    const T* px = x.value<T>().data();
    const T* pw = w.value<T>().data();
    const T* pz = z.value<T>().data();
    const double eps = std::numeric_limits<T>::epsilon();
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double exact = bias ? b.value<T>().data()[j] : 0.0, magnitude = std::abs(exact);
        for (std::size_t t = 0; t < k; ++t) {
          exact += double(px[i * k + t]) * double(pw[j * k + t]);
          magnitude += std::abs(double(px[i * k + t]) * double(pw[j * k + t]));
        }
        const double got = pz[i * n + j];
        if (!(std::abs(got - exact) <= 2 * static_cast<double>(k + 1) * eps * magnitude + 1e-30)) {
          INFO(m << " x " << n << " x " << k << std::string(bias ? " with bias" : "") << ", call "
                 << call << ", at [" << i << ", " << j << "]: " << got << " vs " << exact);
          CHECK(false);
          return;
        }
      }
  }
}

TEST_CASE("linear's x W^T + b agrees with a loop, with and without the bias") {
  INFO("float32 backend: " << gemm_backend());
  Generator gen(8);
  // rows from 128 (from 64 when k >= 2048) on oneDNN's matmul primitive, fewer on gemm: odd
  // shapes on both sides of each bound
  const std::size_t shapes[][3] = {{1024, 384, 128}, {129, 65, 33}, {128, 1, 1},   {7, 13, 5},
                                   {1, 1, 1},        {33, 65, 129}, {3, 0, 4},     {0, 5, 4},
                                   {3, 5, 0},        {200, 0, 4},   {200, 5, 0},   {64, 9, 2048},
                                   {63, 9, 2049},    {64, 9, 2047}, {127, 3, 2049}};
  for (const auto& s : shapes)
    for (bool bias : {true, false}) {
      check_linear<float>(s[0], s[1], s[2], bias, false, gen);
      check_linear<double>(s[0], s[1], s[2], bias, false, gen);
    }
  check_linear<float>(1, 37, 19, true, true, gen);
  check_linear<double>(1, 37, 19, true, true, gen);
  // More shapes than a thread keeps primitives for (64): the cache starts over and still agrees.
  for (std::size_t m = 128; m < 128 + 70; ++m) check_linear<float>(m, 3, 2, true, false, gen);
}
