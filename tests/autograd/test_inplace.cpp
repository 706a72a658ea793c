// In-place ops: what they write, who sees it, the histories they rebase, and what they refuse,
// against the out-of-place ops written out by hand.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

TEST_CASE("in-place ops write through every handle and view, and move the version on") {
  const Tensor x = tensor({{1, 2, 3}, {4, 5, 6}}, {.dtype = kFloat64});
  const Tensor row = x[1], col = select(x, 1, 0);
  x.add_(1.0);
  CHECK(testing::flat(row) == std::vector<double>{5, 6, 7});
  row.mul_(10.0);  // through a view: the base sees it
  CHECK(testing::flat(x) == std::vector<double>{2, 3, 4, 50, 60, 70});
  col.zero_();  // a strided view
  CHECK(testing::flat(x) == std::vector<double>{0, 3, 4, 0, 60, 70});
  x.clamp_(1.0, 65.0);
  CHECK(testing::flat(x) == std::vector<double>{1, 3, 4, 1, 60, 65});
  x.masked_fill_(x > 50.0, -1);
  CHECK(testing::flat(x) == std::vector<double>{1, 3, 4, 1, -1, -1});
  x.copy_(testing::f64({7, 8, 9}));  // broadcast
  CHECK(testing::flat(x) == std::vector<double>{7, 8, 9, 7, 8, 9});
  x.fill_(2).sub_(testing::f64({{1, 1, 1}, {0, 0, 0}})).div_(4.0);
  CHECK(testing::flat(x) == std::vector<double>{0.25, 0.25, 0.25, 0.5, 0.5, 0.5});
  // Integers: in place in their own dtype; a float result does not fit.
  const Tensor n = testing::i64({1, 2});
  n.add_(3).mul_(testing::i64({2, -1}));
  CHECK(testing::ints(n) == testing::I64s{8, -5});
  CHECK_THROWS_WITH_AS(n.div_(2), doctest::Contains("result type float32 can't be cast"),
                       DtypeError);
  // A node that saved x sees the change.
  const Tensor w = testing::f64({1.0, 2.0}, true);
  const Tensor v = testing::f64({3.0, 4.0});
  const Tensor y = sum(v * w);
  v.add_(1.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("changed in place after the forward"),
                       AutogradError);
}

TEST_CASE("recorded in-place ops rebase the history: gradients as the out-of-place ops give") {
  const Tensor a = testing::f64({1.0, -2.0, 3.0}, true), b = testing::f64({0.5, 4.0, -1.0}, true);
  // In place: h = a * 2; h *= b (mul needs h's old values); h += a; h.clamp_(-5, 5).
  Tensor h = a * 2.0;
  h *= b;
  h += a;
  h.clamp_(-5.0, 5.0);
  CHECK_FALSE(h.is_leaf());
  const std::vector<Tensor> g = grad({sum(h * h)}, {a, b});
  // Out of place, the same arithmetic.
  const Tensor o = clamp(a * 2.0 * b + a, -5.0, 5.0);
  const std::vector<Tensor> e = grad({sum(o * o)}, {a, b});
  CHECK(testing::flat(h) == testing::flat(o));
  CHECK(testing::flat(g[0]) == testing::flat(e[0]));
  CHECK(testing::flat(g[1]) == testing::flat(e[1]));
  // copy_ and fill_ cut the old values' gradient off (0), copy_ passes the source's.
  const Tensor c = a * 1.0;
  c.copy_(b * 3.0);
  const std::vector<Tensor> gc = grad({sum(c)}, {a, b});
  CHECK(testing::flat(gc[0]) == std::vector<double>{0, 0, 0});
  CHECK(testing::flat(gc[1]) == std::vector<double>{3, 3, 3});
  const Tensor f = a * 1.0;
  f.fill_(2.0);
  CHECK(testing::flat(grad({sum(f)}, {a})[0]) == std::vector<double>{0, 0, 0});
}

TEST_CASE("in-place ops refuse a leaf that requires grad, a view of one, an expanded view") {
  const Tensor leaf = testing::f64({1.0, 2.0}, true);
  CHECK_THROWS_WITH_AS(leaf.add_(1.0),
                       doctest::Contains("add_: a leaf Variable that requires grad is being used "
                                         "in an in-place operation"),
                       AutogradError);
  CHECK_THROWS_WITH_AS(leaf[0].zero_(), doctest::Contains("zero_: a view of a leaf Variable"),
                       AutogradError);
  {
    NoGradGuard no_grad;  // an optimizer's step
    leaf.mul_(3.0);
  }
  CHECK(testing::flat(leaf) == std::vector<double>{3.0, 6.0});
  const Tensor e = expand(reshape(testing::f64({1.0, 2.0}), {2, 1}), {2, 3});
  CHECK_THROWS_WITH_AS(e.add_(1.0), doctest::Contains("more than one element of the written-to"),
                       ValueError);
  const Tensor y = leaf.detach() * 1.0;
  const Tensor z = y * testing::f64({1.0, 1.0}, true);
  CHECK_THROWS_WITH_AS(z[0].add_(1.0), doctest::Contains("on a view while gradients are recorded"),
                       AutogradError);
}

TEST_CASE("in-place ops in a recorded graph: gradcheck and gradgradcheck") {
  // Every in-place op on non-leaf tensors, to first and second order; the clamp's bounds and the
  // mask stay clear of kinks.
  const auto f = [](const std::vector<Tensor>& in) {
    Tensor h = in[0] * 1.0;
    h.mul_(in[1]);
    h.add_(in[0]).sub_(in[1] * in[1]).div_(in[1]).mul_(2.0).add_(0.5).sub_(0.25).div_(3.0);
    h.clamp_(-1e3, 1e3);
    h.masked_fill_(tensor({1, 0, 0}, {.dtype = kBool}), 2.0);
    h += in[0];
    h *= in[0];
    const Tensor c = in[1] * 1.0;
    c.copy_(in[0] * in[0]);
    const Tensor z = in[0] * 1.0;
    z.zero_();
    return h + c + z * in[1];
  };
  CHECK_GRADCHECK(gradcheck(f, {testing::f64({0.5, -1.5, 2.0}, true),
                                testing::f64({1.25, 0.75, -2.0}, true)}));
  CHECK_GRADCHECK(gradgradcheck(f, {testing::f64({0.5, -1.5, 2.0}, true),
                                    testing::f64({1.25, 0.75, -2.0}, true)}));
}
