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

/// Whether float32 convolutions on oneDNN may take its Winograd convolution (on by default): the
/// forward and the input gradient of 3 x 3 windows of stride 1 with 16 channels or more in and out,
/// where oneDNN has it (AVX-512) and judges it faster, and then the weights' gradient too. Its sums
/// differ from the direct convolution's within float32 rounding (each entry within K eps sum
/// |products|, K the products it adds); off, every convolution is direct (LibTorch's on a CPU). No
/// effect on float64 or an OpenBLAS build. For the whole program: set it before training, not while
/// another thread runs.
void set_allow_winograd(bool allow);
bool allow_winograd();

/// Whether float32 convolutions on oneDNN give their output, and their input's gradient, in
/// oneDNN's channel-blocked layout (on by default), which batch norm and 2 x 2 max pooling pass on
/// to the next convolution: no reorder between them. Any other reader sees plain values as ever
/// (made once, when first read). Off, every tensor is plain; the values are the same either way
/// (batch norm's sums within float32 rounding). For the whole program, as set_allow_winograd.
void set_blocked_layout(bool on);
bool blocked_layout();

}  // namespace xgrad
