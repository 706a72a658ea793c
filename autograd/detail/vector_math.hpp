#pragma once
// Transcendental functions over float arrays, in place (x[i] = f(x[i])), vectorized with xsimd
// for the widest instruction set the processor has, chosen once at the first call: AVX-512
// (16 lanes), AVX2 (8), or SSE2 (4, x86-64's baseline). std::exp and friends are calls that no
// loop vectorizes; these run to about 1 ulp. The elements past the last full vector go through
// the same vector code (padded), so a value never depends on where it sits in the array.
// XGRAD_CPU_CAPABILITY=sse2|avx2|avx512 in the environment caps the choice (as ATen's
// ATEN_CPU_CAPABILITY), to measure or test a narrower path on a wider processor.

#include <cstddef>

namespace xgrad::detail::vec {

void exp(float* x, std::size_t n);
void tanh(float* x, std::size_t n);
void erf(float* x, std::size_t n);

// The instruction sets with a path, narrowest first.
enum class Isa { sse2, avx2, avx512 };
// "sse2", "avx2" or "avx512".
const char* isa_name(Isa isa);
// Whether this processor runs `isa`'s path.
bool supported(Isa isa);
// The path the functions above take: the widest supported, capped by XGRAD_CPU_CAPABILITY.
Isa chosen();
// The name of chosen(): which instruction set runs them.
const char* instruction_set();

// One path's functions, for tests and benchmarks that compare paths. ValueError when the
// processor does not have `isa`.
struct Functions {
  void (*exp)(float*, std::size_t);
  void (*tanh)(float*, std::size_t);
  void (*erf)(float*, std::size_t);
};
const Functions& functions(Isa isa);

}  // namespace xgrad::detail::vec
