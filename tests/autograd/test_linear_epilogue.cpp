// linear with an activation in its epilogue: against a plain loop in double, against the unfused
// ops (the same arithmetic: equal to the last bit), float32 against float64, the NaN convention,
// and a wrong name. Gradcheck and gradgradcheck are lines of the op table.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/blas.hpp"
#include "autograd/compare.hpp"
#include "autograd/engine.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {

constexpr Epilogue kActivations[] = {Epilogue::relu, Epilogue::tanh, Epilogue::sigmoid};

double activate(Epilogue act, double z) {
  switch (act) {
    case Epilogue::relu:
      return z > 0 ? z : 0;
    case Epilogue::tanh:
      return std::tanh(z);
    case Epilogue::sigmoid:
      return 1 / (1 + std::exp(-z));
    case Epilogue::none:
      break;
  }
  return z;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return worst_entry(cast(a, kFloat64).value<double>(), cast(b, kFloat64).value<double>())
      .abs_error;
}

Tensor unfused(Epilogue act, const Tensor& z) {
  switch (act) {
    case Epilogue::relu:
      return relu(z);
    case Epilogue::tanh:
      return tanh(z);
    case Epilogue::sigmoid:
      return sigmoid(z);
    case Epilogue::none:
      break;
  }
  return z;
}

// act(x W^T + b) with plain loops in double, x (m, k) of dtype T.
template <class T>
std::vector<double> reference(Epilogue act, const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::size_t m = x.size(0), k = x.size(1), n = w.size(0);
  const T* px = x.value<T>().data();
  const T* pw = w.value<T>().data();
  std::vector<double> y(m * n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double z = b.defined() ? double(b.value<T>()(j)) : 0.0;
      for (std::size_t t = 0; t < k; ++t) z += double(px[i * k + t]) * double(pw[j * k + t]);
      y[i * n + j] = activate(act, z);
    }
  return y;
}

}  // namespace

TEST_CASE("fused linear: float32 and float64 against a double loop, odd shapes and batch 1") {
  INFO("float32 backend: " << gemm_backend());
  Generator gen(21);
  const std::size_t shapes[][3] = {
      {1, 256, 784}, {7, 13, 5}, {33, 65, 129}, {1, 1, 1}, {64, 10, 128}};
  for (const auto& s : shapes)
    for (Epilogue act : kActivations)
      for (bool with_bias : {true, false}) {
        const std::size_t m = s[0], n = s[1], k = s[2];
        INFO(m << " x " << n << " x " << k << " " << epilogue_name(act)
               << (with_bias ? " with bias" : " without bias"));
        const Tensor x = randn({m, k}, {.dtype = kFloat64}, gen);
        const Tensor w = randn({n, k}, {.dtype = kFloat64}, gen);
        const Tensor b = with_bias ? randn({n}, {.dtype = kFloat64}, gen) : Tensor();
        const auto exact = reference<double>(act, x, w, b);
        const auto y64 = linear(x, w, b, act).value<double>();
        // float32: the product's rounding bound (2 K eps sum |x w|) is about 1e-4 here; the
        // activations are 1-Lipschitz, so the same bound holds after them.
        const Tensor x32 = cast(x, kFloat32), w32 = cast(w, kFloat32);
        const Tensor b32 = with_bias ? cast(b, kFloat32) : Tensor();
        const auto exact32 = reference<float>(act, x32, w32, b32);
        const auto y32 = linear(x32, w32, b32, act).value<float>();
        REQUIRE(y64.size() == exact.size());
        REQUIRE(y32.size() == exact.size());
        double worst64 = 0, worst32 = 0;
        for (std::size_t i = 0; i < exact.size(); ++i) {
          worst64 = std::max(worst64, std::abs(y64.data()[i] - exact[i]));
          worst32 = std::max(worst32, std::abs(double(y32.data()[i]) - exact32[i]));
        }
        CHECK(worst64 <= 1e-12 * static_cast<double>(k));
        CHECK(worst32 <= 2e-6 * static_cast<double>(k));
      }
}

TEST_CASE("fused linear: the same values and gradients as the activation after linear, exactly") {
  Generator gen(22);
  for (Dtype dtype : {kFloat64, kFloat32})
    for (Epilogue act : kActivations)
      for (bool one_sample : {false, true}) {
        INFO(epilogue_name(act) << (dtype == kFloat64 ? " float64" : " float32")
                                << (one_sample ? " one sample" : " batch"));
        const TensorOptions o{.dtype = dtype, .requires_grad = true};
        const Tensor x = randn(one_sample ? Shape{6} : Shape{5, 6}, o, gen);
        const Tensor w = randn({4, 6}, o, gen), b = randn({4}, o, gen);
        const Tensor g = randn(one_sample ? Shape{4} : Shape{5, 4}, {.dtype = dtype}, gen);
        const Tensor fused = linear(x, w, b, act);
        const Tensor plain = unfused(act, linear(x, w, b));
        const auto expected = grad({sum(mul(plain, g))}, {x, w, b});
        const auto got = grad({sum(mul(fused, g))}, {x, w, b});
        CHECK(max_abs_diff(fused, plain) == 0);
        for (std::size_t i = 0; i < 3; ++i) CHECK(max_abs_diff(got[i], expected[i]) == 0);
      }
}

TEST_CASE("fused linear: relu keeps NaN and passes its gradient, as the relu op; other checks") {
  for (Dtype dtype : {kFloat64, kFloat32}) {
    INFO((dtype == kFloat64 ? "float64" : "float32"));
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor x = cast(testing::f64({{1.0, 1.0}}), dtype);
    const Tensor w = cast(testing::f64({{1.0, 0.0}, {0.0, -1.0}}), dtype);
    const Tensor b = cast(testing::f64({nan, 0.0}), dtype).requires_grad_();
    const Tensor y = cast(linear(x, w, b, Epilogue::relu), kFloat64);  // z = (NaN, -1)
    CHECK(std::isnan(y.value<double>()(0, 0)));
    CHECK(y.value<double>()(0, 1) == 0.0);
    sum(y).backward();
    const Tensor db = cast(b.grad(), kFloat64);
    CHECK(db.value<double>()(0) == 1.0);  // at NaN the gradient passes, as relu's
    CHECK(db.value<double>()(1) == 0.0);  // the clamped unit gets nothing
    CHECK(y.grad_fn()->name() == "cast");
    for (Epilogue act : {Epilogue::tanh, Epilogue::sigmoid}) {  // NaN stays NaN
      const Tensor t = cast(linear(x, w, b.detach(), act), kFloat64);
      CHECK(std::isnan(t.value<double>()(0, 0)));
      CHECK(std::isfinite(t.value<double>()(0, 1)));
    }
  }
  const Tensor x = testing::f64({{1.0, 2.0}}), w = testing::f64({{1.0, 0.0}}, true);
  CHECK(linear(x, w, {}, Epilogue::none).grad_fn()->name() == "linear");
  CHECK(linear(x, w, {}, Epilogue::relu).grad_fn()->name() == "linear+relu");
  CHECK(epilogue_from_name("tanh") == Epilogue::tanh);
  CHECK_THROWS_WITH_AS(
      epilogue_from_name("gelu"),
      doctest::Contains("epilogue_from_name: no fused activation \"gelu\"; expected one of none"),
      ValueError);
  CHECK_THROWS_WITH_AS(linear(x, testing::f64({{1.0, 2.0, 3.0}}), {}, Epilogue::tanh),
                       doctest::Contains("linear: input [1, 2], weight [1, 3]"), ShapeError);
}
