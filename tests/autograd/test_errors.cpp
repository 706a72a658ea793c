// Bad input gets a typed exception derived from xgrad::Error, whose message says what was expected
// and what was got. One case per kind of mistake.
#include <doctest/doctest.h>

#include "autograd/anomaly.hpp"
#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

TEST_CASE("every error derives from xgrad::Error") {
  CHECK_THROWS_AS(zeros({2, 3}) + zeros({4}), Error);
  CHECK_THROWS_AS(zeros({2}) + zeros({2}, {.dtype = kFloat64}), Error);
  CHECK_THROWS_AS(sum(zeros({2}), {3}), Error);
  CHECK_THROWS_AS(Tensor().item(), Error);
  CHECK_THROWS_AS((zeros({2}, {.requires_grad = true}) * 2.0).backward(), Error);
}

TEST_CASE("mismatched shapes name the op and both shapes") {
  CHECK_THROWS_WITH_AS(mm(zeros({2, 3}), zeros({4, 5})),
                       doctest::Contains("mm: inner dimensions differ: [2, 3] @ [4, 5]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({5, 4})),
                       doctest::Contains("linear: input [2, 3], weight [5, 4]"), ShapeError);
  CHECK_THROWS_WITH_AS(reshape(zeros({2, 3}), {4, -1}),
                       doctest::Contains("cannot view 6 elements of shape [2, 3]"), ShapeError);
  CHECK_THROWS_WITH_AS(concat({zeros({2, 3}), zeros({2, 4})}, 0),
                       doctest::Contains("tensor 1 has shape [2, 4]"), ShapeError);
  CHECK_THROWS_AS(permute(zeros({2, 3}), {0, 0}), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3, 4, 5}), zeros({4, 2})),
                       doctest::Contains("matmul: shapes [2, 3, 4, 5] and [4, 2] do not chain"),
                       ShapeError);
  CHECK_THROWS_AS(matmul(zeros({2, 4, 5}), zeros({3, 5, 2})), ShapeError);  // batch 2 against 3
}

TEST_CASE("impossible broadcasting names both shapes and the axis") {
  CHECK_THROWS_WITH_AS(where(zeros({3}), zeros({2, 3}), zeros({4, 1})),
                       doctest::Contains("cannot be broadcast"), ShapeError);
  CHECK_THROWS_WITH_AS(zeros({2, 3}) * zeros({3, 2}),
                       doctest::Contains("axis 0 of the result: 2 vs 3"), ShapeError);
}

TEST_CASE("mixed dtypes are refused, not converted") {
  CHECK_THROWS_WITH_AS(mm(zeros({2, 2}), zeros({2, 2}, {.dtype = kFloat64})),
                       doctest::Contains("float32 and float64"), DtypeError);
  CHECK_THROWS_AS(tensor({1.0}).value<double>(), DtypeError);
}

TEST_CASE("an axis or an index out of range") {
  CHECK_THROWS_WITH_AS(softmax(zeros({2, 3}), 2),
                       doctest::Contains("softmax: axis 2 is out of range for a tensor of rank 2"),
                       IndexError);
  CHECK_THROWS_AS(sum(zeros({2, 3}), {-3}), IndexError);
  CHECK_THROWS_WITH_AS(index_select(zeros({4, 2}), 0, {1, 4}),
                       doctest::Contains("index 4 (entry 1)"), IndexError);
  CHECK_THROWS_AS(gather(zeros({2, 3}), 1, testing::i64({{0, 1}, {3, 0}})), IndexError);
  CHECK_THROWS_AS(select(zeros({2, 3}), 0, 2), IndexError);
}

