// The vectorized float functions (autograd/detail/vector_math.hpp) against std:: in double.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/detail/vector_math.hpp"

namespace vec = xgrad::detail::vec;

TEST_CASE("vectorized exp, tanh and erf agree with std:: to float rounding, at any position") {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> x = {0.0,  -0.0,  1e-8, -1e-8, 0.5,   -0.5,   3.0, -3.0,
                           20.0, -20.0, 87.0, -87.0, 100.0, -110.0, inf, -inf};
  for (int i = 0; i < 200; ++i) x.push_back(-9.0 + 0.0917 * i);
  struct Case {
    const char* name;
    void (*f)(float*, std::size_t);
    double (*reference)(double);
  };
  for (const Case c : {Case{"exp", vec::exp, [](double v) { return std::exp(v); }},
                       Case{"tanh", vec::tanh, [](double v) { return std::tanh(v); }},
                       Case{"erf", vec::erf, [](double v) { return std::erf(v); }}}) {
    INFO(std::string(c.name) << " on " << std::string(vec::instruction_set()));
    // Every length from 1 to 19, so that each element also goes through the padded tail.
    for (std::size_t n = 1; n < 20; ++n)
      for (std::size_t start = 0; start + n <= x.size(); start += n) {
        std::vector<float> v(x.begin() + long(start), x.begin() + long(start + n));
        c.f(v.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          // the exact value rounded to float: exp(100) overflows to inf as std::exp(100.0f) does
          const double want = double(float(c.reference(double(float(x[start + i])))));
          INFO("x = " << x[start + i]);
          if (std::isinf(want))
            CHECK(double(v[i]) == want);
          else
            CHECK(std::abs(double(v[i]) - want) <= 4e-7 * std::abs(want) + 1e-37);
        }
      }
    float nan = std::numeric_limits<float>::quiet_NaN();
    c.f(&nan, 1);
    CHECK(std::isnan(nan));
  }
}
