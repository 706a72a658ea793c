// sort, topk, argmin, flip against plain loops; ties, NaN; the member forms of the ops, tensors
// from a std::vector or a pointer, and printing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

TEST_CASE("sort and topk agree with std::stable_sort on each line, any axis") {
  Generator gen(8);
  const Tensor x = randn({3, 5, 4}, {.dtype = kFloat64}, gen);
  const auto& a = x.value<double>();
  for (std::ptrdiff_t axis : {0, 1, 2, -1})
    for (bool descending : {false, true}) {
      INFO("axis " << axis << (descending ? " descending" : ""));
      const auto [values, indices] = sort(x, axis, descending);
      const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
      CHECK(values.shape() == x.shape());
      xt::xarray<double> v = values.contiguous().value<double>();
      for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 5; ++j)
          for (std::size_t k = 0; k < 4; ++k) {
            std::size_t at[3] = {i, j, k};
            const std::size_t pos = at[ax];
            // the line through this entry, sorted by hand
            std::vector<double> line;
            for (std::size_t t = 0; t < x.shape()[ax]; ++t) {
              at[ax] = t;
              line.push_back(a(at[0], at[1], at[2]));
            }
            std::stable_sort(line.begin(), line.end());
            if (descending) std::reverse(line.begin(), line.end());
            at[ax] = pos;
            REQUIRE(v(at[0], at[1], at[2]) == line[pos]);
            std::size_t from[3] = {i, j, k};
            from[ax] = static_cast<std::size_t>(indices.contiguous().value<std::int64_t>()(at[0], at[1], at[2]));
            REQUIRE(a(from[0], from[1], from[2]) == line[pos]);
          }
    }
  const auto [top, where] = topk(x, 2, 1);
  CHECK(top.shape() == Shape{3, 2, 4});
  const auto [all, order] = sort(x, 1, true);
  CHECK(testing::flat(top) == testing::flat(slice(all, 1, 0, 2)));
  CHECK(where.shape() == Shape{3, 2, 4});
}

TEST_CASE("sort: ties keep their order, NaN is the largest; topk's gradient goes to the picked") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = testing::f64({2.0, nan, 1.0, 2.0, -1.0}, true);
  const auto [v, i] = sort(x);
  CHECK(testing::ints(i) == std::vector<std::int64_t>{4, 2, 0, 3, 1});
  CHECK(std::isnan(testing::flat(v)[4]));
  const auto [vd, id] = sort(x, 0, true);
  CHECK(testing::ints(id) ==
        std::vector<std::int64_t>{1, 0, 3, 2, 4});
  const Tensor y = testing::f64({3.0, 1.0, 3.0, 0.5}, true);
  const auto [t, ti] = topk(y, 2);
  CHECK(testing::ints(ti) == std::vector<std::int64_t>{0, 2});
  sum(t * testing::f64({10.0, 1.0})).backward();
  CHECK(testing::flat(y.grad()) == std::vector<double>{10.0, 0.0, 1.0, 0.0});
  const auto [low, li] = topk(y, 1, 0, false);
  CHECK(testing::flat(low) == std::vector<double>{0.5});
  CHECK_THROWS_WITH_AS(topk(y, 5), doctest::Contains("topk: k = 5 is more than the 4 entries"),
                       ValueError);
  CHECK_THROWS_AS(sort(scalar(1.0)), ShapeError);
  CHECK_THROWS_WITH_AS(sort(y, 3), doctest::Contains("sort: axis 3 is out of range"), IndexError);
}

TEST_CASE("argmin and flip") {
  const Tensor x = testing::f64({{3.0, -1.0, -1.0}, {0.0, 5.0, -2.0}});
  const Tensor lo = argmin(x, 1);
  CHECK(testing::ints(lo) ==
        std::vector<std::int64_t>{1, 2});  // first of ties
  const Tensor lo0 = x.argmin(0);
  CHECK(testing::ints(lo0) == std::vector<std::int64_t>{1, 0, 1});
  CHECK(testing::flat(flip(x, {1})) == std::vector<double>{-1, -1, 3, -2, 5, 0});
  CHECK(testing::flat(flip(x, {0, 1})) == std::vector<double>{-2, 5, 0, -1, -1, 3});
  CHECK_THROWS_WITH_AS(flip(x, {1, -1}), doctest::Contains("flip: axis -1 is given twice"),
                       ShapeError);
}

