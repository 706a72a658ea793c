// The best single-thread rate of xgrad's float32 GEMM backend (oneDNN or OpenBLAS) on a large
// square product. ./dev bench takes the larger of it and sgemm_peak's (../shared/peers) as the
// rate a step's GEMM and convolution work (the step programs' step_mflop=) could run at: that
// work at that rate is the step's roofline, the time it would take if it were only its products.
//
//   gemm_peak [--size 1024]  ->  square_gflops=...  backend=...  vector_math=...
// (vector_math: the instruction set of xgrad's vectorized exp, tanh and erf).
#include <cstdio>

#include "autograd/blas.hpp"
#include "autograd/detail/vector_math.hpp"
#include "bench/gemm_rate.hpp"
#include "bench/options.hpp"

int main(int argc, char** argv) {
  std::size_t size = 1024;
  CLI::App app{"The best single-thread GFLOP/s of xgrad's float32 GEMM on a square product."};
  app.add_option("--size", size, "rows, columns and depth")->check(CLI::Range(16, 8192));
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  return bench::guarded("gemm_peak", [&] {
    xgrad::set_num_threads(1);
    std::printf("square_gflops=%.1f\nbackend=%s\nvector_math=%s\n",
                bench::best_rate({false, false, size, size, size}, 20),
                xgrad::detail::gemm_backend(), xgrad::detail::vec::instruction_set());
  });
}
