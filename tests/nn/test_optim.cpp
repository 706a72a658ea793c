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

TEST_CASE("optimizers reject tensors that are not floating-point leaves") {
  // A frozen one (requires_grad false) is taken, as PyTorch's: tests/nn/test_module_api.cpp.
  CHECK_THROWS_WITH_AS(SGD({testing::i64({1})}, {.lr = 0.1}),
                       doctest::Contains("must be a defined floating-point leaf"), ValueError);
  CHECK_THROWS_AS(SGD({Tensor()}, {.lr = 0.1}), ValueError);
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
  CHECK_THROWS_WITH_AS(Adam({w}, {.beta1 = 1.0}),
                       doctest::Contains("beta1 must be a finite number >= 0 and < 1"), ValueError);
  SGD sgd({w}, {.lr = 0.1});
  CHECK_THROWS_AS(sgd.set_lr(nan), ValueError);
  CHECK_THROWS_AS(sgd.set_lr(-1), ValueError);
  CHECK_THROWS_AS(sgd.set_steps(-1), ValueError);
  CHECK(sgd.lr() == 0.1);
}

TEST_CASE("RMSprop follows PyTorch's update: plain, centered, with momentum and weight decay") {
  for (bool centered : {false, true})
    for (double momentum : {0.0, 0.9}) {
      INFO("centered " << centered << ", momentum " << momentum);
      const Tensor w = param({1.0, -0.5});
      RMSprop opt({w}, {.lr = 0.01,
                        .alpha = 0.9,
                        .eps = 1e-8,
                        .weight_decay = 0.1,
                        .momentum = momentum,
                        .centered = centered});
      double x[2] = {1.0, -0.5}, v[2] = {0, 0}, m[2] = {0, 0}, b[2] = {0, 0};
      for (int step = 0; step < 4; ++step) {
        const double g[2] = {0.3 * x[0] + 1.0, -2.0 * x[1]};
        set_grad(w, {g[0], g[1]});
        opt.step();
        for (int j = 0; j < 2; ++j) {
          const double d = g[j] + 0.1 * x[j];
          v[j] = 0.9 * v[j] + 0.1 * d * d;
          double var = v[j];
          if (centered) {
            m[j] = 0.9 * m[j] + 0.1 * d;
            var -= m[j] * m[j];
          }
          const double a = std::sqrt(var) + 1e-8;
          if (momentum != 0) {
            b[j] = momentum * b[j] + d / a;
            x[j] -= 0.01 * b[j];
          } else {
            x[j] -= 0.01 * d / a;
          }
        }
      }
      const auto got = testing::flat(w);
      CHECK(got[0] == doctest::Approx(x[0]).epsilon(1e-12));
      CHECK(got[1] == doctest::Approx(x[1]).epsilon(1e-12));
    }
}

TEST_CASE("Adagrad follows PyTorch's update, with lr decay and an initial accumulator") {
  const Tensor w = param({2.0});
  Adagrad opt({w}, {.lr = 0.1,
                    .lr_decay = 0.01,
                    .weight_decay = 0.05,
                    .initial_accumulator_value = 0.5,
                    .eps = 1e-10});
  double x = 2.0, s = 0.5;
  for (int step = 1; step <= 5; ++step) {
    const double g = x * x - 1.0;
    set_grad(w, {g});
    opt.step();
    const double d = g + 0.05 * x;
    s += d * d;
    x -= 0.1 / (1 + (step - 1) * 0.01) * d / (std::sqrt(s) + 1e-10);
  }
  CHECK(testing::flat(w)[0] == doctest::Approx(x).epsilon(1e-12));
  CHECK(opt.name() == "Adagrad");
  CHECK_THROWS_WITH_AS(Adagrad({param({1.0})}, {.lr_decay = -1}),
                       doctest::Contains("Adagrad: lr_decay must be a finite number >= 0, got -1"),
                       ValueError);
  CHECK_THROWS_WITH_AS(RMSprop({param({1.0})}, {.alpha = 1.5}),
                       doctest::Contains("RMSprop: alpha must be a finite number >= 0 and <= 1"),
                       ValueError);
}

