#pragma once
// The best rate of the float32 GEMM backend on one product, for the roofline rows of ./dev bench.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include "autograd/detail/blas.hpp"

namespace bench {

struct Product {
  bool ta, tb;
  std::size_t m, n, k;
};

// The best GFLOP/s of `reps` runs of C = op(A) op(B).
inline double best_rate(const Product& p, int reps) {
  std::vector<float> a(p.m * p.k, 0.5f), b(p.k * p.n, 0.25f), c(p.m * p.n);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    xgrad::detail::gemm(p.ta, p.tb, p.m, p.n, p.k, 1.0f, a.data(), p.ta ? p.m : p.k, b.data(),
                        p.tb ? p.k : p.n, 0.0f, c.data(), p.n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * double(p.m) * double(p.n) * double(p.k) / s / 1e9);
  }
  return best;
}

}  // namespace bench
