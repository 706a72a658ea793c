#include "autograd/blas.hpp"

#include <cblas.h>

#ifdef XGRAD_ONEDNN
#include <omp.h>
#endif

#include "autograd/detail/blas.hpp"

namespace xgrad {

void set_num_threads(int threads) {
  openblas_set_num_threads(threads);
#ifdef XGRAD_ONEDNN
  omp_set_num_threads(threads);  // oneDNN's threads (Debian's build uses OpenMP)
#endif
}

int num_threads() { return openblas_get_num_threads(); }

const char* gemm_backend() { return detail::gemm_backend(); }

}  // namespace xgrad
