#pragma once
// The loops of vector_math.hpp for one xsimd architecture; included by the file of each one
// (compiled with that architecture's flags).

#include <xsimd/xsimd.hpp>

#include <cstddef>

#include "autograd/detail/vector_math.hpp"

namespace xgrad::detail::vec {

template <class Arch, class F>
void apply(float* x, std::size_t n, F f) {
  using Batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = Batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) f(Batch::load_unaligned(x + i)).store_unaligned(x + i);
  if (i == n) return;
  // Plain loops, not std::copy: an inline library function instantiated here would be compiled
  // for Arch and could be the copy the linker keeps for every other file.
  alignas(64) float tail[width] = {};
  for (std::size_t k = i; k < n; ++k) tail[k - i] = x[k];
  f(Batch::load_aligned(tail)).store_aligned(tail);
  for (std::size_t k = i; k < n; ++k) x[k] = tail[k - i];
}

template <class Arch>
struct Loops {
  static void exp(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::exp(b); });
  }
  static void tanh(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::tanh(b); });
  }
  static void erf(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::erf(b); });
  }
  static constexpr Functions table = {exp, tanh, erf};
};

// Each path's table, from the file compiled for it.
const Functions& avx2_functions();
const Functions& avx512_functions();

}  // namespace xgrad::detail::vec
