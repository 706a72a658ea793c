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
  CHECK_THROWS_AS(gather(zeros({2, 3}), 1, Index{{0, 1}, {3, 0}}), IndexError);
  CHECK_THROWS_AS(select(zeros({2, 3}), 0, 2), IndexError);
}

TEST_CASE("empty tensors where they make no sense") {
  CHECK_THROWS_WITH_AS(max(zeros({0})),
                       doctest::Contains("needs a non-empty tensor, got shape [0]"), ValueError);
  CHECK_THROWS_AS(mean(zeros({3, 0})), ValueError);
  CHECK_THROWS_AS(logsumexp(zeros({0, 2}), {0}), ValueError);
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
