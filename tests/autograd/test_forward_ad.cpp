// autograd/forward_ad.hpp: dual levels, make_dual and unpack_dual; tangents through ops, views
// and in-place writes; composed with reverse mode; and the errors. All in float64. (Every op's
// rule is checked by the op table, tests/autograd/test_ops.cpp.)
#include "autograd/forward_ad.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <optional>

#include "autograd/engine.hpp"
#include "autograd/error.hpp"
#include "autograd/functional.hpp"
#include "autograd/indexing.hpp"
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
  // The same through backward() into x.grad, accumulated by a second backward.
  for (double times : {1.0, 2.0}) {
    sum(pow(fwd::make_dual(x, u), 3.0)).backward();
    CHECK(max_difference(x.grad(), f64({0.75 * times, 6.75 * times})) < 1e-14);
    CHECK(max_difference(fwd::unpack_dual(x.grad()).tangent, f64({3.0 * times, -18.0 * times})) <
          1e-14);
  }
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
}

// x[idx] = v writes v's tangent (zeros when it has none) into x's tangent at the same positions,
// for every kind of index: a slice (a view written through), integer positions, a bool mask.
TEST_CASE("forward mode: indexed assignment writes the tangent too") {
  using indexing::Slice;
  std::optional<fwd::dual_level> level(std::in_place);
  const auto dual = [](xt::xarray<double> v, xt::xarray<double> u) {
    return fwd::make_dual(f64(std::move(v)), f64(std::move(u)));
  };
  Tensor x = dual({1, 2, 3, 4}, {10, 20, 30, 40});
  x.index_put_({Slice(1, 3)}, dual({7, 8}, {0.5, 0.25}));
  CHECK(flat(x) == std::vector<double>{1, 7, 8, 4});
  CHECK(flat(fwd::unpack_dual(x).tangent) == std::vector<double>{10, 0.5, 0.25, 40});

  x = dual({1, 2, 3, 4}, {10, 20, 30, 40});
  x.index_put_({i64({3, 0})}, f64({5, 6}));  // values without a tangent: zeros there
  CHECK(flat(x) == std::vector<double>{6, 2, 3, 5});
  CHECK(flat(fwd::unpack_dual(x).tangent) == std::vector<double>{0, 20, 30, 0});

  x = dual({1, 2, 3, 4}, {10, 20, 30, 40});
  x.index_put_({tensor({true, false, false, true}, {.dtype = kBool})},
               fwd::make_dual(scalar(9.0, {.dtype = kFloat64}), scalar(2.0, {.dtype = kFloat64})));
  CHECK(flat(x) == std::vector<double>{9, 2, 3, 9});
  CHECK(flat(fwd::unpack_dual(x).tangent) == std::vector<double>{2, 20, 30, 2});

  // Into a view of a base without a tangent: the base gets one, zeros but where written.
  const Tensor base = zeros({2, 3}, {.dtype = kFloat64});
  Tensor row = select(base, 0, 1);
  row.index_put_({i64({2, 0})}, dual({1, 2}, {3, 4}));
  CHECK(flat(base) == std::vector<double>{0, 0, 0, 2, 0, 1});
  CHECK(flat(fwd::unpack_dual(base).tangent) == std::vector<double>{0, 0, 0, 4, 0, 3});
  CHECK(flat(fwd::unpack_dual(row).tangent) == std::vector<double>{4, 0, 3});
  level.reset();

  // Through a function: jvp of f(a) = [a0, a0 a1] built by indexed assignment.
  const auto f = [](const Tensor& a) {
    Tensor out = zeros({2}, {.dtype = kFloat64});
    out.index_put_({i64({0})}, a.index({Slice(0, 1)}));
    out.index_put_({1}, mul(a.index({0}), a.index({1})));
    return out;
  };
  const auto [y, Ju] = jvp(f, f64({2, 3}), f64({1, -1}));
  CHECK(flat(Ju) == std::vector<double>{1, 3 - 2});
}
