#include "autograd/blas.hpp"

#include <cblas.h>

namespace xgrad {

void set_num_threads(int threads) { openblas_set_num_threads(threads); }
int num_threads() { return openblas_get_num_threads(); }

}  // namespace xgrad
