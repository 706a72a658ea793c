// autograd/functional.hpp: vjp, jvp, jacobian (both modes), hessian, hvp and vhp against
// Jacobians and Hessians derived by hand, against each other (<u, J v> = <J^T u, v>), through
// create_graph, against PyTorch's torch.autograd.functional (recorded by
// tests/data/torch_functional/make.py), and their errors. All in float64.
#include "autograd/functional.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/engine.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "autograd/verify.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::testing;

namespace {

Tensor at(const Tensor& x, std::ptrdiff_t i) { return select(x, 0, i); }

// R^3 -> R^4: (x0 x1, e^x2, tanh(x0 + x2), x1^2).
Tensor four(const Tensor& x) {
  return stack(
      {mul(at(x, 0), at(x, 1)), exp(at(x, 2)), tanh(add(at(x, 0), at(x, 2))), pow(at(x, 1), 2.0)});
}
// Its Jacobian by hand.
Tensor four_jacobian(const std::vector<double>& x) {
  const double t = std::tanh(x[0] + x[2]), s = 1 - t * t;
  return f64({{x[1], x[0], 0}, {0, 0, std::exp(x[2])}, {s, 0, s}, {0, 2 * x[1], 0}});
}

// x -> x * x with a backward and a JVP rule that count their calls (written in ops, so recorded
// under create_graph like every op's).
int square_backwards = 0;
int square_jvps = 0;
struct CountedSquare final : Node {
  std::string_view name() const override { return "counted_square"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    ++square_backwards;
    grads[0] = mul(g, mul(saved(0), 2.0));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    ++square_jvps;
    return mul(in.tangent(0), mul(in.primal(0), 2.0));
  }
};
Tensor counted_square(const Tensor& x) {
  Tensor out = Tensor(xt::xarray<double>(x.value<double>() * x.value<double>()));
  if (auto* node = record<CountedSquare>(out, {x})) node->save({x});
  return out;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  const std::vector<double> fa = flat(a), fb = flat(b);
  for (std::size_t i = 0; i < fa.size(); ++i) s += fa[i] * fb[i];
  return s;
}

}  // namespace

TEST_CASE("jacobian: both modes give the Jacobian derived by hand") {
  const std::vector<double> xs{0.3, -1.2, 0.7};
  const Tensor x = f64({0.3, -1.2, 0.7});
  for (JacobianMode mode :
       {JacobianMode::reverse, JacobianMode::forward, JacobianMode::automatic}) {
    CAPTURE(static_cast<int>(mode));
    const Tensor J = jacobian(four, x, {.mode = mode});
    CHECK(J.shape() == Shape{4, 3});
    CHECK(max_difference(J, four_jacobian(xs)) < 1e-14);
    CHECK_FALSE(J.requires_grad());
  }
  // A linear map's Jacobian is its matrix; the output and input shapes are kept.
  const Tensor A = randn({2, 3, 4}, {.dtype = kFloat64});
  const auto apply = [&](const Tensor& v) {  // (4, 1) -> (2, 3, 1)
    return reshape(mm(reshape(A, {6, 4}), v), {2, 3, 1});
  };
  const Tensor v = randn({4, 1}, {.dtype = kFloat64});
  for (JacobianMode mode : {JacobianMode::reverse, JacobianMode::forward}) {
    const Tensor J = jacobian(apply, v, {.mode = mode});
    CHECK(J.shape() == Shape{2, 3, 1, 4, 1});
    CHECK(max_difference(reshape(J, {2, 3, 4}), A) == 0.0);
  }
}

TEST_CASE("jacobian: automatic takes forward mode when the inputs are fewer than the outputs") {
  // Reverse mode runs the function's backward once per output entry, forward mode its JVP rule
  // once per input entry.
  const auto wide = [](const Tensor& x) { return counted_square(concat({x, x, x})); };  // 2 -> 6
  const auto narrow = [](const Tensor& x) {                                             // 6 -> 2
    return sum(reshape(counted_square(x), {2, 3}), {1});
  };
  const Tensor two = f64({0.5, -2.0}), six = f64({1, 2, 3, 4, 5, 6});
  struct Expected {
    JacobianMode mode;
    int backwards, jvps;
  };
  const Expected expected[] = {{JacobianMode::reverse, 6, 0},
                               {JacobianMode::forward, 0, 2},
                               {JacobianMode::automatic, 0, 2}};
  for (auto [mode, backwards, jvps] : expected) {
    square_backwards = square_jvps = 0;
    const Tensor J = jacobian(wide, two, {.mode = mode});
    CHECK(square_backwards == backwards);
    CHECK(square_jvps == jvps);
    CHECK(max_difference(J, f64({{1, 0}, {0, -4}, {1, 0}, {0, -4}, {1, 0}, {0, -4}})) == 0.0);
  }
  square_backwards = square_jvps = 0;
  const Tensor J = jacobian(narrow, six);
  CHECK(square_backwards == 2);  // reverse: two output entries
  CHECK(square_jvps == 0);
  CHECK(max_difference(J, f64({{2, 4, 6, 0, 0, 0}, {0, 0, 0, 8, 10, 12}})) == 0.0);
}

