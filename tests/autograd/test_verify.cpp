#include <doctest/doctest.h>

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
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
  // The search finds the flipped sign on the graph: nearest the loss, at the product with 0.5.
  REQUIRE(report.mistakes.size() == 1);
  CHECK(report.mistakes[0].kind == MistakeKind::sign);
  CHECK(report.mistakes[0].node == "mul #2");
  CHECK(report.parameters[0].diagnosis.find("the sign flipped in the gradient mul #2") == 0);
  CHECK(report.str().find("one mistake reproduces every claim") != std::string::npos);
  // Without the search, the values' pattern.
  const VerifyReport plain =
      verify_gradients(loss, {{"W", w}}, {w * -1.0}, {.find_mistakes = false});
  CHECK(plain.parameters[0].diagnosis == "the sign is flipped: truth = -claim");
  CHECK(plain.mistakes.empty());
}

namespace {
// (P - Y) / B for the mean softmax cross-entropy of `logits` with `labels`, by hand.
Tensor cross_entropy_gradient(const Tensor& logits, const std::vector<std::int64_t>& labels) {
  xt::xarray<double> g = softmax(logits, 1).value<double>();
  for (std::size_t i = 0; i < labels.size(); ++i) g(i, static_cast<std::size_t>(labels[i])) -= 1;
  return Tensor(xt::xarray<double>(g / static_cast<double>(labels.size())));
}
}  // namespace

TEST_CASE("verify_gradients: a residual's skip path left out of a hand derivation is named") {
  // H0 = X W0^T + b0, H1 = H0 + tanh(H0 W1^T + b1), logits = H1 W2^T + b2, mean cross-entropy.
  Generator gen(5);
  const std::size_t B = 6;
  const Tensor x = randn({B, 3}, {.dtype = kFloat64}, gen);
  const std::vector<std::int64_t> labels = {0, 2, 1, 1, 0, 2};
  const Tensor y = from_vector(labels, {B});
  std::vector<std::pair<std::string, Tensor>> params = {
      {"W0", randn({4, 3}, {.dtype = kFloat64}, gen)},
      {"b0", randn({4}, {.dtype = kFloat64}, gen)},
      {"W1", randn({4, 4}, {.dtype = kFloat64}, gen)},
      {"b1", randn({4}, {.dtype = kFloat64}, gen)},
      {"W2", randn({3, 4}, {.dtype = kFloat64}, gen)},
      {"b2", randn({3}, {.dtype = kFloat64}, gen)}};
  const TensorFn loss = [&](const std::vector<Tensor>& p) {
    const Tensor h0 = linear(x, p[0], p[1]);
    const Tensor h1 = h0 + tanh(linear(h0, p[2], p[3]));
    return softmax_cross_entropy(linear(h1, p[4], p[5]), y);
  };
  // By hand, with the skip's term in dH0 or without it.
  const auto derive = [&](bool with_skip) {
    NoGradGuard by_hand;
    const Tensor &W0 = params[0].second, &b0 = params[1].second, &W1 = params[2].second,
                 &b1 = params[3].second, &W2 = params[4].second, &b2 = params[5].second;
    const Tensor h0 = matmul(x, transpose(W0)) + b0;
    const Tensor a = tanh(matmul(h0, transpose(W1)) + b1);
    const Tensor h1 = h0 + a;
    const Tensor g2 = cross_entropy_gradient(matmul(h1, transpose(W2)) + b2, labels);
    const Tensor dh1 = matmul(g2, W2);
    const Tensor dz1 = dh1 * (1.0 - a * a);
    const Tensor dh0 = with_skip ? dh1 + matmul(dz1, W1) : matmul(dz1, W1);
    return std::vector<Tensor>{matmul(transpose(dh0), x),  sum(dh0, {0}),
                               matmul(transpose(dz1), h0), sum(dz1, {0}),
                               matmul(transpose(g2), h1),  sum(g2, {0})};
  };
  CHECK(verify_gradients(loss, params, derive(true)).passed);
  const VerifyReport report = verify_gradients(loss, params, derive(false));
  INFO(report.str());
  CHECK_FALSE(report.passed);
  REQUIRE(report.mistakes.size() == 1);
  const Mistake& m = report.mistakes[0];
  CHECK(m.kind == MistakeKind::path_omitted);
  CHECK(m.node == "add");
  CHECK(m.what.find("the output of linear #1 is used by 2 ops (linear #2, add)") !=
        std::string::npos);
  CHECK(m.explains == std::vector<std::string>{"W0", "b0"});
  CHECK(m.kept == std::vector<std::string>{"W1", "b1", "W2", "b2"});
  CHECK(m.unexplained.empty());
}

