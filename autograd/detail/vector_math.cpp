#include "autograd/detail/vector_math.hpp"

#include "autograd/detail/vector_math_impl.hpp"

namespace xgrad::detail::vec {

namespace avx2 {  // vector_math_avx2.cpp
void exp(float* x, std::size_t n);
void tanh(float* x, std::size_t n);
void erf(float* x, std::size_t n);
}  // namespace avx2

namespace {
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
using Baseline = Functions<xsimd::sse2>;
}  // namespace

void exp(float* x, std::size_t n) { has_avx2() ? avx2::exp(x, n) : Baseline::exp(x, n); }
void tanh(float* x, std::size_t n) { has_avx2() ? avx2::tanh(x, n) : Baseline::tanh(x, n); }
void erf(float* x, std::size_t n) { has_avx2() ? avx2::erf(x, n) : Baseline::erf(x, n); }
const char* instruction_set() { return has_avx2() ? "avx2" : "sse2"; }

}  // namespace xgrad::detail::vec
