// The source document's formulas, checked: the corrected closed forms agree with the tape and with
// finite differences to 1e-10 for networks of 1 to 4 layers, every activation, batch 1 and
// batches; the document's literal question-2 rule is caught where it is wrong.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/verify.hpp"
#include "examples/walkthrough/closed_form.hpp"
#include "nn/activation.hpp"
#include "nn/loss.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace walkthrough;
using nn::activation_names;
using nn::make_activation;

namespace {

struct Problem {
  std::vector<DenseLayer> layers;
  xt::xarray<double> x;
  Tensor y;  // int64

  Network net(double lr = 0.1) const { return Network(layers, x, y, lr); }
};

// A random network of `widths` (input first, classes last), with pre-activations at least
// `margin` away from 0, so that finite differences never step across a kink of relu or elu.
Problem random_problem(const std::vector<std::size_t>& widths, const std::string& activation,
                       std::size_t batch, std::uint64_t seed) {
  for (std::uint64_t attempt = 0;; ++attempt) {
    Generator gen(seed * 1000 + attempt);
    Problem p;
    for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
      const double scale = 1.5 / std::sqrt(static_cast<double>(widths[l]));
      p.layers.push_back(
          {randn({widths[l + 1], widths[l]}, {.dtype = kFloat64}, gen).value<double>() * scale,
           randn({widths[l + 1]}, {.dtype = kFloat64}, gen).value<double>() * 0.5,
           l + 2 < widths.size() ? activation : "identity"});
    }
    p.x = randn({batch, widths[0]}, {.dtype = kFloat64}, gen).value<double>();
    std::vector<std::int64_t> labels(batch);
    for (std::size_t i = 0; i < batch; ++i)
      labels[i] = static_cast<std::int64_t>((i * 7 + seed) % widths.back());
    p.y = from_vector(labels, {batch});
    const BackpropTrace t = closed_form_backprop(p.net());
    double closest = INFINITY;
    for (std::size_t l = 0; l + 1 < t.z.size(); ++l)
      for (double v : t.z[l]) closest = std::min(closest, std::abs(v));
    if (closest > 0.02) return p;
  }
}

VerifyReport verify(const Problem& p, const BackpropTrace& closed) {
  return verify_trace(p.net(), closed);
}

const std::vector<std::vector<std::size_t>> kShapes = {
    {5, 3}, {5, 4, 3}, {4, 5, 4, 3}, {4, 5, 3, 4, 3}};

}  // namespace

TEST_CASE(
    "the corrected formulas equal the tape and finite differences (1-4 layers, every activation, "
    "batch 1 and 6)") {
  for (const std::string& act : activation_names())
    for (const auto& widths : kShapes)
      for (std::size_t batch : {1, 6}) {
        const Problem p = random_problem(widths, act, batch, widths.size() + batch);
        INFO(act << ", " << widths.size() - 1 << " layers, batch " << batch);
        const BackpropTrace closed = closed_form_backprop(p.net());
        const BackpropTrace tape = tape_backprop(p.net());
        for (const QuantityDifference& d : compare_traces(closed, tape).differences) {
          INFO(d.quantity << "_" << d.layer << " differs by " << d.max_abs << " at " << d.index);
          CHECK(d.rel <= 1e-10);
        }
        const VerifyReport report = verify(p, closed);
        INFO(report.str());
        CHECK(report.passed);
      }
}

TEST_CASE("one sample as a vector is a batch of one") {
  const Problem p = random_problem({4, 5, 3}, "tanh", 1, 3);
  xt::xarray<double> row = p.x;
  row.reshape({p.x.size()});
  const BackpropTrace a = closed_form_backprop(Network(p.layers, row, p.y));
  const BackpropTrace b = closed_form_backprop(p.net());
  CHECK(a.grad_W[0] == b.grad_W[0]);
  CHECK(a.loss == b.loss);
}

TEST_CASE(
    "the document's question-2 rule is wrong from layer L-2 on, for two or more non-linear hidden "
    "layers") {
  for (const std::string& act : activation_names()) {
    if (act == "identity") continue;
    for (const auto& widths : {kShapes[2], kShapes[3]}) {
      const std::size_t L = widths.size() - 1;
      const Problem p = random_problem(widths, act, 4, 11);
      const BackpropTrace doc =
          closed_form_backprop(p.net(), BackpropFormula::document);
      const BackpropTrace tape = tape_backprop(p.net());
      INFO(act << ", " << L << " layers");
      const std::optional<QuantityDifference> first = compare_traces(doc, tape).first_disagreement;
      REQUIRE(first.has_value());
      CHECK(first->quantity == "grad_o");
      CHECK(first->layer == L - 2);
      // verify_gradients agrees: W and b of layers L and L-1 are still right, those of every
      // layer from L-2 down are wrong.
      const VerifyReport report = verify(p, doc);
      CHECK_FALSE(report.passed);
      for (std::size_t l = 1; l <= L; ++l) {
        INFO("layer " << l);
        CHECK(report.parameters[2 * (l - 1)].matches_tape == (l >= L - 1));
        CHECK(report.parameters[2 * (l - 1) + 1].matches_tape == (l >= L - 1));
      }
      CHECK(report.first_failure()->name == "W_1");
      CHECK(report.str().find("WRONG") != std::string::npos);
    }
  }
}

TEST_CASE("the document's rule is right for one hidden layer and for identity activations") {
  for (const std::string& act : activation_names()) {
    const Problem p = random_problem({5, 4, 3}, act, 3, 5);
    CHECK(
        verify(p, closed_form_backprop(p.net(), BackpropFormula::document)).passed);
  }
  for (const auto& widths : kShapes) {
    const Problem p = random_problem(widths, "identity", 3, 8);
    CHECK(
        verify(p, closed_form_backprop(p.net(), BackpropFormula::document)).passed);
  }
}

