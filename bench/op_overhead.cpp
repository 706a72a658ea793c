// The tape's cost per op: a chain of N elementwise ops on tiny tensors (alternately y * 0.999 and
// y + 0.001, as the LibTorch peer does), forward and backward, best of R repetitions.
//
//   op_overhead --ops 1000 [--reps 50] [--size 1]   ->  ns_per_op=...
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "autograd/allocator.hpp"
#include "autograd/ops.hpp"
#include "bench/options.hpp"

using namespace xgrad;

int main(int argc, char** argv) {
  CLI::App app{"Forward + backward time per op of a chain of tiny elementwise ops."};
  int ops = 1000, reps = 50;
  std::size_t size = 1;
  app.add_option("--ops", ops, "ops in the chain")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "repetitions (the best is reported)")->check(CLI::PositiveNumber);
  app.add_option("--size", size, "elements per tensor")->check(CLI::PositiveNumber);
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  keep_freed_memory();
  const Tensor x = rand({size}, {.requires_grad = true});
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    {
      Tensor y = x;
      for (int i = 0; i < ops; ++i) y = i % 2 ? y * 0.999 : y + 0.001;
      sum(y).backward();
    }  // the graph is freed inside the timed region, as LibTorch's is
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() / ops);
    x.zero_grad();
  }
  std::printf("ns_per_op=%g\n", best);
}