TEST_CASE("vjp and jvp: J^T v and J v, and <u, J v> = <J^T u, v>") {
  const Tensor x = f64({0.3, -1.2, 0.7});
  const Tensor J = four_jacobian({0.3, -1.2, 0.7});
  const Tensor u = f64({0.5, -1, 2, 0.25}), v = f64({-0.4, 1.5, 0.9});
  const auto [out, grad_x] = vjp(four, x, u);
  const auto [out2, tangent] = jvp(four, x, v);
  CHECK(max_difference(out, four(x)) == 0.0);
  CHECK(max_difference(out2, out) == 0.0);
  CHECK(max_difference(grad_x, mm(reshape(u, {1, 4}), J).reshape({3})) < 1e-14);
  CHECK(max_difference(tangent, mm(J, reshape(v, {3, 1})).reshape({4})) < 1e-14);
  CHECK(std::abs(dot(u, tangent) - dot(grad_x, v)) < 1e-14);
  // A function whose entries all depend on every input: exp(x) sum(x).
  const auto [o3, t3] = jvp([](const Tensor& t) { return mul(exp(t), sum(t)); }, x, v);
  const double s = 0.3 - 1.2 + 0.7, sv = -0.4 + 1.5 + 0.9;
  const std::vector<double> xv{0.3, -1.2, 0.7}, vv{-0.4, 1.5, 0.9};
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(flat(t3)[i] == doctest::Approx(std::exp(xv[i]) * (vv[i] * s + sv)).epsilon(1e-14));
}

TEST_CASE("several inputs and outputs: blocks per pair, zeros where an output ignores an input") {
  const Tensor a = f64({1, 2, 3}), b = f64({-1, 0.5, 4});
  const auto f = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{sum(mul(in[0], in[1])), mul(in[0], 2.0)};
  };
  for (JacobianMode mode : {JacobianMode::reverse, JacobianMode::forward}) {
    const auto J = jacobian(f, {a, b}, {.mode = mode});
    REQUIRE(J.size() == 2);
    REQUIRE(J[0].size() == 2);
    CHECK(max_difference(J[0][0], b) == 0.0);  // d sum(a b) / da, shape () + (3)
    CHECK(max_difference(J[0][1], a) == 0.0);
    CHECK(max_difference(J[1][0], f64({{2, 0, 0}, {0, 2, 0}, {0, 0, 2}})) == 0.0);
    CHECK(max_difference(J[1][1], zeros({3, 3}, {.dtype = kFloat64})) == 0.0);
  }
  const auto [outs, grads] = vjp(f, {a, b}, {scalar(1.0, {.dtype = kFloat64}), f64({1, 1, 1})});
  CHECK(max_difference(grads[0], f64({1, 2.5, 6})) == 0.0);  // b + 2
  CHECK(max_difference(grads[1], a) == 0.0);
  const auto [outs2, tangents] = jvp(f, {a, b}, {f64({1, 0, 0}), f64({0, 0, 1})});
  CHECK(flat(tangents[0])[0] == doctest::Approx(-1 + 3));  // b0 + a2
  CHECK(max_difference(tangents[1], f64({2, 0, 0})) == 0.0);
  // The Hessian of sum(a b b): d2/da2 = 0, d2/da db = diag(2 b), d2/db2 = diag(2 a).
  const auto H = hessian(
      [](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{sum(mul(in[0], mul(in[1], in[1])))};
      },
      {a, b});
  CHECK(max_difference(H[0][0], zeros({3, 3}, {.dtype = kFloat64})) == 0.0);
  CHECK(max_difference(H[0][1], f64({{-2, 0, 0}, {0, 1, 0}, {0, 0, 8}})) == 0.0);
  CHECK(max_difference(H[1][0], H[0][1]) == 0.0);
  CHECK(max_difference(H[1][1], f64({{2, 0, 0}, {0, 4, 0}, {0, 0, 6}})) == 0.0);
}