TEST_CASE("inconsistent networks give clear errors naming the layer") {
  Problem p = random_problem({4, 5, 3}, "relu", 2, 1);
  Problem bad = p;
  bad.layers[1].W = xt::zeros<double>({3, 6});
  CHECK_THROWS_WITH_AS(bad.net(), doctest::Contains("layer 2: W has shape [3, 6]"), ShapeError);
  bad = p;
  bad.layers[0].activation = "swish";
  CHECK_THROWS_WITH_AS(bad.net(), doctest::Contains("layer 1: unknown activation"), ValueError);
  bad = p;
  bad.layers[1].activation = "relu";
  CHECK_THROWS_WITH_AS(bad.net(), doctest::Contains("layer 2 is the last"), ValueError);
  CHECK_THROWS_AS(Network(p.layers, p.x, testing::i64({0, 3})), IndexError);
  CHECK_THROWS_AS(Network(p.layers, p.x, testing::i64({0})), ShapeError);
  CHECK_THROWS_WITH_AS(p.net(-0.1), doctest::Contains("lr must be a finite number >= 0"),
                       ValueError);
  CHECK_THROWS_AS(p.net(NAN), ValueError);
  CHECK_THROWS_AS(Network(p.layers, xt::zeros<double>({2, 2, 4}), p.y), ShapeError);
}

TEST_CASE("every activation of the table has a closed form, and it matches the op and its gradient") {
  const xt::xarray<double> z = {-3.0, -1.2, -0.4, -0.05, 0.05, 0.3, 1.1, 2.5};
  for (const nn::ActivationInfo& info : nn::activations()) {
    const std::string name(info.name);
    INFO(name);
    REQUIRE(closed_form_activations().count(info.name) == 1);
    const Tensor x(z, true);
    const Tensor y = make_activation(name)->forward(x);
    sum(y).backward();
    const xt::xarray<double> value = activation_value(name, z);
    const xt::xarray<double> derivative = activation_derivative(name, z);
    for (std::size_t i = 0; i < z.size(); ++i) {
      CHECK(value(i) == doctest::Approx(y.value<double>()(i)).epsilon(1e-14));
      CHECK(derivative(i) == doctest::Approx(x.grad().value<double>()(i)).epsilon(1e-14));
    }
  }
  CHECK(closed_form_activations().size() == nn::activations().size());
}

TEST_CASE(
    "verify_gradients names each wrong derivation by the mistake that reproduces it: every "
    "activation, batch 1 and 6") {
  using enum BackpropFormula;
  struct Case {
    BackpropFormula formula;
    MistakeKind kind;
    std::vector<std::size_t> widths;
    std::string node;  // the start of the mistake's node; "every" for every activation
  };
  const std::vector<Case> cases = {
      {document, MistakeKind::derivative_missing_below, {4, 5, 3, 4, 3}, "every "},
      {derivative_missing, MistakeKind::derivative_missing, {4, 5, 3, 4, 3}, "every "},
      {derivative_at_output, MistakeKind::derivative_at_output, {4, 5, 3, 4, 3}, "every "},
      {activation_for_derivative, MistakeKind::value_for_derivative, {4, 5, 3, 4, 3}, "every "},
      {derivative_at_logits, MistakeKind::derivative_extra, {4, 5, 3, 4, 3}, "linear #4"},
      {sum_not_mean, MistakeKind::mean_missing, {4, 5, 4, 3}, "softmax_cross_entropy"},
      {mean_twice, MistakeKind::mean_extra, {4, 5, 4, 3}, "softmax_cross_entropy"},
      {label_minus_p, MistakeKind::sign, {4, 5, 4, 3}, "softmax_cross_entropy"},
      {weight_not_transposed, MistakeKind::weight_not_transposed, {4, 5, 3, 3, 3}, "every linear"},
      {grad_W_transposed, MistakeKind::transposed, {4, 5, 3, 3, 3}, "every linear"},
  };
  std::size_t caught = 0, right = 0;
  for (const Case& c : cases)
    for (const std::string& act : activation_names()) {
      if (act == "identity") continue;
      for (std::size_t batch : {1, 6}) {
        const std::string name = backprop_formula_names()[static_cast<std::size_t>(c.formula)];
        INFO(name << ", " << act << ", batch " << batch);
        const Problem p = random_problem(c.widths, act, batch, 21);
        const BackpropTrace wrong = closed_form_backprop(p.net(), c.formula);
        const VerifyReport report =
            verify_trace(p.net(), wrong, {.rtol = 1e-10, .max_numeric_entries = 2});
        INFO(report.str());
        // Where the wrong rule gives the right numbers (relu'(a) = relu'(z); a mean over one
        // sample), the claims are right.
        if (compare_traces(wrong, closed_form_backprop(p.net())).agree()) {
          CHECK(report.passed);
          ++right;
          continue;
        }
        CHECK_FALSE(report.passed);
        REQUIRE(report.mistakes.size() == 1);
        const Mistake& m = report.mistakes[0];
        CHECK(mistake_kind_name(m.kind) == mistake_kind_name(c.kind));
        CHECK(m.node.find(c.node) == 0);
        CHECK(m.unexplained.empty());
        CHECK(m.max_rel_difference < 1e-12);
        for (const ParameterVerdict& v : report.parameters)
          if (!v.matches_tape) CHECK(v.diagnosis.find(", at " + m.node) != std::string::npos);
        ++caught;
      }
    }
  // Right by accident: relu and leaky_relu at the output (2 activations x 2 batches), the two 1/N
  // mistakes at batch 1 (2 x 9 activations); the rest is caught.
  CHECK(right == 4 + 18);
  CHECK(caught == 10 * 9 * 2 - right);
}
