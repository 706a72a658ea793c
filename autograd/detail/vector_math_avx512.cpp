// vector_math.hpp's functions for AVX-512: this file alone is compiled with -mavx512f
// (meson.build), and runs only where the processor has AVX-512F (vector_math.cpp checks).
#include "autograd/detail/vector_math_impl.hpp"

namespace xgrad::detail::vec {

const Functions& avx512_functions() { return Loops<xsimd::avx512f>::table; }

}  // namespace xgrad::detail::vec
