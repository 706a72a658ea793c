#pragma once
// Timing a training step, as every xgrad step benchmark reports it: the median after the warm-up,
// then, when asked, the profiler's table over as many steps again.

#include <chrono>
#include <cstdio>
#include <vector>

#include "autograd/detail/blas.hpp"
#include "autograd/profiler.hpp"
#include "bench/options.hpp"

namespace bench {

template <class Step>
double median_step_us(Step&& step, std::size_t steps) {
  std::vector<double> times;
  for (std::size_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return median_after_warmup(times);
}

// Times `steps` steps and prints their median (median_us=) and the float32 GEMM and convolution
// work of one step (step_mflop=, what ./dev bench divides by the best GEMM rate for the roofline).
template <class Step>
void report_step(Step&& step, std::size_t steps) {
  const std::uint64_t before = xgrad::detail::float32_product_flops();
  const double us = median_step_us(step, steps);
  const double flop = double(xgrad::detail::float32_product_flops() - before) / double(steps);
  std::printf("median_us=%g\nstep_mflop=%.3f\n", us, flop / 1e6);
}

template <class Step>
void print_profile(Step&& step, std::size_t steps) {
  xgrad::Profiler profiler;
  for (std::size_t s = 0; s < steps; ++s) step();
  profiler.stop();
  std::printf("\nprofile of %zu steps (times summed over them):\n%s", steps,
              profiler.table().c_str());
}

}  // namespace bench
