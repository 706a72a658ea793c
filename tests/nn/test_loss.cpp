#include <doctest/doctest.h>

#include <cmath>

#include "autograd/engine.hpp"
#include "nn/loss.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
const Tensor labels = testing::i64({2, 0, 1});
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
    expected -= std::log(p[i * 4 + static_cast<std::size_t>(labels.value<std::int64_t>()(i))]) / 3;
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
      const double onehot = c == static_cast<std::size_t>(labels.value<std::int64_t>()(i)) ? 1.0 : 0.0;
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
          ((c == static_cast<std::size_t>(labels.value<std::int64_t>()(i)) ? 1 - s : 0) + s / 4) * lp[i * 4 + c] / 3;
  CHECK(softmax_cross_entropy(z, labels, {.label_smoothing = s}).item() ==
        doctest::Approx(smoothed).epsilon(1e-14));
  const Tensor w = testing::f64({0.5, 2.0, 1.0, 0.25});
  const double wy[] = {1.0, 0.5, 2.0};  // weights of labels 2, 0, 1
  double weighted = 0;
  for (std::size_t i = 0; i < 3; ++i)
    weighted -= wy[i] * lp[i * 4 + static_cast<std::size_t>(labels.value<std::int64_t>()(i))];
  CHECK(softmax_cross_entropy(z, labels, {.weight = w}).item() ==
        doctest::Approx(weighted / 3.5).epsilon(1e-14));
}

// The loss written in ops, -sum_c w_c q_ic log p_ic reduced as `o` says, with the weighted target
// rows (w_c q_ic) built by a loop: what the fused op computes in one pass.
Tensor composite_cross_entropy(const Tensor& z, const std::vector<std::int64_t>& y,
                               const CrossEntropyOptions& o) {
  const std::size_t batch = z.size(0), classes = z.size(1);
  xt::xarray<double> q = xt::zeros<double>({batch, classes});
  double denominator = 0;
  for (std::size_t i = 0; i < batch; ++i) {
    if (y[i] == o.ignore_index) continue;
    const auto label = static_cast<std::size_t>(y[i]);
    const auto w = [&](std::size_t c) {
      return o.weight.defined() ? cast(o.weight, kFloat64).value<double>()(c) : 1.0;
    };
    for (std::size_t c = 0; c < classes; ++c)
      q(i, c) =
          w(c) * ((c == label ? 1 - o.label_smoothing : 0) + o.label_smoothing / double(classes));
    denominator += w(label);
  }
  const Tensor rows = neg(sum(mul(cast(Tensor(q), z.dtype()), log_softmax(z, 1)), {1}));
  if (o.reduction == Reduction::none) return rows;
  return o.reduction == Reduction::sum ? sum(rows) : div(sum(rows), denominator);
}

TEST_CASE("softmax cross-entropy in float32: the fused op equals the loss written in ops") {
  // 37 rows of 10 classes: the batch's exponentials run over the whole array at once, so rows
  // straddle vector lanes; a row of 1000 classes is longer than a vector.
  Generator gen(5);
  for (const auto& [batch, classes] : {std::pair<std::size_t, std::size_t>{37, 10}, {3, 1000}}) {
    std::vector<std::int64_t> y(batch);
    for (std::size_t i = 0; i < batch; ++i) y[i] = static_cast<std::int64_t>((7 * i + 3) % classes);
    y[1] = -100;  // ignored
    const Tensor labels_ = from_vector(y, {batch});
    xt::xarray<float> w = xt::zeros<float>({classes});
    for (std::size_t c = 0; c < classes; ++c) w(c) = 0.25f + 0.5f * float(c % 4);
    const std::vector<CrossEntropyOptions> options = {
        {},
        {.reduction = Reduction::sum},
        {.reduction = Reduction::none},
        {.label_smoothing = 0.2},
        {.weight = Tensor(w)},
        {.reduction = Reduction::none, .label_smoothing = 0.1, .weight = Tensor(w)}};
    for (const CrossEntropyOptions& o : options) {
      CAPTURE(batch);
      CAPTURE(int(o.reduction));
      CAPTURE(o.label_smoothing);
      const Tensor z =
          mul(randn({batch, classes}, {}, gen), scalar(4.0f)).detach().requires_grad_();
      const Tensor zc = z.detach().requires_grad_();
      const Tensor fused = softmax_cross_entropy(z, labels_, o);
      const Tensor composite = composite_cross_entropy(zc, y, o);
      const Tensor seed = o.reduction == Reduction::none ? randn({batch}, {}, gen) : Tensor();
      if (seed.defined()) {
        fused.backward(seed);
        composite.backward(seed);
      } else {
        fused.backward();
        composite.backward();
      }
      const Tensor loss64 = cast(composite, kFloat64), grad64 = cast(zc.grad(), kFloat64);
      const double loss_scale = max(abs(loss64)).item(), grad_scale = max(abs(grad64)).item();
      // float32 rounding (a few units of 1.2e-7) of a few operations on values of these magnitudes
      CHECK(testing::max_difference(cast(fused, kFloat64), loss64) <= 1e-6 * loss_scale);
      CHECK(testing::max_difference(cast(z.grad(), kFloat64), grad64) <= 1e-6 * grad_scale);
    }
  }
}

