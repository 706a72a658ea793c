// gradcheck itself: it must pass right gradients and catch wrong ones, naming the worst entry.
#include <doctest/doctest.h>

#include "autograd/gradcheck.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// cube with a deliberately wrong derivative: 3x^2 everywhere except the entry at `bad`.
struct WrongCube final : Node {
  explicit WrongCube(std::size_t bad) : bad_(bad) {}
  std::string_view name() const override { return "wrong_cube"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    Tensor d = pow(saved(0), 2.0) * 3.0;
    d.mutable_value<double>().data()[bad_] += 0.5;
    grads[0] = g * d;
  }
  std::size_t bad_;
};

Tensor wrong_cube(const Tensor& x, std::size_t bad) {
  Tensor out = Tensor(xt::xarray<double>(xt::pow(x.value<double>(), 3)));
  if (auto* node = record<WrongCube>(out, {x}, bad)) node->save({x});
  return out;
}
}  // namespace

TEST_CASE("gradcheck reports the worst entry of a wrong derivative") {
  const Tensor x = testing::f64({{0.5, -1.0}, {2.0, 1.5}}, true);
  const GradcheckReport report =
      gradcheck([](const std::vector<Tensor>& in) { return wrong_cube(in[0], 2); }, {x});
  CHECK_FALSE(report.passed);
  CHECK(report.method == "full Jacobian");
  CHECK(report.input_index == "[1, 0]");
  CHECK(report.output_index == "[1, 0]");
  CHECK(report.numeric == doctest::Approx(12.0).epsilon(1e-6));
  CHECK(report.analytic == doctest::Approx(12.5));
  CHECK(report.str().find("FAILED") != std::string::npos);
}

TEST_CASE("gradcheck uses random projections for large inputs, and they catch errors too") {
  Generator gen(1);
  const Tensor x = randn({200, 150}, {.dtype = kFloat64, .requires_grad = true}, gen);
  const GradcheckReport good =
      gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]) * in[0]; }, {x});
  CHECK(good.method == "random projections");
  CHECK_GRADCHECK(good);
  const GradcheckReport bad =
      gradcheck([](const std::vector<Tensor>& in) { return wrong_cube(in[0], 1234); }, {x});
  CHECK(bad.method == "random projections");
  CHECK_FALSE(bad.passed);
}

namespace {
// cube whose backward is right in value but computes 3x^2 outside the graph: its first
// derivative passes, its second derivative (missing the 6x term) must not.
struct DetachedCube final : Node {
  std::string_view name() const override { return "detached_cube"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor slope(xt::xarray<double>(3.0 * xt::square(saved(0).value<double>())));
    grads[0] = g * slope;
  }
};

Tensor detached_cube(const Tensor& x) {
  Tensor out = Tensor(xt::xarray<double>(xt::pow(x.value<double>(), 3)));
  if (auto* node = record<DetachedCube>(out, {x})) node->save({x});
  return out;
}
}  // namespace

TEST_CASE("gradgradcheck catches a backward that is right but not differentiable") {
  const Tensor x = testing::f64({0.5, -1.0, 2.0}, true);
  const TensorFn f = [](const std::vector<Tensor>& in) { return detached_cube(in[0]); };
  CHECK_GRADCHECK(gradcheck(f, {x}));
  CHECK_FALSE(gradgradcheck(f, {x}).passed);
  const TensorFn right = [](const std::vector<Tensor>& in) { return pow(in[0], 3.0); };
  CHECK_GRADCHECK(gradgradcheck(right, {x}));
}

TEST_CASE("gradcheck refuses float32 inputs and functions of nothing") {
  const Tensor x = tensor({1.0, 2.0}, {.requires_grad = true});
  CHECK_THROWS_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {x}), DtypeError);
  const Tensor y = testing::f64({1.0});
  CHECK_THROWS_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {y}), ValueError);
}

TEST_CASE("gradgradcheck failures say gradgradcheck and name the input and entry") {
  const Tensor x = testing::f64({0.5, -1.0, 2.0}, true);
  const Tensor y = testing::f64({{1.0, 2.0}}, true);
  const TensorFn f = [](const std::vector<Tensor>& in) { return detached_cube(in[0]) * sum(in[1]); };
  const GradcheckReport r = gradgradcheck(f, {x, y});
  CHECK_FALSE(r.passed);
  CHECK(r.check == "gradgradcheck");
  CHECK(r.str().rfind("gradgradcheck FAILED", 0) == 0);
  CHECK(r.output_index.rfind("d/d input 0 [", 0) == 0);  // the cube's second derivative, x's
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return wrong_cube(in[0], 0); }, {x})
            .str()
            .rfind("gradcheck FAILED", 0) == 0);
}

TEST_CASE("jvpcheck: forward mode along random directions, against finite differences") {
  const Tensor x = testing::f64({{0.5, -1.0}, {2.0, 1.5}}, true), y = testing::f64({3, -2}, true);
  const GradcheckReport good = jvpcheck(
      [](const std::vector<Tensor>& in) { return tanh(in[0]) * in[1] + pow(in[0], 3.0); }, {x, y});
  CHECK_GRADCHECK(good);
  CHECK(good.check == "jvpcheck");
  CHECK(good.method == "random directions");
  CHECK(good.compared == 8 * (4 + 1));  // 8 directions: 4 entries and the identity each
  // A wrong derivative at one entry: J u is off there along every direction.
  const GradcheckReport bad =
      jvpcheck([](const std::vector<Tensor>& in) { return wrong_cube(in[0], 2); }, {x});
  CHECK_FALSE(bad.passed);
  CHECK(bad.output_index == "[1, 0]");
  CHECK(bad.str().find("jvpcheck FAILED") != std::string::npos);
}
