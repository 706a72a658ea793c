// Integer and bool tensors: creation, promotion, the integer kernels, comparisons and logic,
// checked against values worked out by hand (PyTorch 1.13 agrees with each, checked by hand).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

#include "autograd/ops.hpp"
#include "autograd/tensor.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using testing::I64s;
using testing::i64;
using testing::ints;

namespace {
std::vector<bool> bools(const Tensor& t) {
  REQUIRE(t.dtype() == kBool);
  const Tensor whole = t.contiguous();
  const auto& a = whole.value<bool>();
  return std::vector<bool>(a.begin(), a.end());
}
}  // namespace

TEST_CASE("dtypes: names, creation, item, and no gradients for integers and bools") {
  CHECK(dtype_name(kInt64) == "int64");
  CHECK(dtype_name(kInt32) == "int32");
  CHECK(dtype_name(kUInt8) == "uint8");
  CHECK(dtype_name(kBool) == "bool");
  CHECK(is_floating_point(kFloat32));
  CHECK_FALSE(is_floating_point(kInt64));
  const Tensor a = tensor({1, 0, 2}, {.dtype = kInt64});
  CHECK(a.dtype() == kInt64);
  CHECK(ints(a) == I64s{1, 0, 2});
  CHECK(zeros({2}, {.dtype = kBool}).dtype() == kBool);
  CHECK(full({2}, 7, {.dtype = kUInt8}).value<std::uint8_t>()(1) == 7);
  CHECK(arange(0, 4, 1, {.dtype = kInt32}).value<std::int32_t>()(3) == 3);
  const Tensor big = from_vector(std::vector<std::int64_t>{(std::int64_t{1} << 62) + 1}, {1});
  CHECK(big.dtype() == kInt64);
  CHECK(big.item<std::int64_t>() == (std::int64_t{1} << 62) + 1);  // exact, past 2^53
  CHECK(scalar(2.5).item<int>() == 2);
  // Only floating tensors take part in autograd.
  CHECK_THROWS_WITH_AS(zeros({2}, {.dtype = kInt64, .requires_grad = true}),
                       doctest::Contains("only floating-point tensors (float32, float64) can "
                                         "require gradients, this one is int64"),
                       AutogradError);
  Tensor labels = i64({1, 2});
  CHECK_THROWS_AS(labels.requires_grad_(), AutogradError);
  CHECK_THROWS_AS(Tensor(xt::xarray<bool>{true}, true), AutogradError);
  CHECK_THROWS_AS(randn({2}, {.dtype = kInt64}), DtypeError);
  // A float op on an integer tensor names the op and what to do.
  CHECK_THROWS_WITH_AS(exp(labels), doctest::Contains("exp: needs a floating-point tensor"),
                       DtypeError);
  CHECK_THROWS_WITH_AS(mean(labels), doctest::Contains("mean: needs a floating-point tensor"),
                       DtypeError);
  CHECK_THROWS_WITH_AS(matmul(labels, labels), doctest::Contains("to(kFloat32)"), DtypeError);
}

TEST_CASE("printing shows integers and booleans as numbers") {
  std::ostringstream os;
  os << tensor({250, 3}, {.dtype = kUInt8}) << "\n" << (i64({1, -2}) > 0);
  CHECK(os.str() == " 250\n   3\n[ CPUByteType{2} ]\n 1\n 0\n[ CPUBoolType{2} ]");
}