TEST_CASE("softmax cross-entropy is stable for logits of +-1e4") {
  const Tensor z = testing::f64({{1e4, -1e4, 0}, {-1e4, -1e4, 1e4}}, true);
  const Tensor loss = softmax_cross_entropy(z, testing::i64({1, 2}));
  CHECK(loss.item() == doctest::Approx(1e4));
  loss.backward();
  for (double g : testing::flat(z.grad())) CHECK(std::isfinite(g));
  CHECK(softmax_cross_entropy(tensor({{1e4f, -1e4f}}), testing::i64({1})).item() == doctest::Approx(2e4));
}

TEST_CASE("softmax cross-entropy: clear errors for bad labels and shapes") {
  const Tensor z = logits_3x4();
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(z, testing::i64({2, 0, 4})),
                       doctest::Contains("label 4 of sample 2"), IndexError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, testing::i64({2, 0, -1})), IndexError);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(z, testing::i64({2, 0})), doctest::Contains("2 labels"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(testing::f64({1.0, 2.0}), testing::i64({0})),
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

TEST_CASE("nll, l1, smooth_l1, kl_div, binary_cross_entropy: values by hand, and their gradients") {
  const Tensor logp = log_softmax(logits_3x4(), 1);
  const auto lp = testing::flat(logp);
  double nll = 0;
  for (std::size_t i = 0; i < 3; ++i) nll -= lp[i * 4 + static_cast<std::size_t>(labels.value<std::int64_t>()(i))] / 3;
  CHECK(nll_loss(logp, labels).item() == doctest::Approx(nll).epsilon(1e-14));
  CHECK(nll_loss(logp, labels).item() ==
        doctest::Approx(softmax_cross_entropy(logits_3x4(), labels).item()).epsilon(1e-14));
  CHECK_THROWS_WITH_AS(nll_loss(logp, testing::i64({0, 4, 1})),
                       doctest::Contains("nll_loss: label 4 of row 1 is out of range for 4"),
                       IndexError);

  const Tensor pred = testing::f64({0.5, -2.0, 3.0, 1.0}, true);
  const Tensor target = testing::f64({1.0, -1.0, 1.0, 1.0});
  CHECK(l1_loss(pred, target).item() == doctest::Approx((0.5 + 1.0 + 2.0 + 0.0) / 4));
  // |d| = 0.5 < beta: 0.5 d^2 / beta; |d| = 1 and 2 >= beta: |d| - beta / 2 (beta = 1)
  CHECK(smooth_l1_loss(pred, target, Reduction::sum).item() ==
        doctest::Approx(0.125 + 0.5 + 1.5 + 0.0));
  CHECK(smooth_l1_loss(pred, target, Reduction::sum, 4.0).item() ==
        doctest::Approx((0.25 + 1.0 + 4.0) / 8));
  CHECK_THROWS_AS(smooth_l1_loss(pred, target, Reduction::mean, 0.0), ValueError);

  const Tensor q = testing::f64({0.25, 0.75, 0.0});  // a target with a zero: 0 log 0 = 0
  const Tensor logr = log(testing::f64({0.5, 0.25, 0.25}));
  const double kl = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.25);
  CHECK(kl_div(logr, q, Reduction::sum).item() == doctest::Approx(kl).epsilon(1e-14));
  CHECK(kl_div(logr, log(q), Reduction::sum, true).item() == doctest::Approx(kl).epsilon(1e-14));

  const Tensor p = testing::f64({0.9, 0.2, 0.0, 1.0});
  const Tensor t = testing::f64({1.0, 0.0, 1.0, 1.0});
  // the third: log 0 clamped to -100, as PyTorch's
  CHECK(binary_cross_entropy(p, t, Reduction::sum).item() ==
        doctest::Approx(-std::log(0.9) - std::log(0.8) + 100.0 + 0.0));
  // Probabilities exactly 0 or 1: finite gradients, those of the clamped loss (log(0) = -inf
  // reached the gradient as 0 x inf = NaN). Equal to the target: loss 0, gradient that of
  // -log(1 - p) at p = 0 (1) and of -log(p) at p = 1 (-1); maximally wrong: the clamp is flat,
  // 0. PyTorch's (p - t) / max(p (1 - p), 1e-12) gives 0, 0, -1e12 and 1e12 (docs/ops.md).
  const Tensor edge = testing::f64({0.0, 1.0, 0.0, 1.0}, true);
  const Tensor edge_target = testing::f64({0.0, 1.0, 1.0, 0.0});
  const Tensor edge_loss = binary_cross_entropy(edge, edge_target, Reduction::sum);
  CHECK(edge_loss.item() == 200.0);
  edge_loss.backward();
  CHECK(testing::flat(edge.grad()) == std::vector<double>{1.0, -1.0, 0.0, 0.0});
  CHECK_THROWS_WITH_AS(binary_cross_entropy(testing::f64({1.5}), testing::f64({1.0})),
                       doctest::Contains("probabilities must be in [0, 1]"), ValueError);
  CHECK(accuracy(logits_3x4(false), labels) == 1.0);
  CHECK(accuracy(logits_3x4(false), testing::i64({2, 1, 1})) == doctest::Approx(2.0 / 3));
  CHECK_THROWS_AS(accuracy(logits_3x4(false), testing::i64({0, 1})), ShapeError);

  // Gradients and second derivatives against finite differences, in double.
  const Tensor soft = softmax(testing::f64({{0.1, 0.7, 0.2}, {0.3, 0.3, 0.4}}), 1);
  const std::vector<std::pair<const char*, TensorFn>> losses = {
      {"nll_loss", [](const std::vector<Tensor>& x) { return nll_loss(x[0], testing::i64({2, 0, 1})); }},
      {"l1_loss", [&](const std::vector<Tensor>& x) { return l1_loss(x[0], target * 0.1); }},
      {"smooth_l1_loss",
       [&](const std::vector<Tensor>& x) { return smooth_l1_loss(x[0], target, Reduction::sum); }},
      {"kl_div",
       [&](const std::vector<Tensor>& x) {
         return kl_div(x[0], testing::f64({0.5, 0.0, 0.25, 0.25}), Reduction::sum);
       }},
      {"binary_cross_entropy",
       [&](const std::vector<Tensor>& x) { return binary_cross_entropy(sigmoid(x[0]), p); }},
  };
  // Inputs away from the kinks (d = 0 for l1, |d| = beta for smooth_l1).
  const Tensor away = testing::f64({0.5, -2.5, 3.0, 1.4}, true);
  for (const auto& [name, f] : losses) {
    const std::string op = name;
    INFO(op);
    const Tensor x = op == "nll_loss" ? logits_3x4() : away;
    CHECK_GRADCHECK(gradcheck(f, {x}));
    CHECK_GRADCHECK(gradgradcheck(f, {x}));
  }
}
