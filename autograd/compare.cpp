#include "autograd/compare.hpp"

#include <cmath>
#include <string>

#include "autograd/error.hpp"

namespace xgrad {

WorstEntry worst_entry(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size())
    throw ValueError("worst_entry: arrays of " + std::to_string(a.size()) + " and " +
                     std::to_string(b.size()) + " elements; expected equal sizes");
  WorstEntry w;
  for (std::size_t i = 0; i < a.size(); ++i) {
    w.scale = std::max({w.scale, std::abs(a[i]), std::abs(b[i])});
    const double e = a[i] == b[i] ? 0.0 : std::abs(a[i] - b[i]);  // the same infinity: equal
    if (std::isnan(w.abs_error)) continue;  // a NaN found earlier stays the worst
    if (e > w.abs_error || std::isnan(e) || i == 0) {
      w.flat = i;
      w.abs_error = e;
    }
  }
  if (!a.empty()) {
    w.a = a[w.flat];
    w.b = b[w.flat];
  }
  w.rel_error = w.scale > 0 ? w.abs_error / w.scale : (std::isnan(w.abs_error) ? w.abs_error : 0.0);
  return w;
}

}  // namespace xgrad
