#pragma once
/// \file
/// Every error xgrad throws derives from xgrad::Error. Messages name the operation, what was
/// expected and what was got, so that a user can find the faulty call from the text alone.

#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace xgrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit together: mismatched operands, impossible broadcasting, bad reshape.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Operands of different dtypes, or a value read as the wrong dtype.
class DtypeError : public Error {
 public:
  using Error::Error;
};

/// An axis or an index outside its range.
class IndexError : public Error {
 public:
  using Error::Error;
};

/// A value that makes no sense for the operation: an empty tensor, a negative size, a bad label.
class ValueError : public Error {
 public:
  using Error::Error;
};

/// Misuse of the autograd engine: backward on a non-scalar without a seed, a second backward
/// through a released graph, a graph that spans threads.
class AutogradError : public Error {
 public:
  using Error::Error;
};

/// A NaN or an Inf found by DetectAnomalyGuard (autograd/anomaly.hpp).
class AnomalyError : public AutogradError {
 public:
  using AutogradError::AutogradError;
};

/// The items, written with std::to_string when they are numbers, with `separator` between them:
/// join(std::vector<std::string>{"relu", "tanh"}, ", ") is "relu, tanh".
template <class Range>
std::string join(const Range& items, std::string_view separator) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += separator;
    first = false;
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(item)>>)
      out += std::to_string(item);
    else
      out += item;
  }
  return out;
}

/// "0.01", "1e+30": a number as a person writes it (%g), not std::to_string's fixed digits.
std::string number_str(double value);
/// "[2, 3]": how shapes are written in every message.
std::string shape_str(std::span<const std::size_t> shape);
/// "[1, 0]": the multi-index of element `flat` (row-major) of a tensor of `shape`.
std::string index_str(std::size_t flat, std::span<const std::size_t> shape);

}  // namespace xgrad
