#pragma once
/// \file
/// The matrix-product backend and its threads. float32 products run on oneDNN where xgrad was
/// built with it (the default when libdnnl-dev is installed; meson option -Dgemm=openblas to
/// choose OpenBLAS), float64 products on OpenBLAS. Both libraries use every core by default, which
/// is slower on small matrices and can change results from run to run: programs and tests set the
/// count they want, with set_num_threads, which sets both, and the threads of xgrad's own loops
/// (autograd/parallel.hpp: the same OpenMP threads as oneDNN's).

namespace xgrad {

void set_num_threads(int threads);
int num_threads();
/// "onednn" or "openblas": where float32 products run.
const char* gemm_backend();

}  // namespace xgrad