TEST_CASE("promotion: integers and bools with floats give the float; float32 with float64 is an error") {
  const Tensor f = tensor({1.5, 2.5});
  const Tensor d = tensor({1.5, 2.5}, {.dtype = kFloat64});
  const Tensor l = i64({2, 3});
  const Tensor n = tensor({2, 3}, {.dtype = kInt32});
  const Tensor u = tensor({2, 3}, {.dtype = kUInt8});
  const Tensor b = tensor({1, 0}, {.dtype = kBool});
  CHECK((f + l).dtype() == kFloat32);
  CHECK(testing::flat((d * l)) == std::vector<double>{3.0, 7.5});
  CHECK((l + n).dtype() == kInt64);
  CHECK((n + u).dtype() == kInt32);
  CHECK((u + b).dtype() == kUInt8);
  CHECK((b + b).dtype() == kInt64);  // bool arithmetic counts as int64
  CHECK(ints(b + b) == I64s{2, 0});
  CHECK((d + b).dtype() == kFloat64);
  CHECK_THROWS_WITH_AS(f + d, doctest::Contains("float32 and float64; convert one with to()"),
                       DtypeError);
  // With numbers: an integer keeps an integer tensor's dtype, a floating one gives float32.
  CHECK((l + 1).dtype() == kInt64);
  CHECK(ints(2 * l) == I64s{4, 6});
  CHECK(ints(1 - l) == I64s{-1, -2});
  CHECK((l * 2.5).dtype() == kFloat32);
  CHECK(testing::flat((l / 2).to(kFloat64)) == std::vector<double>{1.0, 1.5});  // true division
  CHECK((l / l).dtype() == kFloat32);
  CHECK((u + 1).dtype() == kUInt8);
  CHECK((b * 3).dtype() == kInt64);
  CHECK((f + 1).dtype() == kFloat32);
  CHECK(ints(-l) == I64s{-2, -3});
}

TEST_CASE("integer arithmetic wraps on overflow, as PyTorch's") {
  CHECK(ints(tensor({250}, {.dtype = kUInt8}) + 10) == I64s{4});
  CHECK(ints(-tensor({1}, {.dtype = kUInt8})) == I64s{255});
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const Tensor top = from_vector(std::vector<std::int64_t>{max}, {1});
  CHECK(ints(top + 1) == I64s{std::numeric_limits<std::int64_t>::min()});
  CHECK(ints(tensor({100000}, {.dtype = kInt32}) * tensor({100000}, {.dtype = kInt32})) ==
        I64s{1410065408});  // 10^10 mod 2^32
}

TEST_CASE("division with a rounding mode: trunc toward zero, floor toward -inf") {
  const Tensor a = i64({7, -7, 7, -7, 6});
  const Tensor b = i64({2, 2, -2, -2, 3});
  CHECK(div(a, b, "trunc").dtype() == kInt64);
  CHECK(ints(div(a, b, "trunc")) == I64s{3, -3, -3, 3, 2});
  CHECK(ints(floor_divide(a, b)) == I64s{3, -4, -4, 3, 2});
  const Tensor x = tensor({7.5, -7.5}, {.dtype = kFloat64, .requires_grad = true});
  CHECK(testing::flat(div(x, testing::f64({2, 2}), "floor")) == std::vector<double>{3, -4});
  CHECK(testing::flat(div(x, testing::f64({2, 2}), "trunc")) == std::vector<double>{3, -3});
  CHECK_FALSE(div(x, testing::f64({2, 2}), "floor").requires_grad());  // piecewise constant
  CHECK_THROWS_WITH_AS(floor_divide(a, i64({1, 1, 0, 1, 1})),
                       doctest::Contains("integer division by zero"), ValueError);
  CHECK_THROWS_WITH_AS(div(a, b, "round"), doctest::Contains("\"trunc\" or \"floor\""),
                       ValueError);
  // The most negative integer divided by -1 wraps to itself (it has no positive counterpart).
  const std::int64_t min = std::numeric_limits<std::int64_t>::min();
  CHECK(ints(div(from_vector(std::vector<std::int64_t>{min}, {1}), i64({-1}), "trunc")) ==
        I64s{min});
}

TEST_CASE("comparisons give bool tensors, with a number on either side") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = testing::f64({-1.0, 0.0, 2.0, nan});
  CHECK(bools(x > 0) == std::vector<bool>{false, false, true, false});
  CHECK(bools(0 < x) == std::vector<bool>{false, false, true, false});
  CHECK(bools(x >= 0.0) == std::vector<bool>{false, true, true, false});
  CHECK(bools(1 >= x) == std::vector<bool>{true, true, false, false});
  CHECK(bools(x == x) == std::vector<bool>{true, true, true, false});  // NaN is not itself
  CHECK(bools(x != x) == std::vector<bool>{false, false, false, true});
  CHECK(bools(x <= testing::f64({-2.0})) == std::vector<bool>{false, false, false, false});
  // Integers compare exactly, with integers and with floats.
  const Tensor l = i64({1, 2, 3});
  CHECK(bools(l == 2) == std::vector<bool>{false, true, false});
  CHECK(bools(l > 1.5) == std::vector<bool>{false, true, true});
  CHECK(bools(l < tensor({1.5, 1.5, 3.5})) == std::vector<bool>{true, false, true});
  const Tensor huge = from_vector(std::vector<std::int64_t>{(std::int64_t{1} << 60) + 1}, {1});
  CHECK(bools(huge == (std::int64_t{1} << 60)) == std::vector<bool>{false});  // not via double
  CHECK_FALSE((x > 0).requires_grad());
  CHECK_THROWS_AS(tensor({1.0}) < testing::f64({1.0}), DtypeError);
}

