// Broadcasting is undone in one place: the engine sums each gradient back to its input's shape
// with sum_to. One test per broadcasting pattern.
#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using testing::flat;

namespace {
// d sum(w * (a + b)) / d{a, b} for a fixed weight w of the broadcast shape: each input's gradient
// is w summed over the axes along which that input was repeated.
void check_pattern(const Shape& sa, const Shape& sb, const Shape& expected_out) {
  Generator gen(7);
  const Tensor a = randn(sa, {.dtype = kFloat64, .requires_grad = true}, gen);
  const Tensor b = randn(sb, {.dtype = kFloat64, .requires_grad = true}, gen);
  const Tensor out = a + b;
  REQUIRE(out.shape() == expected_out);
  const Tensor w = randn(out.shape(), {.dtype = kFloat64}, gen);
  sum(out * w).backward();
  CHECK(a.grad().shape() == sa);
  CHECK(b.grad().shape() == sb);
  CHECK(flat(a.grad()) == flat(sum_to(w, sa)));
  CHECK(flat(b.grad()) == flat(sum_to(w, sb)));
  CHECK_GRADCHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {a, b}));
}
}  // namespace

TEST_CASE("sum_to reduces exactly the broadcast axes") {
  const Tensor x = testing::f64({{1, 2, 3}, {4, 5, 6}});
  CHECK(flat(sum_to(x, {3})) == std::vector<double>{5, 7, 9});
  CHECK(flat(sum_to(x, {1, 3})) == std::vector<double>{5, 7, 9});
  CHECK(flat(sum_to(x, {2, 1})) == std::vector<double>{6, 15});
  CHECK(flat(sum_to(x, {})) == std::vector<double>{21});
  CHECK(sum_to(x, {}).dim() == 0);
  CHECK(flat(sum_to(x, {2, 3})) == flat(x));
  CHECK_THROWS_AS(sum_to(x, {2}), ShapeError);
  CHECK_THROWS_AS(sum_to(x, {1, 2, 3, 1}), ShapeError);
}

TEST_CASE("broadcast pattern: scalar with a matrix") { check_pattern({}, {3, 4}, {3, 4}); }
TEST_CASE("broadcast pattern: a row") { check_pattern({3, 4}, {1, 4}, {3, 4}); }
TEST_CASE("broadcast pattern: a column") { check_pattern({3, 1}, {3, 4}, {3, 4}); }
TEST_CASE("broadcast pattern: change of rank") { check_pattern({2, 3, 4}, {4}, {2, 3, 4}); }
TEST_CASE("broadcast pattern: both sides repeat") { check_pattern({3, 1}, {1, 4}, {3, 4}); }
TEST_CASE("broadcast pattern: rank change and inner 1") {
  check_pattern({2, 1, 4}, {3, 1}, {2, 3, 4});
}
TEST_CASE("broadcast pattern: one-element tensor of rank 1") { check_pattern({1}, {2, 3}, {2, 3}); }

TEST_CASE("impossible broadcasting names the op and both shapes") {
  const Tensor a = zeros({3, 4});
  const Tensor b = zeros({3});
  CHECK_THROWS_WITH_AS(a + b, doctest::Contains("add: shapes [3, 4] and [3]"), ShapeError);
  CHECK_THROWS_WITH_AS(mul(a, zeros({2, 4})), doctest::Contains("mul"), ShapeError);
  CHECK_THROWS_AS(broadcast_to(a, {3, 5}), ShapeError);
}

TEST_CASE("mixed dtypes are an error, not a silent conversion") {
  CHECK_THROWS_WITH_AS(zeros({2}) + zeros({2}, {.dtype = kFloat64}),
                       doctest::Contains("float32 and float64"), DtypeError);
}
