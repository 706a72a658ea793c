// Broadcasting is undone in one place: the engine sums each gradient back to its input's shape
// with sum_to. One test per broadcasting pattern.
#include <doctest/doctest.h>

#include <cmath>

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

TEST_CASE("a whole-tensor sum: the same bits for a view and its copy, and the sum in double") {
  // 3 x 5003 spans several 4096-element chunks, and neither its rows nor the tail are whole
  // groups of 8: the order (autograd/ops/sum_to.cpp) is the same for every layout.
  Generator gen(11);
  const Tensor base = randn({5003, 6}, {.dtype = kFloat64}, gen);
  const Tensor transposed = transpose(base);  // no contiguous row
  const Tensor wide = randn({6, 5003}, {.dtype = kFloat64}, gen);
  const Tensor stepped_rows = slice(wide, 0, 0, 6, 2);  // contiguous rows, far apart
  const Tensor offset_rows = slice(wide, 1, 3, 5003);   // rows not starting on a group of 8
  for (const Tensor& v : {transposed, stepped_rows, offset_rows}) {
    REQUIRE_FALSE(v.is_contiguous());
    CHECK(sum(v).item<double>() == sum(v.contiguous()).item<double>());
    long double naive = 0;  // a naive loop, in higher precision
    for (double e : flat(v)) naive += e;
    CHECK(sum(v).item<double>() == doctest::Approx(static_cast<double>(naive)).epsilon(1e-14));
  }
  // float32 elements are added in double: 32768 times 1 + 2^-20 is 32768 + 2^-5, a float; any
  // float running sum would round each 2^-20 away once it passes 16 (their ulp 2^-19).
  const float e = 1.0f + std::ldexp(1.0f, -20);
  const Tensor many = full({32768}, e, {.dtype = kFloat32});
  CHECK(sum(many).item<float>() == 32768.0f + std::ldexp(1.0f, -5));
  CHECK(sum(slice(many, 0, 1, 32768, 2)).item<float>() == 16384.0f + std::ldexp(1.0f, -6));
}

TEST_CASE(
    "broadcast_to: a scalar, a block repeated whole and a column give the naive loop's values") {
  Generator gen(5);
  struct Case {
    Shape from, to;
  };
  for (const Case& c :
       {Case{{}, {3, 4}}, Case{{1}, {2, 5}}, Case{{1, 3}, {4, 3}}, Case{{2, 3}, {4, 2, 3}},
        Case{{1, 1, 3}, {2, 4, 3}}, Case{{3, 1}, {3, 4}}, Case{{2, 1, 3}, {2, 4, 3}}}) {
    CAPTURE(shape_str(c.from));
    const Tensor x = randn(c.from, {.dtype = kFloat64}, gen);
    const Tensor z = broadcast_to(x, c.to);
    REQUIRE(z.shape() == c.to);
    const std::vector<double> xs = flat(x), zs = flat(z);
    // naive: the source of each output index, axis by axis from the right
    const std::size_t lead = c.to.size() - c.from.size();
    for (std::size_t i = 0; i < zs.size(); ++i) {
      std::size_t rest = i, src = 0, step = 1;
      for (std::size_t d = c.to.size(); d-- > 0;) {
        const std::size_t index = rest % c.to[d];
        rest /= c.to[d];
        if (d < lead) continue;
        const std::size_t len = c.from[d - lead];
        if (len != 1) src += index * step;
        step *= len;
      }
      CHECK(zs[i] == xs[src]);
    }
  }
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
