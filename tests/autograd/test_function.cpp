// Custom ops (the struct form and the closure form) and pictures of the graph.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/function.hpp"
#include "autograd/graph.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// tanh with a learnable gain a: y = a tanh(x); dy/dx = a (1 - tanh(x)^2), dy/da = tanh(x).
struct ScaledTanh : Function<ScaledTanh> {
  static constexpr const char* name = "scaled_tanh";
  static Tensor forward(FunctionContext& ctx, const Tensor& x, const Tensor& a) {
    const Tensor y = a * tanh(x);
    ctx.save_for_backward({x, a, y});  // the output too: it is kept as its value only
    return y;
  }
  static std::vector<Tensor> backward(FunctionContext& ctx, const Tensor& g) {
    const std::vector<Tensor> saved = ctx.saved();
    const Tensor &x = saved[0], &a = saved[1];
    const Tensor t = tanh(x);  // recomputed from the input: differentiable again
    return {g * a * (1.0 - t * t), g * t};
  }
};

// A function that keeps a number for backward.
struct Scale : Function<Scale> {
  static Tensor forward(FunctionContext& ctx, const Tensor& x, double factor) {
    ctx.saved_data["factor"] = factor;
    return x * factor;
  }
  static std::vector<Tensor> backward(FunctionContext& ctx, const Tensor& g) {
    return {g * std::any_cast<double>(ctx.saved_data.at("factor"))};
  }
};

Tensor smooth_l1(const Tensor& x) {
  return custom_op(
      "smooth_l1", {x},
      [](const std::vector<Tensor>& in) {
        const Tensor a = abs(in[0]);
        return where(lt(a, ones_like(a)), 0.5 * in[0] * in[0], a - 0.5);
      },
      [](const std::vector<Tensor>& in, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g * clamp(in[0], -1.0, 1.0)};
      });
}
}  // namespace

TEST_CASE("a custom op as a struct: one tape entry, checked like a built-in op") {
  const Tensor x = testing::f64({{0.5, -1.2, 2.0}, {0.1, 0.0, -0.3}}, true);
  const Tensor a = testing::f64({1.3}, true);
  const Tensor y = ScaledTanh::apply(x, a);
  CHECK(y.grad_fn()->name() == "scaled_tanh");
  CHECK(y.grad_fn()->edge(0).requires_grad());
  CHECK(testing::flat(y) == testing::flat(a * tanh(x)));
  const TensorFn f = [](const std::vector<Tensor>& in) { return ScaledTanh::apply(in[0], in[1]); };
  CHECK_GRADCHECK(gradcheck(f, {x, a}));
  CHECK_GRADCHECK(gradgradcheck(f, {x, a}));
  const std::size_t entries = Tape::current().size();
  { const Tensor unused = ScaledTanh::apply(x, a); }
  CHECK(Tape::current().size() == entries);  // saving its own output made no cycle
  CHECK_GRADCHECK(
      gradcheck([](const std::vector<Tensor>& in) { return Scale::apply(in[0], -2.5); }, {x}));
  CHECK(Scale::apply(x, 2.0).grad_fn()->name() == "custom");
}

TEST_CASE("a custom op as a closure saves its inputs and output") {
  const Tensor x = testing::f64({-2.0, -0.4, 0.3, 1.7}, true);
  const auto value = testing::flat(smooth_l1(x));
  CHECK(value == std::vector<double>{1.5, 0.08000000000000002, 0.045, 1.2});
  CHECK_GRADCHECK(gradcheck([](const std::vector<Tensor>& in) { return smooth_l1(in[0]); }, {x}));
  const Tensor y = sum(smooth_l1(x));
  y.backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{-1.0, -0.4, 0.3, 1.0});
  CHECK_THROWS_AS(y.backward(), AutogradError);  // its saved tensors were released, as any op's
}

