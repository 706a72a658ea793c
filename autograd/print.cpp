// std::cout << tensor, in LibTorch's layout: the values, one line per row (a vector one value per
// line, a tensor of rank > 2 one matrix per index of its leading axes, headed "(i,j,.,.) = "), then
// a line "[ CPUFloatType{2,3} ]" naming the dtype and shape. One format per vector or matrix,
// chosen from its finite values as LibTorch chooses it:
//   - all whole numbers below 1e9: as integers, in the width of the largest;
//   - magnitudes spanning more than 4 powers of ten (or whole numbers from 1e9): scientific,
//     4 digits after the point;
//   - otherwise fixed, 4 digits after the point, the values divided by a common power of ten
//     (printed first, "0.001 *") when the largest is below 0.1 or from 1e5.
// Rows wider than 80 characters are cut into blocks of columns ("Columns 1 to 8").
// Where it differs from LibTorch, on purpose: integer tensors print every digit (LibTorch turns
// 1e9 and above into scientific notation), and a "Columns" header and a scaled matrix's rows are
// laid out like every other line (LibTorch runs the first row into the header and indents the
// later rows of a scaled matrix by one more space).
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {

thread_local int precision = 4;
constexpr std::size_t kLineWidth = 80;

struct Format {
  enum Kind { kInteger, kFixed, kScientific } kind = kInteger;
  std::size_t width = 2;
  double scale = 1;  // the values are printed divided by it
};

// The number of digits before the point of a magnitude (1 for 0 and for 1..9, 0 for 0.1..0.9).
int digits_before_point(double magnitude) {
  return magnitude == 0 ? 1 : static_cast<int>(std::floor(std::log10(magnitude))) + 1;
}

Format format_of(const double* v, std::size_t n, bool integral_dtype) {
  const int p = precision;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  bool whole = true, any = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) continue;
    const double a = std::abs(v[i]);
    lo = std::min(lo, a);
    hi = std::max(hi, a);
    whole = whole && v[i] == std::ceil(v[i]);
    any = true;
  }
  const int emin = any ? digits_before_point(lo) : 1, emax = any ? digits_before_point(hi) : 1;
  Format f;
  if (integral_dtype || (whole && emax <= 9)) {
    f.width = static_cast<std::size_t>(emax) + 1;  // and a space or a sign
  } else if (whole || emax - emin > 4) {
    f.kind = Format::kScientific;
    f.width = static_cast<std::size_t>(p) + 7 + (std::abs(emax) > 99 || std::abs(emin) > 99);
  } else {
    f.kind = Format::kFixed;
    if (emax > 5 || emax < 0) {
      f.scale = std::pow(10.0, emax - 1);
      f.width = static_cast<std::size_t>(p) + 3;
    } else {
      f.width = static_cast<std::size_t>(std::max(emax, 1) + p + 2);
    }
  }
  return f;
}

// One value in its format's width; integer dtypes from their exact int64 values.
void put(std::ostream& os, const Format& f, double v, const std::int64_t* exact) {
  os << std::setw(static_cast<int>(f.width));
  if (exact)
    os << *exact;
  else if (f.kind == Format::kInteger)
    os << std::fixed << std::setprecision(0) << v;
  else if (f.kind == Format::kFixed)
    os << std::fixed << std::setprecision(precision) << v / f.scale;
  else
    os << std::scientific << std::setprecision(precision) << v;
}

void put_scale(std::ostream& os, const Format& f, const std::string& indent) {
  if (f.scale == 1) return;
  os << indent << std::defaultfloat << std::setprecision(precision) << f.scale << " *\n";
}

// A rows x cols matrix of row-major values, every line after `indent`.
void put_matrix(std::ostream& os, const double* v, const std::int64_t* exact, std::size_t rows,
                std::size_t cols, bool integral_dtype, const std::string& indent) {
  const Format f = format_of(v, rows * cols, integral_dtype);
  put_scale(os, f, indent);
  const std::size_t per_line =
      std::max<std::size_t>(1, (kLineWidth - indent.size()) / (f.width + 1));
  for (std::size_t first = 0; first < cols; first += per_line) {
    const std::size_t last = std::min(cols, first + per_line);
    if (cols > per_line) {
      if (first > 0) os << "\n";
      os << indent << "Columns " << first + 1 << " to " << last << "\n";
    }
    for (std::size_t r = 0; r < rows; ++r) {
      os << indent;
      for (std::size_t c = first; c < last; ++c) {
        if (c > first) os << " ";
        const std::size_t at = r * cols + c;
        put(os, f, v[at], exact ? exact + at : nullptr);
      }
      os << "\n";
    }
  }
}

std::string_view libtorch_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32:
      return "CPUFloatType";
    case Dtype::float64:
      return "CPUDoubleType";
    case Dtype::int64:
      return "CPULongType";
    case Dtype::int32:
      return "CPUIntType";
    case Dtype::uint8:
      return "CPUByteType";
    case Dtype::bool_:
      return "CPUBoolType";
  }
  return "CPUType";
}

void put_values(std::ostream& os, const Tensor& t) {
  const Tensor values = t.to(kFloat64).contiguous();
  const double* v = detail::data<double>(values);
  const bool integral = !is_floating_point(t.dtype());
  Tensor exact_values;
  const std::int64_t* exact = nullptr;
  if (integral) {
    exact_values = t.to(kInt64).contiguous();
    exact = detail::data<std::int64_t>(exact_values);
  }
  if (t.dim() == 0) {
    if (exact)
      os << *exact;
    else
      os << std::defaultfloat << *v;  // in the stream's own precision, as LibTorch
    os << "\n";
    return;
  }
  if (t.dim() == 1) {
    const Format f = format_of(v, t.numel(), integral);
    put_scale(os, f, "");
    for (std::size_t i = 0; i < t.numel(); ++i) {
      put(os, f, v[i], exact ? exact + i : nullptr);
      os << "\n";
    }
    return;
  }
  const std::size_t rows = t.size(t.dim() - 2), cols = t.size(t.dim() - 1);
  if (t.dim() == 2) return put_matrix(os, v, exact, rows, cols, integral, "");
  const Shape leading(t.shape().begin(), t.shape().end() - 2);
  const std::size_t matrices = detail::product(leading), size = rows * cols;
  Shape index(leading.size(), 0);
  for (std::size_t m = 0; m < matrices; ++m) {
    if (m > 0) os << "\n";
    os << "(";
    for (std::size_t index_at : index) os << index_at + 1 << ",";
    os << ".,.) = \n";
    put_matrix(os, v + m * size, exact ? exact + m * size : nullptr, rows, cols, integral, " ");
    for (std::size_t d = index.size(); d-- > 0;) {  // the next index, row-major
      if (++index[d] < leading[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace

int print_precision() { return precision; }

void set_print_precision(int digits) {
  if (digits < 1 || digits > 17)
    throw ValueError("set_print_precision: digits must be in 1..17, got " + std::to_string(digits));
  precision = digits;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "[ Tensor (undefined) ]";
  std::ostringstream text;  // the caller's stream keeps its own flags
  text.precision(os.precision());
  if (t.numel() > 0) put_values(text, t);
  text << "[ " << libtorch_type(t.dtype()) << "{";
  for (std::size_t d = 0; d < t.dim(); ++d) text << (d > 0 ? "," : "") << t.size(d);
  text << "} ]";
  return os << text.str();
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

}  // namespace xgrad
