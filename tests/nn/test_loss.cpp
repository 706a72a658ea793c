#include <doctest/doctest.h>

#include <cmath>

#include "autograd/engine.hpp"
#include "nn/loss.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
const Index labels = {2, 0, 1};
Tensor logits_3x4(bool requires_grad = true) {
  return testing::f64({{0.5, -1.0, 2.0, 0.1}, {3.0, 0.2, -0.5, 1.0}, {-2.0, 1.5, 0.3, 0.0}},
                      requires_grad);
}
}  // namespace

TEST_CASE("softmax cross-entropy: the loss is the mean of -log p(label)") {
  const Tensor z = logits_3x4();
  const auto p = testing::flat(softmax(z, 1));
  double expected = 0;
  for (std::size_t i = 0; i < 3; ++i)
    expected -= std::log(p[i * 4 + static_cast<std::size_t>(labels(i))]) / 3;
  CHECK(softmax_cross_entropy(z, labels).item() == doctest::Approx(expected).epsilon(1e-15));
  CHECK(softmax_cross_entropy(z, labels, {.reduction = Reduction::sum}).item() ==
        doctest::Approx(3 * expected).epsilon(1e-15));
  CHECK(softmax_cross_entropy(z, labels, {.reduction = Reduction::none}).shape() == Shape{3});
  SoftmaxCrossEntropy loss_fn;
  CHECK(loss_fn(z, labels).item() == doctest::Approx(expected).epsilon(1e-15));
}

TEST_CASE("softmax cross-entropy: the gradient is (softmax - onehot) / B") {
  const Tensor z = logits_3x4();
  softmax_cross_entropy(z, labels).backward();
  const auto p = testing::flat(softmax(z, 1));
  const auto g = testing::flat(z.grad());
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t c = 0; c < 4; ++c) {
      const double onehot = c == static_cast<std::size_t>(labels(i)) ? 1.0 : 0.0;
      CHECK(g[i * 4 + c] == doctest::Approx((p[i * 4 + c] - onehot) / 3).epsilon(1e-15));
    }
}

TEST_CASE("softmax cross-entropy: gradients and second derivatives for every option") {
  const Tensor w = testing::f64({0.5, 2.0, 1.0, 0.25});
  const std::vector<CrossEntropyOptions> options = {
      {},
      {.reduction = Reduction::sum},
      {.reduction = Reduction::none},
      {.label_smoothing = 0.1},
      {.weight = w},
      {.reduction = Reduction::none, .label_smoothing = 0.2, .weight = w},
      {.label_smoothing = 0.3, .weight = w}};
  for (const CrossEntropyOptions& o : options) {
    const TensorFn f = [&](const std::vector<Tensor>& in) {
      return softmax_cross_entropy(in[0], labels, o);
    };
    CHECK_GRADCHECK(gradcheck(f, {logits_3x4()}));
    CHECK_GRADCHECK(gradgradcheck(f, {logits_3x4()}));
  }
}

TEST_CASE("softmax cross-entropy: label smoothing and class weights as PyTorch defines them") {
  const Tensor z = logits_3x4(false);
  const auto lp = testing::flat(log_softmax(z, 1));
  const double s = 0.1;
  double smoothed = 0;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t c = 0; c < 4; ++c)
      smoothed -=
          ((c == static_cast<std::size_t>(labels(i)) ? 1 - s : 0) + s / 4) * lp[i * 4 + c] / 3;
  CHECK(softmax_cross_entropy(z, labels, {.label_smoothing = s}).item() ==
        doctest::Approx(smoothed).epsilon(1e-14));
  const Tensor w = testing::f64({0.5, 2.0, 1.0, 0.25});
  const double wy[] = {1.0, 0.5, 2.0};  // weights of labels 2, 0, 1
  double weighted = 0;
  for (std::size_t i = 0; i < 3; ++i)
    weighted -= wy[i] * lp[i * 4 + static_cast<std::size_t>(labels(i))];
  CHECK(softmax_cross_entropy(z, labels, {.weight = w}).item() ==
        doctest::Approx(weighted / 3.5).epsilon(1e-14));
}

TEST_CASE("softmax cross-entropy is stable for logits of +-1e4") {
  const Tensor z = testing::f64({{1e4, -1e4, 0}, {-1e4, -1e4, 1e4}}, true);
  const Tensor loss = softmax_cross_entropy(z, Index{1, 2});
  CHECK(loss.item() == doctest::Approx(1e4));
  loss.backward();
  for (double g : testing::flat(z.grad())) CHECK(std::isfinite(g));
  CHECK(softmax_cross_entropy(tensor({{1e4f, -1e4f}}), Index{1}).item() == doctest::Approx(2e4));
}

TEST_CASE("softmax cross-entropy: clear errors for bad labels and shapes") {
  const Tensor z = logits_3x4();
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(z, Index{2, 0, 4}),
                       doctest::Contains("label 4 of sample 2"), IndexError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, Index{2, 0, -1}), IndexError);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(z, Index{2, 0}), doctest::Contains("2 labels"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(testing::f64({1.0, 2.0}), Index{0}),
                       doctest::Contains("2-D"), ShapeError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, labels, {.label_smoothing = 1.5}), ValueError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, labels, {.weight = testing::f64({1.0})}), ShapeError);
}

TEST_CASE("MSE and BCE-with-logits: values and gradients") {
  const Tensor pred = testing::f64({0.5, -1.0, 2.0}, true);
  const Tensor target = testing::f64({0.0, 1.0, 1.5});
  CHECK(mse_loss(pred, target).item() == doctest::Approx((0.25 + 4 + 0.25) / 3));
  CHECK(MSELoss(Reduction::sum)(pred, target).item() == doctest::Approx(4.5));
  CHECK_GRADCHECK(
      gradcheck([&](const std::vector<Tensor>& in) { return mse_loss(in[0], target); }, {pred}));
  const Tensor t = testing::f64({1.0, 0.0, 1.0});
  double bce = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const double x = testing::flat(pred)[i], s = 1 / (1 + std::exp(-x)), y = testing::flat(t)[i];
    bce -= (y * std::log(s) + (1 - y) * std::log(1 - s)) / 3;
  }
  CHECK(BCEWithLogitsLoss()(pred, t).item() == doctest::Approx(bce).epsilon(1e-14));
  CHECK_GRADCHECK(
      gradcheck([&](const std::vector<Tensor>& in) { return bce_with_logits(in[0], t); }, {pred}));
  CHECK(bce_with_logits(testing::f64({1000.0}), testing::f64({0.0})).item() ==
        doctest::Approx(1000.0));
  CHECK_THROWS_AS(mse_loss(pred, testing::f64({1.0})), ShapeError);
}