TEST_CASE(
    "member forms give the ops' results; tensors from a vector or a pointer; xtensor's printer") {
  Generator gen(9);
  const Tensor x = uniform({2, 3}, 0.5, 2.0, {.dtype = kFloat64}, gen);
  const auto same = [](const Tensor& a, const Tensor& b) {
    return testing::flat(a) == testing::flat(b) && a.shape() == b.shape();
  };
  CHECK(same(x.relu(), relu(x)));
  CHECK(same(x.sigmoid(), sigmoid(x)));
  CHECK(same(x.tanh(), tanh(x)));
  CHECK(same(x.exp(), exp(x)));
  CHECK(same(x.log(), log(x)));
  CHECK(same(x.sqrt(), sqrt(x)));
  CHECK(same(x.abs(), abs(x)));
  CHECK(same(x.pow(3), pow(x, 3.0)));
  CHECK(same(x.pow(x), pow(x, x)));
  CHECK(same(x.sum(), sum(x)));
  CHECK(same(x.sum({1}, true), sum(x, {1}, true)));
  CHECK(same(x.mean(), mean(x)));
  CHECK(same(x.mean({0}), mean(x, {0})));
  CHECK(same(x.max(), max(x)));
  CHECK(same(x.min({1}), min(x, {1})));
  CHECK(same(x.softmax(0), softmax(x, 0)));
  CHECK(same(x.log_softmax(), log_softmax(x)));
  CHECK(same(x.reshape({3, -1}), reshape(x, {3, -1})));
  CHECK(same(x.flatten(), flatten(x)));
  CHECK(same(x.t(), transpose(x)));
  CHECK(same(x.permute({1, 0}), permute(x, {1, 0})));
  CHECK(same(x.unsqueeze(0).squeeze(), x));
  CHECK(same(x.matmul(x.t()), matmul(x, transpose(x))));
  CHECK(same(x.clamp(0.7, 1.5), clamp(x, 0.7, 1.5)));
  CHECK(testing::ints(x.argmax(1)) == testing::ints(argmax(x, 1)));
  CHECK(x.to(kFloat32).dtype() == kFloat32);
  CHECK(x.to(kFloat64).impl() == x.impl());
  CHECK_THROWS_WITH_AS(x.unsqueeze(0).t(),
                       doctest::Contains("t: needs a 2-D tensor, got shape [1, 2, 3]"), ShapeError);
  const Tensor leaf = x.detach().requires_grad_();
  leaf.pow(2).sum().backward();  // chained members record as the ops do
  CHECK(testing::flat(leaf.grad()) == testing::flat(2.0 * x));

  const std::vector<double> values = {1, 2, 3, 4, 5, 6};
  const Tensor v = from_vector(values, {2, 3}, {.dtype = kFloat64});
  CHECK(testing::flat(v) == values);
  CHECK(v.shape() == Shape{2, 3});
  CHECK(from_vector(std::vector<float>{1.5f, 2.5f}, {2}).dtype() == kFloat32);
  const float raw[] = {1.0f, 2.0f, 3.0f, 4.0f};
  CHECK(from_blob(raw, {2, 2}, {.dtype = kFloat64}).value<double>()(1, 0) == 3.0);
  CHECK_THROWS_WITH_AS(from_vector(values, {4, 2}),
                       doctest::Contains("from_vector: 6 values for shape [4, 2], which holds 8"),
                       ValueError);
  CHECK_THROWS_AS(from_blob(static_cast<const double*>(nullptr), {2}), ValueError);

  std::ostringstream raw_value;
  raw_value << x.value<double>();  // xtensor's printer comes with xgrad's headers
  CHECK(!raw_value.str().empty());
}
