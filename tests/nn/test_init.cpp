#include <doctest/doctest.h>

#include <cmath>

#include "nn/init.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
std::pair<double, double> mean_std(const Tensor& t) {
  const auto v = testing::flat(t);
  double m = 0, s = 0;
  for (double x : v) m += x / v.size();
  for (double x : v) s += (x - m) * (x - m) / v.size();
  return {m, std::sqrt(s)};
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : testing::flat(t)) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace

TEST_CASE("init: Xavier and Kaiming give the spread their formulas state, seedably") {
  Generator gen(11);
  const Tensor w = zeros({300, 200}, {.dtype = kFloat64});
  init::xavier_uniform_(w, 1.0, gen);
  const double xavier_bound = std::sqrt(6.0 / 500);
  CHECK(max_abs(w) <= xavier_bound);
  CHECK(mean_std(w).second == doctest::Approx(xavier_bound / std::sqrt(3.0)).epsilon(0.02));
  init::xavier_normal_(w, 1.0, gen);
  CHECK(mean_std(w).second == doctest::Approx(std::sqrt(2.0 / 500)).epsilon(0.02));
  init::kaiming_uniform_(w, gen);
  CHECK(max_abs(w) <= std::sqrt(6.0 / 200));
  init::kaiming_normal_(w, gen);
  CHECK(mean_std(w).second == doctest::Approx(std::sqrt(2.0 / 200)).epsilon(0.02));
  CHECK(std::abs(mean_std(w).first) < 0.005);

  Generator a(3), b(3);
  const Tensor u = zeros({4, 4}), v = zeros({4, 4});
  init::kaiming_uniform_(u, a);
  init::kaiming_uniform_(v, b);
  CHECK(u.value<float>() == v.value<float>());
  CHECK(testing::flat(init::constant_(zeros({3}, {.dtype = kFloat64}), 2.5)) ==
        std::vector<double>(3, 2.5));
  CHECK_THROWS_AS(init::xavier_uniform_(zeros({3})), ShapeError);
}