TEST_CASE("verify_gradients: a tied weight's gradient with one of its two uses left out is named") {
  // E is the embedding and the output layer: logits = tanh(E[idx]) E^T, mean cross-entropy.
  Generator gen(9);
  const std::vector<std::int64_t> idx = {3, 0, 3, 1, 4}, labels = {1, 4, 0, 2, 3};
  const Tensor indices = from_vector(idx, {5}), y = from_vector(labels, {5});
  const std::vector<std::pair<std::string, Tensor>> params = {
      {"E", randn({5, 4}, {.dtype = kFloat64}, gen)}};
  const TensorFn loss = [&](const std::vector<Tensor>& p) {
    return softmax_cross_entropy(linear(tanh(embedding(p[0], indices)), p[0]), y);
  };
  const auto derive = [&](bool with_lookup) {
    NoGradGuard by_hand;
    const Tensor& E = params[0].second;
    xt::xarray<double> rows = xt::zeros<double>({idx.size(), std::size_t{4}});
    for (std::size_t i = 0; i < idx.size(); ++i)
      for (std::size_t j = 0; j < 4; ++j)
        rows(i, j) = E.value<double>()(static_cast<std::size_t>(idx[i]), j);
    const Tensor h = tanh(Tensor(rows));
    const Tensor g = cross_entropy_gradient(matmul(h, transpose(E)), labels);
    xt::xarray<double> dE = matmul(transpose(g), h).value<double>();  // the output layer's use
    const xt::xarray<double> de = (matmul(g, E) * (1.0 - h * h)).value<double>();
    if (with_lookup)  // the lookup's use: each looked-up row gets its sample's gradient
      for (std::size_t i = 0; i < idx.size(); ++i)
        for (std::size_t j = 0; j < 4; ++j) dE(static_cast<std::size_t>(idx[i]), j) += de(i, j);
    return std::vector<Tensor>{Tensor(dE)};
  };
  CHECK(verify_gradients(loss, params, derive(true)).passed);
  const VerifyReport report = verify_gradients(loss, params, derive(false));
  INFO(report.str());
  REQUIRE(report.mistakes.size() == 1);
  CHECK(report.mistakes[0].kind == MistakeKind::path_omitted);
  CHECK(report.mistakes[0].node == "embedding");
  CHECK(report.mistakes[0].what.find("E is used by 2 ops (embedding, linear)") !=
        std::string::npos);
  CHECK(report.parameters[0].diagnosis.find("a path left out") == 0);
}

// ---- Jacobians, Hessians and Hessian-vector products derived by hand ----------------------------

namespace {
// R^3 -> R^3 with a Jacobian that is not symmetric: (x0 x1, sin-free tanh(x2), x0^2 x2).
Tensor not_symmetric(const Tensor& x) {
  const auto e = [&](std::ptrdiff_t i) { return select(x, 0, i); };
  return stack({mul(e(0), e(1)), tanh(e(2)), mul(pow(e(0), 2.0), e(2))});
}
Tensor not_symmetric_jacobian(double a, double b, double c) {
  const double t = std::tanh(c);
  return testing::f64({{b, a, 0}, {0, 0, 1 - t * t}, {2 * a * c, 0, a * a}});
}
}  // namespace

