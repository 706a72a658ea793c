#pragma once
// The loops of vector_math.hpp for one xsimd architecture; included by the file of each one
// (compiled with that architecture's flags).

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>

namespace xgrad::detail::vec {

template <class Arch, class F>
void apply(float* x, std::size_t n, F f) {
  using Batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = Batch::size;
  std::size_t i = 0;
  for (; i + width <= n; i += width) f(Batch::load_unaligned(x + i)).store_unaligned(x + i);
  if (i == n) return;
  alignas(64) float tail[width] = {};
  std::copy(x + i, x + n, tail);
  f(Batch::load_aligned(tail)).store_aligned(tail);
  std::copy(tail, tail + (n - i), x + i);
}

template <class Arch>
struct Functions {
  static void exp(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::exp(b); });
  }
  static void tanh(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::tanh(b); });
  }
  static void erf(float* x, std::size_t n) {
    apply<Arch>(x, n, [](const auto& b) { return xsimd::erf(b); });
  }
};

}  // namespace xgrad::detail::vec