TEST_CASE("a custom backward that returns the wrong number or shape of gradients is an error") {
  const Tensor x = testing::f64({1.0, 2.0}, true);
  const Tensor wrong_count = custom_op(
      "bad", {x}, [](const auto& in) { return in[0] * 2.0; },
      [](const auto&, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g, g};
      });
  CHECK_THROWS_WITH_AS(sum(wrong_count).backward(),
                       doctest::Contains("bad: backward returned 2 gradients for 1"),
                       AutogradError);
  const Tensor wrong_shape = custom_op(
      "bad_shape", {x}, [](const auto& in) { return in[0] * 2.0; },
      [](const auto&, const Tensor&, const Tensor&) {
        return std::vector<Tensor>{testing::f64({1.0, 2.0, 3.0})};
      });
  CHECK_THROWS_WITH_AS(sum(wrong_shape).backward(),
                       doctest::Contains("shape [3] for input 0 of shape [2]"), ShapeError);
}

TEST_CASE("to_dot draws ops, shapes, leaves and what each entry saved") {
  const Tensor w = testing::f64({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}, true);
  const Tensor x = testing::f64({{0.5, -0.5}});
  const Tensor loss = sum(relu(linear(x, w)));
  const std::string dot = to_dot(loss);
  CHECK(dot.rfind("digraph xgrad {", 0) == 0);
  CHECK(dot.find("label=\"linear\\nsaved: 64 B\"") !=
        std::string::npos);  // x (2 doubles) and w (6)
  CHECK(dot.find("label=\"relu\\nsaved: 24 B\"") != std::string::npos);
  CHECK(dot.find("leaf [3, 2]\\nrequires grad") != std::string::npos);
  CHECK(dot.find("constant [1, 2]") != std::string::npos);
  CHECK(dot.find("label=\"[1, 3]\"") != std::string::npos);
  loss.backward();
  CHECK(to_dot(loss).find("saved: released") != std::string::npos);
}

TEST_CASE("a custom op whose forward returns its input: the input stays a leaf, no cycle") {
  const Tensor x = testing::f64({1.0, 2.0}, true);
  const Tensor y = custom_op(
      "identity", {x}, [](const std::vector<Tensor>& in) { return in[0]; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g};
      });
  CHECK(x.is_leaf());
  CHECK(y.impl() != x.impl());
  CHECK(testing::flat(y) == testing::flat(x));
  sum(y * y).backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{2.0, 4.0});
}

TEST_CASE("a custom backward returning the wrong dtype is an error naming the op") {
  const Tensor x = Tensor(xt::xarray<float>{1.0f, 2.0f}, true);
  const Tensor y = custom_op(
      "widen", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{cast(g, kFloat64)};
      });
  CHECK_THROWS_WITH_AS(sum(y).backward(),
                       doctest::Contains("widen: backward returned a float64 gradient for input 0 "
                                         "of dtype float32"),
                       DtypeError);
}

TEST_CASE("to_dot: leaves by name, numbers of scalar ops, each node once, composites folded") {
  const Tensor w = testing::f64({{1.0, 2.0}, {3.0, 4.0}}, true);
  const Tensor b = testing::f64({0.5, -0.5}, true);
  const Tensor x = testing::f64({{0.5, -0.5}});
  const Tensor h = linear(x, w, b);
  const Tensor loss = mean(h * 0.05 + h) + var(h) + 1.0;
  const std::string plain = to_dot(loss, {.names = {{"fc.weight", w}, {"fc.bias", b}}});
  CHECK(plain.find("label=\"fc.weight [2, 2]\\nrequires grad\"") != std::string::npos);
  CHECK(plain.find("label=\"fc.bias [2]") != std::string::npos);
  CHECK(plain.find("mul x 0.05") != std::string::npos);
  CHECK(plain.find("add + 1") != std::string::npos);
  const auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  CHECK(count(plain, "fc.weight") == 1);  // a leaf used by one op: drawn once
  CHECK(count(plain, "\"linear") == 1);   // h feeds three ops: its node is drawn once
  const std::string folded = to_dot(loss, {.names = {}, .fold_composites = true});
  CHECK(folded.find("label=\"mean\"") != std::string::npos);
  CHECK(folded.find("label=\"var\"") != std::string::npos);
  CHECK(folded.find("sum_to") == std::string::npos);  // inside mean and var: not drawn
  CHECK(plain.find("sum_to") != std::string::npos);
}