TEST_CASE("verify_jacobian: a right Jacobian agrees; wrong ones are named by kind") {
  const Tensor x = testing::f64({0.7, -1.3, 0.4});
  const Tensor J = not_symmetric_jacobian(0.7, -1.3, 0.4);
  const DerivativeVerdict right = verify_jacobian(not_symmetric, x, J);
  CHECK(right);
  CHECK(right.numeric_rel_error < 1e-9);
  CHECK(right.diagnosis.empty());
  CHECK(right.str().find("hand-derived jacobian: agrees") != std::string::npos);
  const auto kind = [&](const Tensor& claim) {
    const DerivativeVerdict v = verify_jacobian(not_symmetric, x, claim);
    CHECK_FALSE(v);
    CHECK_FALSE(v.matches_numeric);
    return v.diagnosis;
  };
  CHECK(kind(transpose(J, 0, 1)).find("transposed") != std::string::npos);
  CHECK(kind(neg(J)).find("sign is flipped") != std::string::npos);
  CHECK(kind(mul(J, 0.5)).find("a constant factor: truth = 2 x claim") != std::string::npos);
  CHECK(kind(mul(add(J, transpose(J, 0, 1)), 0.5)).find("symmetric part (J + J^T) / 2") !=
        std::string::npos);
  // The worst entry is named with the Jacobian's index (output, then input).
  const DerivativeVerdict one =
      verify_jacobian(not_symmetric, x, add(J, testing::f64({{0, 0, 0}, {0, 0, 0}, {0, 0.25, 0}})));
  CHECK(one.index == "[2, 1]");
  CHECK(one.claimed == doctest::Approx(0.25));
  CHECK(std::abs(one.tape) < 1e-15);
  CHECK(std::abs(one.numeric) < 1e-9);
}

TEST_CASE("verify_hessian and verify_hvp: x^T A x, and the Gauss-Newton part taken for the whole") {
  const Tensor A = testing::f64({{1, 2, 0}, {-1, 3, 0.5}, {0, 4, -2}});
  const auto quadratic = [&](const Tensor& x) {
    return sum(mul(x, reshape(mm(A, reshape(x, {3, 1})), {3})));
  };
  const Tensor x = testing::f64({0.3, -0.2, 1.1});
  const Tensor H = add(A, transpose(A, 0, 1));
  CHECK(verify_hessian(quadratic, x, H));
  const DerivativeVerdict half = verify_hessian(quadratic, x, A);
  CHECK_FALSE(half);
  CHECK(half.diagnosis.find("half of the Hessian") != std::string::npos);
  CHECK(half.str().find("looks like: half of the Hessian") != std::string::npos);
  const Tensor v = testing::f64({1, -1, 2});
  const Tensor Hv = reshape(mm(H, reshape(v, {3, 1})), {3});
  CHECK(verify_hvp(quadratic, x, v, Hv));
  const DerivativeVerdict flipped = verify_hvp(quadratic, x, v, neg(Hv));
  CHECK_FALSE(flipped);
  CHECK(flipped.diagnosis.find("sign is flipped") != std::string::npos);

  // loss(model(x)) with model x -> tanh(W x) and the cross-entropy of class 1: its Hessian is
  // J^T H_loss J (Gauss-Newton) plus the tanh's second derivatives weighted by dloss/dz.
  const Tensor W = testing::f64({{0.5, -1, 0.3}, {1.2, 0.4, -0.7}, {-0.3, 0.8, 0.9}, {1, 1, -1}});
  const auto model = [&](const Tensor& t) { return tanh(reshape(mm(W, reshape(t, {3, 1})), {4})); };
  const auto loss = [](const Tensor& z) { return neg(select(log_softmax(z, 0), 0, 1)); };
  const auto whole = [&](const Tensor& t) { return loss(model(t)); };
  const Tensor truth = hessian(whole, x);
  const Tensor J = jacobian(model, x);
  const Tensor gauss_newton = mm(transpose(J, 0, 1), mm(hessian(loss, model(x)), J));
  CHECK(verify_hessian(model, loss, x, truth));
  const DerivativeVerdict gn = verify_hessian(model, loss, x, gauss_newton);
  CHECK_FALSE(gn);
  CHECK(gn.diagnosis.find("Gauss-Newton part") != std::string::npos);
  // Without the model given apart the same claim is only wrong.
  CHECK(verify_hessian(whole, x, gauss_newton).diagnosis.find("Gauss-Newton") == std::string::npos);
}

TEST_CASE("verify_jacobian, verify_hessian: a claim of the wrong shape or a float32 x is refused") {
  const Tensor x = testing::f64({0.7, -1.3, 0.4});
  CHECK_THROWS_WITH_AS(verify_jacobian(not_symmetric, x, testing::f64({1, 2, 3})),
                       "verify_jacobian: the claim is [3]; expected [3, 3] (f(x).shape + x.shape)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(
      verify_hessian([](const Tensor& t) { return sum(t); }, x, testing::f64({1, 2, 3})),
      "verify_hessian: the claim is [3]; expected [3, 3] (x.shape + x.shape)", ShapeError);
  CHECK_THROWS_AS(verify_jacobian(not_symmetric, cast(x, kFloat32), testing::f64({1})), DtypeError);
}