TEST_CASE("clip_grad_norm_ scales every gradient by one factor; clip_grad_value_ clamps") {
  const Tensor a = param({3.0, 0.0}), b = param({4.0}), frozen = param({1.0});
  set_grad(a, {3.0, 0.0});
  set_grad(b, {4.0});                                                   // joint 2-norm 5
  CHECK(clip_grad_norm_({a, b, frozen}, 1.0) == doctest::Approx(5.0));  // frozen: no gradient
  CHECK(testing::flat(a.grad())[0] == doctest::Approx(3.0 / (5.0 + 1e-6)));
  CHECK(testing::flat(b.grad())[0] == doctest::Approx(4.0 / (5.0 + 1e-6)));
  CHECK(clip_grad_norm_({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // under: unchanged
  CHECK(testing::flat(b.grad())[0] == doctest::Approx(4.0 / (5.0 + 1e-6)));
  set_grad(a, {-3.0, 1.0});
  set_grad(b, {2.0});
  CHECK(clip_grad_norm_({a, b}, 1.5, INFINITY) == doctest::Approx(3.0));  // the largest entry
  CHECK(testing::flat(a.grad())[0] == doctest::Approx(-1.5).epsilon(1e-6));
  CHECK(clip_grad_norm_({a, b}, 100.0, 1.0) == doctest::Approx(1.5 + 0.5 + 1.0).epsilon(1e-6));
  set_grad(a, {NAN, 1.0});
  CHECK(std::isnan(clip_grad_norm_({a}, 1.0)));
  CHECK(testing::flat(a.grad())[1] == 1.0);  // non-finite: left as it is
  CHECK_THROWS_WITH_AS(clip_grad_norm_({a}, 1.0, 2.0, true),
                       doctest::Contains("clip_grad_norm_: the gradients' total norm is nan"),
                       ValueError);
  set_grad(a, {-3.0, 0.25});
  clip_grad_value_({a}, 0.5);
  CHECK(testing::flat(a.grad()) == std::vector<double>{-0.5, 0.25});
  CHECK_THROWS_AS(clip_grad_value_({a}, -1.0), ValueError);
}

TEST_CASE("LambdaLR, MultiStepLR and ExponentialLR: the learning rate at each epoch") {
  const Tensor w = param({1.0});
  SGD sgd({w}, {.lr = 0.1});
  LambdaLR halve(sgd, [](std::int64_t epoch) { return 1.0 / static_cast<double>(1 + epoch); });
  CHECK(sgd.lr() == doctest::Approx(0.1));
  halve.step();
  CHECK(sgd.lr() == doctest::Approx(0.05));
  halve.step();
  CHECK(sgd.lr() == doctest::Approx(0.1 / 3));
  SGD sgd2({param({1.0})}, {.lr = 1.0});
  MultiStepLR steps(sgd2, {2, 4}, 0.5);
  const double multi[] = {1.0, 0.5, 0.5, 0.25, 0.25};  // after epochs 1 .. 5
  for (double lr : multi) {
    steps.step();
    CHECK(sgd2.lr() == doctest::Approx(lr));
  }
  SGD sgd3({param({1.0})}, {.lr = 2.0});
  ExponentialLR decay(sgd3, 0.5);
  decay.step();
  decay.step();
  CHECK(sgd3.lr() == doctest::Approx(0.5));
  CHECK_THROWS_WITH_AS(MultiStepLR(sgd2, {3, 3}), doctest::Contains("must increase"), ValueError);
  CHECK_THROWS_AS(ExponentialLR(sgd3, -1.0), ValueError);
  SGD sgd4({param({1.0})}, {.lr = 1.0});
  LambdaLR bad(sgd4, [](std::int64_t epoch) { return epoch == 0 ? 1.0 : -1.0; });
  CHECK_THROWS_WITH_AS(bad.step(), doctest::Contains("the factor at epoch 1"), ValueError);
}

namespace {
// The learning rate (and momentum) before the first step and after each of `steps` steps.
template <class Scheduler>
void check_schedule(Optimizer& opt, Scheduler& schedule, const std::vector<double>& lrs,
                    const std::vector<double>& momenta = {}) {
  for (std::size_t k = 0; k < lrs.size(); ++k) {
    CAPTURE(k);
    if (k > 0) schedule.step();
    CHECK(opt.lr() == doctest::Approx(lrs[k]).epsilon(1e-12));
    if (!momenta.empty()) CHECK(*opt.momentum() == doctest::Approx(momenta[k]).epsilon(1e-12));
  }
}
}  // namespace

// Every expected sequence below was printed by PyTorch 1.13 for the same schedule (by hand).
TEST_CASE(
    "OneCycleLR: PyTorch's learning rates and momenta, cos and linear, two and three phases") {
  SGD sgd({param({1.0})}, {.lr = 0.01, .momentum = 0.9});
  OneCycleLR cycle(sgd, 0.1, 10);
  check_schedule(
      sgd, cycle,
      {0.0040000000000000036, 0.052000000000000005, 0.1, 0.09504846320134738, 0.0811745653949763,
       0.06112620219362893, 0.03887419780637107, 0.0188258346050237, 0.004951936798652629, 4e-07},
      {0.95, 0.8999999999999999, 0.85, 0.854951556604879, 0.8688255099070633, 0.8888739533021842,
       0.9111260466978157, 0.9311744900929366, 0.945048443395121, 0.95});
  cycle.step();  // the step PyTorch still allows (its lr past the end of the cycle)
  CHECK_THROWS_WITH_AS(cycle.step(), doctest::Contains("stepped 11 times; total_steps is 10"),
                       ValueError);

  SGD sgd3({param({1.0})}, {.lr = 0.01, .momentum = 0.9});
  OneCycleLR three(sgd3, 0.1, 10, {.anneal_strategy = "linear", .three_phase = true});
  check_schedule(
      sgd3, three,
      {0.004, 0.052000000000000005, 0.1, 0.052000000000000005, 0.0040000000000000036, 0.00320008,
       0.00240016, 0.0016002400000000002, 0.0008003200000000002, 4.0000000000022656e-07},
      {0.95, 0.8999999999999999, 0.85, 0.8999999999999999, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95});

  Adam adam({param({1.0})}, {.lr = 0.01});  // Adam's momentum is its beta1
  OneCycleLR adam_cycle(adam, 0.02, 5);
  check_schedule(adam, adam_cycle,
                 {0.0007999999999999986, 0.019009692640269475, 0.012225240438725785,
                  0.00376516692100474, 8e-08},
                 {0.95, 0.854951556604879, 0.8888739533021842, 0.9311744900929366, 0.95});

  Adagrad adagrad({param({1.0})});
  CHECK_THROWS_WITH_AS(OneCycleLR(adagrad, 0.1, 10), doctest::Contains("Adagrad has none"),
                       ValueError);
  OneCycleLR no_momentum(adagrad, 0.1, 10, {.cycle_momentum = false});
  CHECK(adagrad.lr() == doctest::Approx(0.004));
  CHECK_THROWS_AS(OneCycleLR(sgd, 0.1, 10, {.anneal_strategy = "cosine"}), ValueError);
  CHECK_THROWS_AS(OneCycleLR(sgd, 0.1, 0), ValueError);
}

TEST_CASE("SequentialLR hands over at its milestones; ChainedScheduler multiplies the factors") {
  SGD sgd({param({1.0})}, {.lr = 0.5});
  LinearLR warmup(sgd, 0.1, 1.0, 3);  // changes the lr as it is made: 0.05
  ExponentialLR decay(sgd, 0.5);
  SequentialLR sequence(sgd, {warmup, decay}, {3});
  check_schedule(sgd, sequence,
                 {0.05, 0.19999999999999998, 0.35, 0.5, 0.25, 0.125, 0.0625, 0.03125});
  // Its state brings it back to the same place.
  const auto saved = sequence.state();
  sequence.step();
  sequence.set_state(saved);
  CHECK(sgd.lr() == doctest::Approx(0.03125));
  CHECK_THROWS_WITH_AS(SequentialLR(sgd, {warmup, decay}, {}),
                       doctest::Contains("2 schedulers take 1 milestones, got 0"), ValueError);
  SGD other({param({1.0})}, {.lr = 0.5});
  ExponentialLR elsewhere(other, 0.5);
  CHECK_THROWS_WITH_AS(SequentialLR(sgd, {warmup, elsewhere}, {3}),
                       doctest::Contains("scheduler 1 drives another optimizer"), ValueError);

  SGD sgd2({param({1.0})}, {.lr = 0.5});
  StepLR steps(sgd2, 2, 0.5);
  ExponentialLR decay2(sgd2, 0.9);
  ChainedScheduler chain(sgd2, {steps, decay2});
  check_schedule(sgd2, chain,
                 {0.5, 0.45, 0.2025, 0.18225000000000002, 0.08201250000000002, 0.07381125000000002,
                  0.03321506250000001});
}

TEST_CASE("add_param_group: a group added later trains with its own or the default lr") {
  const Tensor a = param({1.0}), b = param({1.0}), c = param({1.0});
  SGD sgd({a}, {.lr = 0.1});
  sgd.add_param_group({{b}});
  sgd.add_param_group({{c}, 1.0});
  CHECK(sgd.num_groups() == 3);
  CHECK(sgd.lr(1) == 0.1);
  CHECK(sgd.lr(2) == 1.0);
  for (const Tensor& p : {a, b, c}) set_grad(p, {2.0});
  sgd.step();
  CHECK(a.item() == doctest::Approx(0.8));
  CHECK(b.item() == doctest::Approx(0.8));
  CHECK(c.item() == doctest::Approx(-1.0));
  CHECK_THROWS_WITH_AS(sgd.add_param_group({{a}}), doctest::Contains("are the same tensor"),
                       ValueError);
  CHECK(sgd.num_groups() == 3);  // a refused group changes nothing
  // An optimizer with per-parameter state takes new parameters too.
  Adam adam({a}, {.lr = 0.1});
  adam.add_param_group({{b}});
  set_grad(b, {1.0});
  adam.step();
  CHECK(b.item() == doctest::Approx(0.7));  // Adam's first step: lr times the gradient's sign
}

TEST_CASE("state_dict and load_state_dict in memory: the steps go on as from where it was taken") {
  const auto run = [](Optimizer& opt, const Tensor& w, int steps) {
    for (int k = 0; k < steps; ++k) {
      set_grad(w, {w.item() * 2.0 - 1.0});
      opt.step();
    }
  };
  const Tensor w = param({3.0});
  Adam adam({w}, {.lr = 0.1});
  run(adam, w, 3);
  const OptimizerState saved = adam.state_dict();
  const double w_saved = w.item();
  run(adam, w, 4);
  const double w_after = w.item();
  CHECK(saved.steps == 3);
  CHECK(saved.buffers.at("exp_avg").at(0).item() != adam.state().at("exp_avg").at(0).item());
  w.set_data(full({1}, w_saved, {.dtype = kFloat64}));
  adam.load_state_dict(saved);
  run(adam, w, 4);
  CHECK(w.item() == w_after);  // the same bits
  SGD sgd({w}, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(sgd.load_state_dict(saved), doctest::Contains("the state is Adam's"),
                       ValueError);
  OptimizerState wrong = saved;
  wrong.buffers["exp_avg"][0] = zeros({2}, {.dtype = kFloat64});
  CHECK_THROWS_WITH_AS(adam.load_state_dict(wrong), doctest::Contains("has shape [2]"), ShapeError);
}

TEST_CASE("LinearLR warms the learning rate up linearly, then holds it") {
  const Tensor w = param({1.0});
  SGD sgd({w}, {.lr = 0.1});
  LinearLR warm(sgd, 0.25, 1.0, 3);
  CHECK(sgd.lr() == doctest::Approx(0.025));  // from the start
  const double expected[] = {0.05, 0.075, 0.1, 0.1};
  for (double lr : expected) {
    warm.step();
    CHECK(sgd.lr() == doctest::Approx(lr));
  }
  CHECK_THROWS_AS(LinearLR(sgd, 0.0), ValueError);
  CHECK_THROWS_AS(LinearLR(sgd, 0.5, 1.0, 0), ValueError);
}

TEST_CASE("ReduceLROnPlateau: patience, threshold, cooldown, min_lr; its state comes back") {
  const Tensor w = param({1.0});
  SGD sgd({w}, {.lr = 1.0});
  ReduceLROnPlateau plateau(sgd, {.factor = 0.5, .patience = 1, .cooldown = 1, .min_lr = 0.2});
  const double losses[] = {1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9};
  const double lrs[] = {1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2};
  for (std::size_t i = 0; i < std::size(losses); ++i) {
    plateau.step(losses[i]);
    INFO("epoch " << i + 1);
    CHECK(sgd.lr() == doctest::Approx(lrs[i]));
  }
  CHECK_THROWS_WITH_AS(plateau.step(), doctest::Contains("step needs the metric"), ValueError);
  CHECK_THROWS_AS(plateau.step(NAN), ValueError);
  // A copy of the state gives a twin that goes on exactly the same way.
  SGD sgd2({param({1.0})}, {.lr = 1.0});
  ReduceLROnPlateau twin(sgd2, {.factor = 0.5, .patience = 1, .cooldown = 1, .min_lr = 0.2});
  twin.set_state(plateau.state());
  CHECK(sgd2.lr() == doctest::Approx(0.2));
  for (double loss : {0.1, 0.2, 0.2, 0.2}) {
    plateau.step(loss);
    twin.step(loss);
    CHECK(sgd2.lr() == sgd.lr());
  }
  CHECK(twin.state() == plateau.state());
  auto broken = plateau.state();
  broken.erase("lr");
  CHECK_THROWS_WITH_AS(twin.set_state(broken), doctest::Contains("no finite 'lr'"), ValueError);
}

TEST_CASE("parameter groups: their own lr and weight decay, scheduled from their own base") {
  const Tensor a = param({1.0}), b = param({1.0}), c = param({1.0});
  SGD sgd({{{a, b}}, {{c}, 0.5, 0.1}}, {.lr = 0.1});
  REQUIRE(sgd.num_groups() == 2);
  CHECK(sgd.parameters().size() == 3);
  CHECK(sgd.group_of(2) == 1);
  CHECK(sgd.lr(1) == 0.5);
  CHECK(sgd.weight_decay(0) == 0.0);
  CHECK(sgd.weight_decay(1) == 0.1);
  for (const Tensor& p : {a, b, c}) set_grad(p, {1.0});
  sgd.step();
  CHECK(testing::flat(a)[0] == doctest::Approx(0.9));
  CHECK(testing::flat(c)[0] == doctest::Approx(1.0 - 0.5 * (1.0 + 0.1)));
  StepLR schedule(sgd, 1, 0.5);
  schedule.step();
  CHECK(sgd.lr(0) == doctest::Approx(0.05));
  CHECK(sgd.lr(1) == doctest::Approx(0.25));
  CHECK(schedule.state().at("base_lr.1") == 0.5);
  sgd.set_lr(1, 0.3);
  CHECK(sgd.lr(1) == 0.3);
  CHECK_THROWS_AS(sgd.set_lr(2, 0.1), IndexError);
  CHECK_THROWS_WITH_AS(SGD({ParamGroup{{a}}, ParamGroup{{a}}}, {}),
                       doctest::Contains("are the same tensor"), ValueError);
  CHECK_THROWS_WITH_AS(Adam({{{a}, -1.0}}), doctest::Contains("group 0's learning rate"),
                       ValueError);
  // Adam with two groups: each parameter moves by its group's lr (the first step is lr sign(g)).
  const Tensor x = param({0.0}), y = param({0.0});
  Adam adam({{{x}}, {{y}, 0.01}}, {.lr = 0.1});
  set_grad(x, {2.0});
  set_grad(y, {2.0});
  adam.step();
  CHECK(testing::flat(x)[0] == doctest::Approx(-0.1).epsilon(1e-6));
  CHECK(testing::flat(y)[0] == doctest::Approx(-0.01).epsilon(1e-6));
}

TEST_CASE("optimizer state that decays below float32's normal range is flushed to zero") {
  // A weight whose gradient stays 0: its momentum falls by 0.9 a step, to 0.9^900 = 6e-42 (a
  // denormal) after 900 steps, which is slow arithmetic; the optimizers flush it to 0 instead.
  Tensor w = zeros({4}).requires_grad_();
  SGD sgd({w}, {.lr = 0.1, .momentum = 0.9});
  w.set_grad(ones({4}));
  sgd.step();  // momentum 1
  w.set_grad(zeros({4}));
  for (int s = 0; s < 900; ++s) sgd.step();
  const Tensor momentum = sgd.state().at("momentum_buffer").at(0);
  for (float v : momentum.value<float>()) CHECK(v == 0.0f);
  // the flush ends with the step: this thread's arithmetic is IEEE again
  volatile float tiny = 1e-38f;
  CHECK(tiny * 0.01f != 0.0f);
}
