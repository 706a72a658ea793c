// Gradients of intermediates, as PyTorch's: retain_grad(), register_hook(fn) on any tensor (to
// read or replace the gradient flowing through it), detach_(), and requires_grad_() on an op's
// output. Their engine side is in autograd/engine.cpp (through_output_hooks, HeldLeaves).
#include <doctest/doctest.h>

#include <vector>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using testing::flat;

namespace {
Tensor f64(std::initializer_list<double> values, bool requires_grad = true) {
  return tensor(values, {.dtype = kFloat64, .requires_grad = requires_grad});
}
}  // namespace

TEST_CASE("retain_grad keeps an intermediate's gradient, added across backwards as a leaf's") {
  const Tensor x = f64({1, 2, 3});
  const Tensor h = x * x;  // dh = 2x dx
  h.retain_grad();
  CHECK(h.retains_grad());
  const Tensor y = h * f64({1, 10, 100}, false);
  CHECK_FALSE(y.retains_grad());
  y.sum().backward(Tensor(), true);
  CHECK(flat(h.grad()) == std::vector<double>{1, 10, 100});  // dy/dh
  CHECK(flat(x.grad()) == std::vector<double>{2, 40, 600});  // and the leaf's, unchanged
  CHECK_FALSE(y.grad().defined());                           // not retained: none
  y.sum().backward();
  CHECK(flat(h.grad()) == std::vector<double>{2, 20, 200});  // accumulated
  h.zero_grad();
  CHECK_FALSE(h.grad().defined());
  // A leaf keeps its gradient anyway; a tensor outside the graph has none to keep.
  x.retain_grad();
  CHECK_FALSE(x.retains_grad());
  CHECK_THROWS_WITH_AS(f64({1}, false).retain_grad(), doctest::Contains("does not require grad"),
                       AutogradError);
}

TEST_CASE("register_hook on an op's output reads the gradient, and a returned tensor replaces it") {
  const Tensor x = f64({1, 2});
  const Tensor h = x * 3.0;
  std::vector<double> seen;
  h.register_hook([&](const Tensor& g) { seen = flat(g); });  // void: reads only
  const unsigned doubling = h.register_hook([](const Tensor& g) { return g * 2.0; });
  h.retain_grad();
  (h * h).sum().backward();                              // d/dh = 2h = (6, 12)
  CHECK(seen == std::vector<double>{6, 12});             // the first hook saw the original
  CHECK(flat(h.grad()) == std::vector<double>{12, 24});  // retain_grad keeps the replaced one
  CHECK(flat(x.grad()) == std::vector<double>{36, 72});  // and it flowed on: 3 * 2 * 2h
  h.remove_hook(doubling);
  x.zero_grad();
  const Tensor h2 = x * 3.0;
  (h2 * h2).sum().backward();
  CHECK(flat(x.grad()) == std::vector<double>{18, 36});
  CHECK_THROWS_AS(h.remove_hook(doubling), ValueError);  // removed already
}

TEST_CASE("register_hook on a leaf sees the whole gradient of one backward, before .grad") {
  const Tensor x = f64({1, 2, 3});
  int calls = 0;
  std::vector<double> seen;
  x.register_hook([&](const Tensor& g) {
    ++calls;
    seen = flat(g);
    return g * 10.0;  // what .grad receives
  });
  // x is used three times: twice whole and once sliced (the region path of the engine).
  const Tensor y = (x * 2.0).sum() + (x * x).sum() + select(x, 0, 1);
  y.backward();
  CHECK(calls == 1);
  CHECK(seen == std::vector<double>{4, 7, 8});  // 2 + 2x, plus 1 at index 1
  CHECK(flat(x.grad()) == std::vector<double>{40, 70, 80});
  // A hook runs before the leaf's post-accumulate hook, which sees the final .grad.
  const Tensor z = f64({1, 1});
  std::vector<double> after;
  z.register_hook([](const Tensor& g) { return g + 1.0; });
  z.register_post_accumulate_grad_hook([&](const Tensor& leaf) { after = flat(leaf.grad()); });
  (z * 5.0).sum().backward();
  CHECK(after == std::vector<double>{6, 6});
}

TEST_CASE("register_hook: a hook returning a wrong shape or dtype is named; no hook without grad") {
  const Tensor x = f64({1, 2});
  const Tensor h = x * 2.0;
  h.register_hook([](const Tensor& g) { return sum(g); });
  CHECK_THROWS_WITH_AS((h * h).sum().backward(),
                       doctest::Contains("register_hook: a hook returned a gradient of shape []"),
                       AutogradError);
  const Tensor w = f64({1, 2});
  w.register_hook([](const Tensor& g) { return g.to(kFloat32); });
  CHECK_THROWS_WITH_AS((w * w).sum().backward(), doctest::Contains("dtype float32"), AutogradError);
  CHECK_THROWS_WITH_AS(f64({1}, false).register_hook([](const Tensor&) {}),
                       doctest::Contains("does not require grad"), AutogradError);
}

TEST_CASE("hooks under create_graph: the replaced gradient is differentiable") {
  const Tensor x = f64({0.5, -1.5});
  const Tensor h = x * x;
  h.register_hook([](const Tensor& g) { return g * 3.0; });
  const std::vector<Tensor> g = grad({(h * x).sum()}, {x}, {}, true, true);
  // d/dx (h x) with dh scaled by 3: 3 * x * 2x + h = 7 x^2. Its derivative goes through h again,
  // and the hook scales that part again: 12 x + 3 * 2x = 18 x (PyTorch 1.13 gives 9 and -27).
  CHECK(flat(g[0]) == std::vector<double>{7 * 0.25, 7 * 2.25});
  g[0].sum().backward();
  CHECK(flat(x.grad()) == std::vector<double>{9, -27});
}

TEST_CASE("detach_ makes an op's output a leaf in place; views refuse it") {
  const Tensor x = f64({1, 2});
  Tensor h = x * 2.0;
  const Tensor alias = h;  // the same tensor: it sees the change
  h.detach_();
  CHECK(alias.is_leaf());
  CHECK_FALSE(alias.requires_grad());
  CHECK(flat(alias) == std::vector<double>{2, 4});
  CHECK_THROWS_AS((h * h).sum().backward(), AutogradError);  // nothing left to differentiate
  Tensor v = select(x * 1.0, 0, 0);
  CHECK_THROWS_WITH_AS(v.detach_(), doctest::Contains("use detach()"), AutogradError);
}

TEST_CASE("requires_grad_ on an op's output: true leaves it so, false names detach()") {
  const Tensor x = f64({1, 2});
  Tensor h = x * 2.0;
  CHECK(h.requires_grad_().requires_grad());  // as PyTorch: nothing to change
  CHECK_FALSE(h.is_leaf());
  CHECK_THROWS_WITH_AS(h.requires_grad_(false), doctest::Contains("detach()"), AutogradError);
}
