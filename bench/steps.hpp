#pragma once
// Timing a training step, as every xgrad step benchmark reports it: the median after the warm-up,
// then, when asked, the profiler's table over as many steps again.

#include <chrono>
#include <cstdio>
#include <vector>

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

template <class Step>
void print_profile(Step&& step, std::size_t steps) {
  xgrad::Profiler profiler;
  for (std::size_t s = 0; s < steps; ++s) step();
  profiler.stop();
  std::printf("\nprofile of %zu steps (times summed over them):\n%s", steps,
              profiler.table().c_str());
}

}  // namespace bench
