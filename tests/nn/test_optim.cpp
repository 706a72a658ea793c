#include <doctest/doctest.h>

#include <cmath>

#include "nn/optim.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
// A parameter whose gradient is set by hand.
Tensor param(xt::xarray<double> value) { return Tensor(std::move(value), true); }
void set_grad(const Tensor& p, xt::xarray<double> g) { p.set_grad(Tensor(std::move(g))); }
}  // namespace

TEST_CASE("plain SGD is the document's question 4: W <- W - eta grad W") {
  const Tensor w = param({1.0, -2.0, 0.5});
  set_grad(w, {0.1, 0.2, -0.4});
  SGD sgd({w}, {.lr = 0.5});
  sgd.step();
  CHECK(testing::flat(w) == std::vector<double>{1.0 - 0.05, -2.0 - 0.1, 0.5 + 0.2});
  sgd.zero_grad();
  CHECK_FALSE(w.grad().defined());
  sgd.step();  // no gradient: the parameter is skipped
  CHECK(testing::flat(w)[0] == 0.95);
}

TEST_CASE("SGD with momentum, Nesterov and weight decay follows PyTorch's update") {
  for (bool nesterov : {false, true}) {
    const Tensor w = param({1.0});
    SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = nesterov});
    double x = 1.0, buf = 0.0;
    for (int step = 0; step < 5; ++step) {
      const double g = 0.3 * x + 1.0;
      set_grad(w, {g});
      sgd.step();
      const double d = g + 0.01 * x;
      buf = step == 0 ? d : 0.9 * buf + d;
      x -= 0.1 * (nesterov ? d + 0.9 * buf : buf);
      CHECK(w.item() == doctest::Approx(x).epsilon(1e-15));
    }
    CHECK(sgd.state().at("momentum_buffer")[0].item() == doctest::Approx(buf).epsilon(1e-15));
  }
  CHECK_THROWS_AS(SGD({param({1.0})}, {.lr = 0.1, .nesterov = true}), ValueError);
}

TEST_CASE("Adam and AdamW follow their published updates") {
  for (bool decoupled : {false, true}) {
    const Tensor w = param({0.5, -1.0});
    AdamOptions o{.lr = 0.01, .weight_decay = 0.1};
    std::unique_ptr<Optimizer> opt = decoupled ? std::unique_ptr<Optimizer>(new AdamW({w}, o))
                                               : std::unique_ptr<Optimizer>(new Adam({w}, o));
    std::vector<double> x = {0.5, -1.0}, m(2, 0), v(2, 0);
    for (int t = 1; t <= 4; ++t) {
      std::vector<double> g = {std::sin(x[0]) + 0.1 * t, x[1] * x[1]};
      set_grad(w, {g[0], g[1]});
      opt->step();
      for (std::size_t i = 0; i < 2; ++i) {
        double d = g[i];
        if (decoupled)
          x[i] -= 0.01 * 0.1 * x[i];
        else
          d += 0.1 * x[i];
        m[i] = 0.9 * m[i] + 0.1 * d;
        v[i] = 0.999 * v[i] + 0.001 * d * d;
        const double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.999, t));
        x[i] -= 0.01 * mhat / (std::sqrt(vhat) + 1e-8);
        CHECK(testing::flat(w)[i] == doctest::Approx(x[i]).epsilon(1e-13));
      }
    }
    CHECK(opt->steps() == 4);
  }
}

TEST_CASE("learning-rate schedules: step and cosine") {
  const Tensor w = param({1.0});
  SGD sgd({w}, {.lr = 1.0});
  StepLR step(sgd, 2, 0.5);
  std::vector<double> lrs;
  for (int e = 0; e < 5; ++e) {
    step.step();
    lrs.push_back(sgd.lr());
  }
  CHECK(lrs == std::vector<double>{1.0, 0.5, 0.5, 0.25, 0.25});
  SGD sgd2({w}, {.lr = 0.1});
  CosineAnnealingLR cosine(sgd2, 4, 0.01);
  cosine.step();
  CHECK(sgd2.lr() == doctest::Approx(0.01 + 0.09 * (1 + std::cos(M_PI / 4)) / 2));
  for (int e = 0; e < 5; ++e) cosine.step();
  CHECK(sgd2.lr() == doctest::Approx(0.01));
}

TEST_CASE("optimizers reject tensors that are not trainable leaves") {
  CHECK_THROWS_AS(SGD({testing::f64({1.0})}, {.lr = 0.1}), ValueError);
  const Tensor w = param({1.0});
  CHECK_THROWS_AS(SGD({w * 2.0}, {.lr = 0.1}), ValueError);
  CHECK_THROWS_AS(SGD({w}, {.lr = -1}), ValueError);
  CHECK_THROWS_WITH_AS(SGD({w, w}, {.lr = 0.1}), doctest::Contains("the same tensor"), ValueError);
}

TEST_CASE("hyperparameters must be finite and in range, in constructors and in set_lr") {
  const Tensor w = param({1.0});
  const double nan = NAN;
  CHECK_THROWS_WITH_AS(SGD({w}, {.lr = 0.1, .momentum = nan}),
                       doctest::Contains("SGD: momentum must be a finite number >= 0, got nan"),
                       ValueError);
  CHECK_THROWS_AS(SGD({w}, {.lr = 0.1, .weight_decay = nan}), ValueError);
  CHECK_THROWS_AS(SGD({w}, {.lr = INFINITY}), ValueError);
  CHECK_THROWS_AS(Adam({w}, {.eps = nan}), ValueError);
  CHECK_THROWS_AS(Adam({w}, {.weight_decay = -0.1}), ValueError);
  CHECK_THROWS_WITH_AS(Adam({w}, {.beta1 = 1.0}), doctest::Contains("beta1 must be a finite number >= 0 and < 1"),
                       ValueError);
  SGD sgd({w}, {.lr = 0.1});
  CHECK_THROWS_AS(sgd.set_lr(nan), ValueError);
  CHECK_THROWS_AS(sgd.set_lr(-1), ValueError);
  CHECK_THROWS_AS(sgd.set_steps(-1), ValueError);
  CHECK(sgd.lr() == 0.1);
}