TEST_CASE("hessian, hvp and vhp against Hessians derived by hand") {
  // sum(x^3) + x0 x1: H = diag(6 x) + the x0 x1 pair.
  const auto cubic = [](const Tensor& x) { return add(sum(pow(x, 3.0)), mul(at(x, 0), at(x, 1))); };
  const Tensor x = f64({0.5, -1, 2});
  const Tensor H = hessian(cubic, x);
  const Tensor by_hand = f64({{3, 1, 0}, {1, -6, 0}, {0, 0, 12}});
  CHECK(max_difference(H, by_hand) < 1e-14);
  const Tensor v = f64({1, -2, 0.5});
  for (const bool h_v : {true, false}) {
    const auto [g, hv] = h_v ? hvp(cubic, x, v) : vhp(cubic, x, v);
    CHECK(max_difference(g, f64({0.75 - 1, 3 + 0.5, 12})) < 1e-14);  // 3 x^2 + (x1, x0, 0)
    CHECK(max_difference(hv, mm(by_hand, reshape(v, {3, 1})).reshape({3})) < 1e-14);
  }
  // The document's loss in the logits z, cross-entropy with class y: its Hessian is
  // diag(p) - p p^T, p = softmax(z), whatever y.
  const Tensor z = f64({0.2, -1.0, 1.5, 0.3});
  const auto loss = [](const Tensor& logits) { return neg(at(log_softmax(logits, 0), 2)); };
  const std::vector<double> p = flat(softmax(z, 0));
  xt::xarray<double> expected = xt::zeros<double>({4, 4});
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 4; ++j) expected(i, j) = (i == j ? p[i] : 0) - p[i] * p[j];
  CHECK(max_difference(hessian(loss, z), f64(expected)) < 1e-15);
}

TEST_CASE("create_graph: the results stay differentiable in x") {
  const Tensor x = f64({0.5, -1, 2}, true);
  const auto cube = [](const Tensor& t) { return pow(t, 3.0); };
  const auto [y, g] = vjp(cube, x, ones_like(x), {.create_graph = true});
  REQUIRE(g.requires_grad());
  backward({sum(g)});  // d/dx sum(3 x^2) = 6 x
  CHECK(max_difference(x.grad(), f64({3, -6, 12})) < 1e-14);
  const auto [y2, g2] = vjp(cube, x, ones_like(x));
  CHECK_FALSE(g2.requires_grad());
  CHECK_FALSE(y2.requires_grad());
  // The Hessian's own derivative: d/dx of sum(H) for sum(x^3), H = diag(6 x), is 6.
  const Tensor x2 = f64({0.5, -1, 2}, true);
  const Tensor H =
      hessian([](const Tensor& t) { return sum(pow(t, 3.0)); }, x2, {.create_graph = true});
  backward({sum(H)});
  CHECK(max_difference(x2.grad(), f64({6, 6, 6})) < 1e-13);
}

TEST_CASE("functional transforms: errors name the transform, the shapes and what was expected") {
  const Tensor x = f64({1, 2, 3});
  const auto identity = [](const Tensor& t) { return mul(t, 1.0); };
  CHECK_THROWS_WITH_AS(vjp(identity, x, f64({1, 2})),
                       "vjp: v[0] is [2] float64 for output 0 [3] float64; expected the same",
                       ShapeError);
  CHECK_THROWS_WITH_AS(jvp(identity, x, f64({1, 2})),
                       "jvp: v[0] is [2] float64 for input 0 [3] float64; expected the same",
                       ShapeError);
  CHECK_THROWS_WITH_AS(hessian(identity, x),
                       "hessian: needs a function with one output of one element, got 1 "
                       "output(s), the first [3]",
                       ShapeError);
  CHECK_THROWS_AS(jacobian(identity, i64({1, 2})), DtypeError);
}

