#include "autograd/blas.hpp"

#include <cblas.h>

#include <atomic>

#include <omp.h>

#include "autograd/detail/blas.hpp"

namespace xgrad {

void set_num_threads(int threads) {
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);  // oneDNN's (Debian's build uses OpenMP) and parallel_for's
}

int num_threads() { return openblas_get_num_threads(); }

const char* gemm_backend() { return detail::gemm_backend(); }

namespace {
std::atomic<bool> winograd{true};
}
void set_allow_winograd(bool allow) { winograd = allow; }
bool allow_winograd() { return winograd; }

namespace {
std::atomic<bool> blocked{true};
}
void set_blocked_layout(bool on) { blocked = on; }
bool blocked_layout() { return blocked; }

}  // namespace xgrad
