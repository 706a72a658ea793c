#include "autograd/parallel.hpp"

#include <omp.h>

#include <algorithm>

namespace xgrad::detail {

void run_parallel(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body) {
  const int threads = omp_get_max_threads();
  if (threads <= 1 || omp_in_parallel() || n < 2 * grain) {
    if (n > 0) body(0, n);
    return;
  }
  const std::size_t blocks = std::min<std::size_t>(static_cast<std::size_t>(threads), n / grain);
#pragma omp parallel for num_threads(static_cast <int>(blocks)) schedule(static, 1)
  for (std::size_t b = 0; b < blocks; ++b) body(n * b / blocks, n * (b + 1) / blocks);
}

}  // namespace xgrad::detail