TEST_CASE("empty tensors give empty results wherever PyTorch does, gradients included") {
  // Each was a crash or an error: cumsum along an empty axis (SIGSEGV), avg_pool2d with N = 0,
  // float32 conv2d with 0 output channels and multi_head_attention with T = 0 (oneDNN's sgemm
  // refused), attention with T or S = 0 (a reshape by -1), max along a full axis of (0, 3).
  const auto empty_grad = [](const Tensor& x, const Tensor& y) {
    const Tensor g = grad({sum(y)}, {x})[0];
    CHECK(g.shape() == x.shape());
  };
  for (const Dtype dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype, .requires_grad = true};
    const Tensor a = zeros({2, 0}, o);
    CHECK(cumsum(a, 1).shape() == Shape{2, 0});
    empty_grad(a, cumsum(a, 1));
    const Tensor images = zeros({0, 1, 4, 4}, o);
    CHECK(avg_pool2d(images, {2, 2}).shape() == Shape{0, 1, 2, 2});
    empty_grad(images, avg_pool2d(images, {2, 2}));
    const Tensor x = randn({1, 2, 4, 4}, o), w = zeros({0, 2, 3, 3}, o);
    CHECK(conv2d(x, w).shape() == Shape{1, 0, 2, 2});
    const std::vector<Tensor> gw = grad({sum(conv2d(x, w))}, {x, w});
    CHECK(testing::flat(cast(gw[0], kFloat64)) == std::vector<double>(32, 0.0));
    const Tensor qkv = zeros({2, 0, 12}, o);
    CHECK(multi_head_attention(qkv, 2).shape() == Shape{2, 0, 4});
    empty_grad(qkv, multi_head_attention(qkv, 2));
    const Tensor q = zeros({1, 0, 4}, o), k = randn({1, 3, 4}, o), v = randn({1, 3, 2}, o);
    CHECK(scaled_dot_product_attention(q, k, v).shape() == Shape{1, 0, 2});
    empty_grad(q, scaled_dot_product_attention(q, k, v));
    // No keys: each query's weights are empty, its output a sum of nothing (zeros, as PyTorch).
    const Tensor q2 = randn({1, 2, 4}, o), k0 = zeros({1, 0, 4}, o), v0 = zeros({1, 0, 2}, o);
    const Tensor none = scaled_dot_product_attention(q2, k0, v0);
    CHECK(none.shape() == Shape{1, 2, 2});
    CHECK(testing::flat(cast(none, kFloat64)) == std::vector<double>(4, 0.0));
    const Tensor rows = zeros({0, 3}, o);
    CHECK(max(rows, Axes{1}).shape() == Shape{0});
    CHECK(argmax(rows, 1).shape() == std::vector<std::size_t>{0});
    CHECK(mean(rows, Axes{1}).shape() == Shape{0});
    empty_grad(rows, max(rows, Axes{1}));
  }
}

TEST_CASE("empty tensors where they make no sense") {
  CHECK_THROWS_WITH_AS(max(zeros({0})),
                       doctest::Contains("needs a non-empty tensor, got shape [0]"), ValueError);
  CHECK_THROWS_AS(mean(zeros({3, 0})), ValueError);
  CHECK_THROWS_WITH_AS(mean(zeros({3, 0}), Axes{1}),
                       doctest::Contains("mean: axis 1 of shape [3, 0] is empty"), ValueError);
  CHECK_THROWS_AS(logsumexp(zeros({0, 2}), {0}), ValueError);
  // A max or a mean along an empty axis has nothing to reduce (PyTorch: an error for max).
  CHECK_THROWS_WITH_AS(max(zeros({0, 3}), Axes{0}),
                       doctest::Contains("max: axis 0 of shape [0, 3] is empty"), ValueError);
  CHECK_THROWS_AS(argmax(zeros({3, 0}), 1), ValueError);
  CHECK_THROWS_AS(concat({}), ValueError);
  CHECK(sum(zeros({0})).item() == 0.0);  // a sum of nothing is fine
}

TEST_CASE(
    "backward misuse: no seed for a non-scalar, a second backward, a leaf that needs no grad") {
  const Tensor x = tensor({1.0, 2.0}, {.dtype = kFloat64, .requires_grad = true});
  CHECK_THROWS_WITH_AS((x * x).backward(), doctest::Contains("has shape [2]"), AutogradError);
  const Tensor y = sum(x * x);
  y.backward();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph"), AutogradError);
  CHECK_THROWS_WITH_AS(sum(tensor({1.0})).backward(), doctest::Contains("does not require grad"),
                       AutogradError);
  CHECK_THROWS_AS(grad({sum(x)}, {tensor({1.0})}), AutogradError);
}

