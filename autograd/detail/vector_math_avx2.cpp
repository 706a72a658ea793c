// vector_math.hpp's functions for AVX2: this file alone is compiled with -mavx2 (meson.build),
// and runs only where the processor has AVX2 (vector_math.cpp checks).
#include "autograd/detail/vector_math_impl.hpp"

namespace xgrad::detail::vec {

const Functions& avx2_functions() { return Loops<xsimd::avx2>::table; }

}  // namespace xgrad::detail::vec
