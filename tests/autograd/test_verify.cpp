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
