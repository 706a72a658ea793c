#include <doctest/doctest.h>

#include "autograd/grad_mode.hpp"
#include "autograd/verify.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

TEST_CASE("verify_gradients accepts right gradients and names the wrong parameter and entry") {
  const Tensor w = testing::f64({{0.5, -1.0}, {2.0, 0.25}});
  const Tensor x = testing::f64({1.0, 3.0});
  const TensorFn loss = [&](const std::vector<Tensor>& p) {
    return sum(pow(matmul(p[0], x), 2.0));
  };
  // d/dW sum((W x)^2) = 2 (W x) x^T
  xt::xarray<double> wx = xt::zeros<double>({2});
  for (std::size_t i = 0; i < 2; ++i)
    wx(i) = w.value<double>()(i, 0) * 1.0 + w.value<double>()(i, 1) * 3.0;
  xt::xarray<double> right = xt::zeros<double>({2, 2});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 2; ++j) right(i, j) = 2 * wx(i) * x.value<double>()(j);
  const VerifyReport ok = verify_gradients(loss, {{"W", w}}, {Tensor(right)});
  INFO(ok.str());
  CHECK(ok.passed);
  CHECK(ok.parameters[0].rel_error < 1e-14);
  CHECK(ok.parameters[0].numeric_rel_error < 1e-9);

  xt::xarray<double> wrong = right;
  wrong(1, 0) *= 1.01;
  const VerifyReport bad = verify_gradients(loss, {{"W", w}}, {Tensor(wrong)});
  CHECK_FALSE(bad.passed);
  CHECK(bad.first_failure()->name == "W");
  CHECK(bad.parameters[0].index == "[1, 0]");
  CHECK(bad.parameters[0].tape == doctest::Approx(right(1, 0)));
  CHECK(bad.parameters[0].numeric == doctest::Approx(right(1, 0)));
  CHECK_FALSE(bad.parameters[0].matches_tape);
  CHECK(bad.str().find("worst entry [1, 0]") != std::string::npos);

  CHECK_THROWS_AS(verify_gradients(loss, {{"W", w}}, {testing::f64({1.0})}), ShapeError);
  CHECK_THROWS_AS(verify_gradients(loss, {{"W", w}}, {}), ValueError);
}

TEST_CASE("verify_gradients works inside a NoGradGuard: it turns recording on for its own work") {
  const Tensor w = testing::f64({1.0, -2.0});
  const TensorFn loss = [](const std::vector<Tensor>& p) { return sum(p[0] * p[0]); };
  NoGradGuard no_grad;
  const VerifyReport report = verify_gradients(loss, {{"w", w}}, {testing::f64({2.0, -4.0})});
  INFO(report.str());
  CHECK(report.passed);
  CHECK_FALSE(GradMode::is_enabled());  // and gives the caller's mode back
}

TEST_CASE("verify_gradients says what kind of mistake a wrong gradient looks like") {
  Generator gen(12);
  const Tensor truth = randn({3, 4}, {.dtype = kFloat64}, gen);
  const Tensor square = randn({3, 3}, {.dtype = kFloat64}, gen);
  const auto says = [](const Tensor& claim, const Tensor& t) {
    return diagnose_gradient(claim, t);
  };
  CHECK(says(truth, truth).empty());
  CHECK(says(truth * 0.25, truth).find("a constant factor: truth = 4 x claim") == 0);
  CHECK(says(truth * 0.25, truth).find("4 times too small") != std::string::npos);
  CHECK(says(truth * 64.0, truth).find("a missing 1/64, as a mean over 64 samples") !=
        std::string::npos);
  CHECK(says(truth * 2.0, truth).find("2 times too large") != std::string::npos);
  CHECK(says(-truth, truth) == "the sign is flipped: truth = -claim");
  CHECK(says(transpose(square), square) == "transposed: the claim is the truth's transpose");
  CHECK(says(zeros_like(truth), truth).find("the claim is all zeros") != std::string::npos);
  Tensor holes = truth.detach();
  {
    auto a = truth.value<double>();
    a(1, 2) = 0;
    a(0, 0) = 0;
    holes = Tensor(a);
  }
  CHECK(says(holes, truth) == "zeros where the truth is not (2 of 12 entries), the others right");
  // The source document's mistake: sigma'(z) missing, one factor per output unit (row).
  const Tensor z = randn({3, 1}, {.dtype = kFloat64}, gen);
  const Tensor tanh_prime = 1.0 - tanh(z) * tanh(z);
  const std::string t = says(truth, truth * tanh_prime);
  CHECK(t.find("an entrywise factor in (0, 1]: as tanh'(z)") == 0);
  CHECK(t.find("the same along each row") != std::string::npos);
  CHECK(says(truth, truth * (sigmoid(z) * (1.0 - sigmoid(z)))).find("(0, 0.25]: as sigmoid'(z)") !=
        std::string::npos);
  const Tensor mask = reshape(testing::f64({1.0, 0.0, 1.0}), {3, 1});
  CHECK(says(truth, truth * mask).find("0 or 1: a missing mask, as relu'(z)") != std::string::npos);
  CHECK(says(truth + 1.0, truth) == "none of the known kinds");
  // And in the report of verify_gradients.
  const Tensor w = testing::f64({{0.5, -1.0}, {2.0, 0.25}});
  const TensorFn loss = [](const std::vector<Tensor>& p) { return sum(p[0] * p[0]) * 0.5; };
  const VerifyReport report = verify_gradients(loss, {{"W", w}}, {w * -1.0});
  CHECK_FALSE(report.passed);
  CHECK(report.parameters[0].diagnosis == "the sign is flipped: truth = -claim");
  CHECK(report.str().find("looks like: the sign is flipped") != std::string::npos);
}
