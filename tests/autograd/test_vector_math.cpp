// The vectorized float functions (autograd/detail/vector_math.hpp) against std:: in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "autograd/detail/vector_math.hpp"

namespace vec = xgrad::detail::vec;

// Each path this processor has (SSE2 always; AVX2, AVX-512 where present: skipped elsewhere).
std::vector<vec::Isa> paths() {
  std::vector<vec::Isa> out;
  for (vec::Isa isa : {vec::Isa::sse2, vec::Isa::avx2, vec::Isa::avx512})
    if (vec::supported(isa))
      out.push_back(isa);
    else
      MESSAGE("no " << vec::isa_name(isa) << " on this processor: its path is not tested");
  return out;
}

TEST_CASE(
    "vectorized exp, tanh and erf agree with std:: to float rounding, at any position, on every "
    "path") {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> x = {0.0,  -0.0,  1e-8, -1e-8, 0.5,   -0.5,   3.0, -3.0,
                           20.0, -20.0, 87.0, -87.0, 100.0, -110.0, inf, -inf};
  for (int i = 0; i < 200; ++i) x.push_back(-9.0 + 0.0917 * i);
  struct Case {
    const char* name;
    void (*f)(float*, std::size_t);
    double (*reference)(double);
  };
  std::vector<Case> cases;
  for (vec::Isa isa : paths()) {
    const vec::Functions& f = vec::functions(isa);
    cases.push_back({vec::isa_name(isa), f.exp, [](double v) { return std::exp(v); }});
    cases.push_back({vec::isa_name(isa), f.tanh, [](double v) { return std::tanh(v); }});
    cases.push_back({vec::isa_name(isa), f.erf, [](double v) { return std::erf(v); }});
  }
  // and the functions as the ops call them, on the chosen path
  cases.push_back({vec::instruction_set(), vec::exp, [](double v) { return std::exp(v); }});
  cases.push_back({vec::instruction_set(), vec::tanh, [](double v) { return std::tanh(v); }});
  cases.push_back({vec::instruction_set(), vec::erf, [](double v) { return std::erf(v); }});
  for (const Case& c : cases) {
    INFO("on " << std::string(c.name));
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

TEST_CASE("every path gives the same values within float rounding; the chosen one is the widest") {
  std::vector<float> x;
  for (int i = 0; i < 1000; ++i) x.push_back(-12.0f + 0.024f * float(i));
  const std::vector<vec::Isa> have = paths();
  if (!std::getenv("XGRAD_CPU_CAPABILITY")) CHECK(vec::chosen() == have.back());
  for (int k = 0; k < 3; ++k) {
    std::vector<std::vector<float>> got;
    for (vec::Isa isa : have) {
      const vec::Functions& f = vec::functions(isa);
      std::vector<float> v = x;
      (k == 0 ? f.exp : k == 1 ? f.tanh : f.erf)(v.data(), v.size());
      got.push_back(v);
    }
    for (std::size_t p = 1; p < got.size(); ++p)
      for (std::size_t i = 0; i < x.size(); ++i) {
        INFO(vec::isa_name(have[p]) << " against sse2, function " << k << ", x = " << x[i]);
        CHECK(std::abs(got[p][i] - got[0][i]) <= 2.5e-7f * std::abs(got[0][i]) + 1e-37f);
      }
  }
  for (vec::Isa isa : {vec::Isa::avx2, vec::Isa::avx512})
    if (!vec::supported(isa))
      CHECK_THROWS_WITH(vec::functions(isa), doctest::Contains("this processor has no"));
}