TEST_CASE("logic: logical_*, &, |, ^, ~, any, all, count_nonzero, nonzero") {
  const Tensor p = tensor({1, 1, 0, 0}, {.dtype = kBool});
  const Tensor q = tensor({1, 0, 1, 0}, {.dtype = kBool});
  CHECK(bools(p & q) == std::vector<bool>{true, false, false, false});
  CHECK(bools(p | q) == std::vector<bool>{true, true, true, false});
  CHECK(bools(p ^ q) == std::vector<bool>{false, true, true, false});
  CHECK(bools(~p) == std::vector<bool>{false, false, true, true});
  CHECK(bools(logical_and(testing::f64({2.0, 0.0, -1.0, 0.0}), p)) ==
        std::vector<bool>{true, false, false, false});
  CHECK(bools(logical_or(i64({0, 0, 3, 0}), q)) == std::vector<bool>{true, false, true, false});
  CHECK(bools(logical_xor(p, q)) == std::vector<bool>{false, true, true, false});
  CHECK(bools(logical_not(i64({0, 5}))) == std::vector<bool>{true, false});
  CHECK(ints(i64({12, 10}) & i64({10, 6})) == I64s{8, 2});
  CHECK(ints(i64({12, 10}) | i64({10, 6})) == I64s{14, 14});
  CHECK(ints(~i64({0, 5})) == I64s{-1, -6});
  CHECK(ints(~tensor({0, 5}, {.dtype = kUInt8})) == I64s{255, 250});
  CHECK_THROWS_WITH_AS(testing::f64({1.0}) & testing::f64({1.0}),
                       doctest::Contains("bitwise_and: needs bool or integer tensors"), DtypeError);
  const Tensor m = tensor({{1, 0, 0}, {0, 0, 0}}, {.dtype = kBool});
  CHECK(any(m).item<bool>());
  CHECK_FALSE(all(m).item<bool>());
  CHECK(bools(any(m, 1)) == std::vector<bool>{true, false});
  CHECK(any(m, 0, true).shape() == Shape{1, 3});
  CHECK(bools(all(testing::f64({{1, 2}, {0, 3}}), 0)) == std::vector<bool>{false, true});
  CHECK(all(zeros({0}, {.dtype = kBool})).item<bool>());  // all of nothing
  CHECK_FALSE(any(zeros({0})).item<bool>());
  CHECK(count_nonzero(testing::f64({{0, 2, 3}, {0, 0, 1}})).item<std::int64_t>() == 3);
  CHECK(ints(count_nonzero(testing::f64({{0, 2, 3}, {0, 0, 1}}), 0)) == I64s{0, 1, 2});
  const Tensor where_nonzero = nonzero(testing::f64({{0, 2, 3}, {0, 0, 1}}));
  CHECK(where_nonzero.shape() == Shape{3, 2});
  CHECK(ints(where_nonzero) == I64s{0, 1, 0, 2, 1, 2});
  CHECK(nonzero(zeros({2, 2})).shape() == Shape{0, 2});
}

TEST_CASE("where and masked_fill take bool masks and numbers") {
  const Tensor x = testing::f64({1.0, -2.0, 3.0}, true);
  CHECK(testing::flat(where(x > 0, x, 0.0)) == std::vector<double>{1, 0, 3});
  CHECK(testing::flat(where(x > 0, -1.0, x)) == std::vector<double>{-1, -2, -1});
  CHECK(ints(where(x > 0, 1, 0)) == I64s{1, 0, 1});
  CHECK(where(x > 0, 1, 0.5).dtype() == kFloat32);
  CHECK(ints(where(x > 0, i64({7, 8, 9}), 0)) == I64s{7, 0, 9});
  CHECK(bools(where(x > 0, x > 2, x < 0)) == std::vector<bool>{false, true, true});
  sum(where(x > 0, x, 0.0) * 2.0).backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{2, 0, 2});
  CHECK(testing::flat(masked_fill(x.detach(), x < 0, 9)) == std::vector<double>{1, 9, 3});
  CHECK(ints(masked_fill(i64({1, 2}), tensor({0, 1}, {.dtype = kBool}), 5)) == I64s{1, 5});
}

