// vector_math.hpp's functions for AVX2: this file alone is compiled with -mavx2 (meson.build),
// and runs only where the processor has AVX2 (vector_math.cpp checks).
#include "autograd/detail/vector_math_impl.hpp"

namespace xgrad::detail::vec::avx2 {

void exp(float* x, std::size_t n) { Functions<xsimd::avx2>::exp(x, n); }
void tanh(float* x, std::size_t n) { Functions<xsimd::avx2>::tanh(x, n); }
void erf(float* x, std::size_t n) { Functions<xsimd::avx2>::erf(x, n); }

}  // namespace xgrad::detail::vec::avx2
