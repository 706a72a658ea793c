// autograd/forward_ad.hpp: dual levels, make_dual and unpack_dual; tangents through ops, views
// and in-place writes; composed with reverse mode; and the errors. All in float64. (Every op's
// rule is checked by the op table, tests/autograd/test_ops.cpp.)
#include "autograd/forward_ad.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "autograd/engine.hpp"
#include "autograd/error.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::testing;
namespace fwd = xgrad::forward_ad;

TEST_CASE("forward mode: the tangent of an expression is its derivative along the direction") {
  const Tensor x0 = f64({0.5, -1.0, 2.0}), u = f64({1.0, 0.5, -2.0});
  const fwd::dual_level level;
  const Tensor x = fwd::make_dual(x0, u);
  const Tensor y = mul(exp(x), x);  // y' = e^x (1 + x) u
  const auto [value, tangent] = fwd::unpack_dual(y);
  REQUIRE(tangent.defined());
  const std::vector<double> xs = flat(x0), us = flat(u), t = flat(tangent), v = flat(value);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(v[i] == doctest::Approx(std::exp(xs[i]) * xs[i]).epsilon(1e-14));
    CHECK(t[i] == doctest::Approx(std::exp(xs[i]) * (1 + xs[i]) * us[i]).epsilon(1e-14));
  }
  CHECK_FALSE(fwd::unpack_dual(value).tangent.defined());  // the primal carries none
  CHECK_FALSE(y.requires_grad());  // nothing required grad: nothing recorded
}

TEST_CASE("forward mode: a tensor without a tangent is a constant; tangents end with the level") {
  const Tensor c = f64({2.0, 3.0});
  Tensor y;
  {
    const fwd::dual_level level;
    CHECK(fwd::is_active());
    y = mul(fwd::make_dual(f64({1.0, 1.0}), f64({1.0, -1.0})), c);
    CHECK(max_difference(fwd::unpack_dual(y).tangent, f64({2.0, -3.0})) == 0.0);
  }
  CHECK_FALSE(fwd::is_active());
  const fwd::dual_level next;
  CHECK_FALSE(fwd::unpack_dual(y).tangent.defined());
}

TEST_CASE("forward mode: a view's tangent is the same view of the tangent") {
  const Tensor u = f64({{1, 2, 3}, {4, 5, 6}});
  const fwd::dual_level level;
  const Tensor x = fwd::make_dual(f64({{0, 0, 0}, {0, 0, 0}}), u);
  CHECK(max_difference(fwd::unpack_dual(transpose(x)).tangent, transpose(u)) == 0.0);
  CHECK(max_difference(fwd::unpack_dual(slice(x, 1, 1, 3)).tangent, slice(u, 1, 1, 3)) == 0.0);
  CHECK(max_difference(fwd::unpack_dual(reshape(x, {-1})).tangent, reshape(u, {-1})) == 0.0);
}

TEST_CASE("forward mode: in-place ops update the tangent, through views to their base") {
  const Tensor u = f64({1.0, -2.0});
  const fwd::dual_level level;
  Tensor y = mul(fwd::make_dual(f64({3.0, 4.0}), u), 2.0);
  y.mul_(3.0);  // y = 6 x
  CHECK(max_difference(fwd::unpack_dual(y).tangent, f64({6.0, -12.0})) == 0.0);
  // A base without a tangent, written through a view with a dual: the base gets one, zeros
  // outside the view.
  const Tensor b = zeros({2, 2}, {.dtype = kFloat64});
  select(b, 0, 1).copy_(fwd::make_dual(f64({5.0, 6.0}), u));
  CHECK(max_difference(fwd::unpack_dual(b).tangent, f64({{0, 0}, {1, -2}})) == 0.0);
  // Then an in-place op on the base reaches the view's tangent too.
  const Tensor row = select(b, 0, 1);
  b.mul_(10.0);
  CHECK(max_difference(fwd::unpack_dual(row).tangent, f64({10, -20})) == 0.0);
}

TEST_CASE("forward mode composes with reverse mode") {
  const Tensor x = f64({0.5, -1.5}).requires_grad_(true);
  const Tensor u = f64({1.0, 2.0});
  const fwd::dual_level level;
  // The tangent is recorded: d/dx of sum(3 x^2 u) = 6 x u.
  const Tensor t = fwd::unpack_dual(sum(pow(fwd::make_dual(x, u), 3.0))).tangent;
  REQUIRE(t.requires_grad());
  CHECK(max_difference(grad({t}, {x})[0], f64({3.0, -18.0})) < 1e-14);
  // Forward over reverse: the gradient of sum(x^3) taken at a dual carries H u = 6 x u.
  const Tensor g = grad({sum(pow(fwd::make_dual(x, u), 3.0))}, {x})[0];
  CHECK(max_difference(fwd::unpack_dual(g).tangent, f64({3.0, -18.0})) < 1e-14);
}

TEST_CASE("forward mode: errors name the call and what was expected") {
  CHECK_THROWS_WITH_AS(fwd::make_dual(f64({1.0}), f64({1.0})),
                       doctest::Contains("no dual level is open"), AutogradError);
  const fwd::dual_level level;
  CHECK_THROWS_WITH_AS(fwd::dual_level(), doctest::Contains("already open"), AutogradError);
  CHECK_THROWS_WITH_AS(fwd::make_dual(f64({1.0, 2.0}), f64({1.0})),
                       doctest::Contains("[1] and the primal [2]"), ShapeError);
  CHECK_THROWS_AS(fwd::make_dual(f64({1.0}), tensor({1.0f})), DtypeError);
  CHECK_THROWS_AS(fwd::make_dual(i64({1}), i64({1})), DtypeError);
  const Tensor x = fwd::make_dual(f64({1.0, 2.0}), f64({1.0, 1.0}));
  CHECK_THROWS_WITH_AS(index_put_(zeros({2}, {.dtype = kFloat64}), {i64({0})}, x),
                       doctest::Contains("index_put_: forward mode"), AutogradError);
}
