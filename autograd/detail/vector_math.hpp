#pragma once
// Transcendental functions over float arrays, in place (x[i] = f(x[i])), vectorized with xsimd:
// AVX2 where the processor has it (chosen once, at the first call), SSE2 otherwise, x86-64's
// baseline. std::exp and friends are calls that no loop vectorizes; these run 4 to 8 lanes at a
// time, to about 1 ulp. The elements past the last full vector go through the same vector code
// (padded), so a value never depends on where it sits in the array.

#include <cstddef>

namespace xgrad::detail::vec {

void exp(float* x, std::size_t n);
void tanh(float* x, std::size_t n);
void erf(float* x, std::size_t n);

// Which instruction set runs them: "avx2" or "sse2".
const char* instruction_set();

}  // namespace xgrad::detail::vec
