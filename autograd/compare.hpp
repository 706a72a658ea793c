#pragma once
/// \file
/// Where two arrays of one shape differ most: what the gradient checkers report
/// (verify_gradients, gradcheck's failures, and programs that compare a formula with the tape).

#include <cstddef>
#include <span>

#include "xgrad/autograd/xtensor.hpp"

namespace xgrad {

struct WorstEntry {
  std::size_t flat = 0;  ///< row-major position of the largest |a - b|; the first NaN wins
  double a = 0, b = 0;   ///< the two values there
  double abs_error = 0;  ///< |a - b| there (0 where a == b, infinities included)
  double scale = 0;      ///< the largest |value| in either array
  double rel_error = 0;  ///< abs_error / scale (0 when both arrays are all zeros)
};

/// a and b of one size (ValueError otherwise); an empty pair compares equal.
WorstEntry worst_entry(std::span<const double> a, std::span<const double> b);
inline WorstEntry worst_entry(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  return worst_entry(std::span<const double>(a.data(), a.size()),
                     std::span<const double>(b.data(), b.size()));
}

}  // namespace xgrad
