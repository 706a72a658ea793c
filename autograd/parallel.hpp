#pragma once
/// \file
/// xgrad's own loops on several cores: the same OpenMP threads that oneDNN's GEMM uses (one pool,
/// so the two never fight over the cores), as many as set_num_threads says.

#include <cstddef>
#include <functional>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace xgrad {

/// Below this many elements an elementwise loop is not worth a second thread (measured with
/// mlp_step at batch 256: waking the other thread costs about as much as 32k float updates).
inline constexpr std::size_t kParallelGrain = std::size_t{1} << 15;

namespace detail {
void run_parallel(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body);
}

/// Calls body(begin, end) on contiguous blocks that cover [0, n), one block per thread, when n is
/// at least 2 * grain and more than one thread is set; otherwise body(0, n) on the calling thread
/// (with no cost beyond the call). Inside a parallel region it runs serially. Each index is in
/// exactly one block, and the blocks depend only on n and the thread count: a loop whose
/// iterations are independent gives the same result on any number of threads, and any loop gives
/// the same result run to run. Capture pointers by value: captured by reference, the compiler
/// reloads them after each store and the loop does not vectorize.
template <class Body>
void parallel_for(std::size_t n, std::size_t grain, Body&& body) {
  if (n < 2 * grain) {
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  detail::run_parallel(n, grain, body);
}

/// While it lives, the calling thread computes with denormal floats (magnitudes below 1.2e-38 in
/// float32, 2.2e-308 in float64) flushed to zero, as inputs and as results (x86's FTZ and DAZ
/// bits; elsewhere it does nothing). On x86 an operation on a denormal takes about a hundred
/// cycles. Optimizer state that decays geometrically reaches them: Adam's first moment of a weight
/// whose gradient stays 0 (a dead ReLU's) falls by 0.9 a step, below 1e-38 within a few hundred
/// steps, and a CNN's Adam step then took 40% of its training time. The optimizers' loops run
/// under it: an update computed from a denormal is below any weight's last bit anyway. Per
/// thread: open it inside a parallel_for body.
class FlushDenormals {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
};

}  // namespace xgrad