TEST_CASE("reductions of integers and bools: sum in int64, max, min, argmax, argmin") {
  const Tensor u = tensor({{200, 100}, {3, 250}}, {.dtype = kUInt8});
  CHECK(sum(u).dtype() == kInt64);
  CHECK(sum(u).item<std::int64_t>() == 553);  // no uint8 wrap in the sum
  CHECK(ints(sum(u, {0})) == I64s{203, 350});
  CHECK(sum(tensor({1, 1, 0}, {.dtype = kBool})).item<std::int64_t>() == 2);
  CHECK(max(u).item<std::int64_t>() == 250);
  CHECK(min(u).item<std::int64_t>() == 3);  // directly: -max(-x) would wrap in uint8
  CHECK(max(u).dtype() == kUInt8);
  CHECK(ints(min(u, {1})) == I64s{100, 3});
  CHECK(ints(max(i64({{-5, 2}, {7, 7}}), {0}, true)) == I64s{7, 7});
  CHECK(ints(argmax(u, 1)) == I64s{0, 1});
  CHECK(ints(argmin(u, 0)) == I64s{1, 0});
  CHECK(argmax(tensor({0, 1, 1}, {.dtype = kBool}), 0).item<std::int64_t>() == 1);  // first
  CHECK(argmax(u, 1).dtype() == kInt64);
}

TEST_CASE("casts: to bool non-zero is true; float to integer truncates and saturates") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = testing::f64({-1.7, 0.0, 2.9, nan, 1e30, -1e30});
  CHECK(bools(x.to(kBool)) == std::vector<bool>{true, false, true, true, true, true});
  CHECK(ints(x.to(kInt32)) == I64s{-1, 0, 2, 0, std::numeric_limits<std::int32_t>::max(),
                                   std::numeric_limits<std::int32_t>::min()});
  CHECK(ints(x.to(kUInt8)) == I64s{0, 0, 2, 0, 255, 0});
  CHECK(testing::flat(i64({3, -4}).to(kFloat64)) == std::vector<double>{3, -4});
  const Tensor g = testing::f64({1.5}, true);
  CHECK_FALSE(g.to(kInt64).requires_grad());  // an integer result is a constant
}

TEST_CASE("indexing and moving ops work on every dtype") {
  const Tensor l = i64({{1, 2, 3}, {4, 5, 6}});
  CHECK(ints(index_select(l, 1, i64({2, 0}))) == I64s{3, 1, 6, 4});
  CHECK(ints(gather(l, 1, reshape(i64({1, 0}), {2, 1}))) == I64s{2, 4});
  CHECK(ints(l.t()) == I64s{1, 4, 2, 5, 3, 6});
  CHECK(ints(reshape(l, {3, 2})) == I64s{1, 2, 3, 4, 5, 6});
  CHECK(ints(concat({l, l}, 0)).size() == 12);
  CHECK(ints(slice(l, 1, 1, 3)) == I64s{2, 3, 5, 6});
  const Tensor m = l > 2;
  CHECK(bools(m.t()) == std::vector<bool>{false, true, false, true, true, true});
  CHECK(bools(broadcast_to(tensor({1}, {.dtype = kBool}), {3})) ==
        std::vector<bool>{true, true, true});
  const auto [values, order] = sort(i64({3, 1, 2}));
  CHECK(ints(values) == I64s{1, 2, 3});
  CHECK(order.dtype() == kInt64);
  CHECK(ints(order) == I64s{1, 2, 0});
  CHECK_THROWS_WITH_AS(gather(l, 1, reshape(tensor({1, 0}), {2, 1})),
                       doctest::Contains("gather: indices must be an int64 tensor, got float32"),
                       DtypeError);
}