TEST_CASE(
    "anomaly mode names the op that first produced a NaN or an Inf, with its creation stack") {
  const Tensor x = tensor({1.0, 0.0, 2.0}, {.dtype = kFloat64, .requires_grad = true});
  CHECK_NOTHROW(log(x));  // off: -inf goes through silently, as in PyTorch
  {
    DetectAnomalyGuard guard;
    CHECK(DetectAnomalyGuard::is_enabled());
    const Tensor h = x * 2.0;
    try {
      (void)log(h);
      FAIL("log(0) should have been caught");
    } catch (const AnomalyError& e) {
      const std::string message = e.what();
      CHECK(message.find("anomaly: log produced -inf at [1]") != std::string::npos);
      CHECK(message.find("from finite inputs") != std::string::npos);
      CHECK(message.find("created at") != std::string::npos);
    }
    // Finite forward, infinite gradient: sqrt at 0.
    const Tensor s = sum(sqrt(x));
    try {
      s.backward();
      FAIL("the gradient of sqrt at 0 should have been caught");
    } catch (const AnomalyError& e) {
      CHECK(std::string(e.what()).find("the backward of sqrt produced inf at [1]") !=
            std::string::npos);
    }
  }
  CHECK_FALSE(DetectAnomalyGuard::is_enabled());
}

TEST_CASE("anomaly mode names a NaN in the caller's seed gradient as such") {
  DetectAnomalyGuard guard;
  const Tensor x = testing::f64({1.0, 2.0}, true);
  const Tensor y = exp(x);
  CHECK_THROWS_WITH_AS(y.backward(testing::f64({1.0, NAN})),
                       doctest::Contains("the gradient given to backward for output 0 is not "
                                         "finite at [1]"),
                       AnomalyError);
}

TEST_CASE("sizes that would wrap around are refused, naming the op") {
  const std::size_t huge = std::size_t{1} << 63;
  const Tensor image = zeros({1, 1, 4, 4});
  // 2 x padding wrapped past the check, then an out-of-bounds read.
  CHECK_THROWS_WITH_AS(max_pool2d(image, {2, 2}, {1, 1}, {huge, huge}),
                       doctest::Contains("max_pool2d: a size of 2 x 9223372036854775808"),
                       ValueError);
  CHECK_THROWS_AS(avg_pool2d(image, {2, 2}, {1, 1}, {huge, 0}), ValueError);
  // conv2d with such a padding or dilation gave a silently wrong output.
  CHECK_THROWS_WITH_AS(
      conv2d(image, zeros({1, 1, 3, 3}), Tensor(), Conv2dFuncOptions().padding({huge, 0})),
      doctest::Contains("conv2d: a size of"), ValueError);
  CHECK_THROWS_WITH_AS(
      conv2d(image, zeros({1, 1, 3, 3}), Tensor(), Conv2dFuncOptions().dilation({huge, 1})),
      doctest::Contains("conv2d: a size of"), ValueError);
  // An output too large to index: (2^25 x 2^25) positions of a 1 x 1 kernel.
  CHECK_THROWS_AS(conv2d(image, zeros({1, 1, 1, 1}), Tensor(),
                         Conv2dFuncOptions().padding(std::size_t{1} << 24)),
                  ValueError);
  // one_hot's buffer wrapped to nothing, then was written.
  CHECK_THROWS_WITH_AS(one_hot(testing::i64({1, 2}), huge), doctest::Contains("one_hot: a size of"),
                       ValueError);
  // Sizes adding up past 2^64 matched the length: parts of 2 and 1 came back.
  CHECK_THROWS_WITH_AS(split(zeros({3}), std::vector<std::size_t>{SIZE_MAX, 4}),
                       doctest::Contains("split: a size of"), ValueError);
}