TEST_CASE("jacobian, hessian and hvp equal PyTorch's torch.autograd.functional (float64)") {
  // tests/data/torch_functional/make.py: the functions and their constants, and PyTorch 1.13's
  // results.
  std::map<std::string, Tensor> d;
  for (auto& [name, t] :
       nn::load_npz(std::string(XGRAD_SOURCE_DIR) + "/tests/data/torch_functional/functional.npz"))
    d[name] = t;
  const auto column = [](const Tensor& t) { return reshape(t, {-1, 1}); };
  const auto times = [&](const Tensor& m, const Tensor& t) {  // (r, n) (n) -> (r)
    return reshape(mm(m, column(t)), {-1});
  };
  const auto vector = [&](const Tensor& x) {
    const Tensor cx = times(d.at("C"), x);
    return add(mul(tanh(add(times(d.at("W"), x), d.at("b"))), sigmoid(cx)), mul(pow(cx, 2.0), 0.5));
  };
  const auto scalar = [&](const Tensor& X) {
    return add(neg(sum(select(log_softmax(tanh(mm(X, d.at("A"))), 1), 1, 1))),
               mul(sum(pow(X, 4.0)), 0.1));
  };
  for (JacobianMode mode : {JacobianMode::reverse, JacobianMode::forward})
    CHECK(max_difference(jacobian(vector, d.at("x"), {.mode = mode}), d.at("J")) < 1e-10);
  CHECK(max_difference(hessian(scalar, d.at("X")), d.at("H")) < 1e-10);
  const auto [g, hv] = hvp(scalar, d.at("X"), d.at("v"));
  CHECK(max_difference(g, d.at("grad")) < 1e-10);
  CHECK(max_difference(hv, d.at("hvp")) < 1e-10);
  const auto H = hessian(
      [](const std::vector<Tensor>& in) {
        const Tensor ba = reshape(mm(in[1], reshape(in[0], {-1, 1})), {-1});
        return std::vector<Tensor>{add(sum(pow(tanh(ba), 2.0)), sum(pow(in[0], 3.0)))};
      },
      {d.at("a"), d.at("B")});
  CHECK(max_difference(H[0][0], d.at("H_aa")) < 1e-10);
  CHECK(max_difference(H[0][1], d.at("H_aB")) < 1e-10);
  CHECK(max_difference(H[1][0], d.at("H_Ba")) < 1e-10);
  CHECK(max_difference(H[1][1], d.at("H_BB")) < 1e-10);
}

TEST_CASE("the document's network: the Hessian in the last layer's weights, as derived by hand") {
  // docs/derivation.md: H = (1/B) sum_i (diag(p_i) - p_i p_i^T) (x) o_i o_i^T, o_i the last
  // hidden layer's output for row i; the network 3-5-4-3 with tanh, batch 4, float64.
  const TensorOptions f{.dtype = kFloat64};
  const Tensor X = randn({4, 3}, f), W1 = randn({5, 3}, f), b1 = randn({5}, f),
               W2 = randn({4, 5}, f), b2 = randn({4}, f), W3 = randn({3, 4}, f), b3 = randn({3}, f),
               labels = from_vector(std::vector<std::int64_t>{0, 2, 1, 2}, {4});
  const Tensor o = tanh(linear(tanh(linear(X, W1, b1)), W2, b2));  // (4, 4)
  const auto loss = [&](const Tensor& w) {
    return softmax_cross_entropy(linear(o, w, b3), labels);
  };
  const Tensor H = hessian(loss, W3);
  REQUIRE(H.shape() == Shape{3, 4, 3, 4});
  const std::vector<double> P = flat(softmax(linear(o, W3, b3), 1)), O = flat(o);
  const auto by_hand = [&](bool slip) {
    xt::xarray<double> h = xt::zeros<double>({3, 4, 3, 4});
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t a = 0; a < 3; ++a)
        for (std::size_t b = 0; b < 4; ++b)
          for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t d = 0; d < 4; ++d) {
              const double pa = P[i * 3 + a], pc = P[i * 3 + c];
              const double softmax_jacobian = (a == c ? pa : 0) - (slip ? 0 : pa * pc);
              h(a, b, c, d) += softmax_jacobian * O[i * 4 + b] * O[i * 4 + d] / 4;
            }
    return f64(h);
  };
  CHECK(max_difference(H, by_hand(false)) < 1e-15);
  CHECK(max_difference(H, by_hand(true)) > 1e-3);  // diag(p) alone: told apart
  // The same through the verifier, against the tape and finite differences.
  CHECK(verify_hessian(loss, W3, by_hand(false)));
  CHECK_FALSE(verify_hessian(loss, W3, by_hand(true)));
}
