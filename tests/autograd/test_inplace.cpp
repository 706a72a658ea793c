// In-place ops (autograd/ops/inplace.cpp): what they write, who sees it, the histories they
// rebase, and what they refuse, against the out-of-place ops written out by hand; every one
// gradchecked and gradgradchecked in a recorded graph, directly and through views.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using indexing::None;
using indexing::Slice;

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
}

TEST_CASE("recorded in-place ops through a view rewrite the base's history, and every view's") {
  const Tensor w = testing::f64({{1.0, -2.0, 3.0}, {0.5, 4.0, -1.0}}, true);
  const Tensor v = testing::f64({2.0, -3.0, 0.25}, true);
  // In place through views: y = 2w; y[1] *= v; y[:, 0] += 10 v[0]; y.t()[2] -> 0 (a strided view).
  const Tensor y = w * 2.0;
  y[1].mul_(v);
  y.index({Slice(), 0}).add_(v[0] * 10.0);
  y.t()[2].zero_();
  CHECK(y.grad_fn()->name() == "copy_slices");
  // Out of place, the same arithmetic, by hand.
  const Tensor m = testing::f64({{1.0, 1.0, 0.0}, {1.0, 1.0, 0.0}});
  const Tensor scale = stack({ones({3}, {.dtype = kFloat64}), v}, 0);
  const Tensor shift = testing::f64({{1.0, 0.0, 0.0}, {1.0, 0.0, 0.0}}) * (v[0] * 10.0);
  const Tensor o = (w * 2.0 * scale + shift) * m;
  CHECK(testing::flat(y) == testing::flat(o));
  const std::vector<Tensor> g = grad({sum(y * y)}, {w, v});
  const std::vector<Tensor> e = grad({sum(o * o)}, {w, v});
  CHECK(testing::flat(g[0]) == testing::flat(e[0]));
  CHECK(testing::flat(g[1]) == testing::flat(e[1]));

  // A view made before the write sees it in its values and its gradient (its grad_fn remade).
  const Tensor z = w * 1.0;
  const Tensor row = z[0], col = z.index({Slice(), 1});
  z.mul_(3.0);
  row.add_(v);  // col[0] is row[1]: changed through another view
  CHECK(testing::flat(col) == std::vector<double>{-6.0 - 3.0, 12.0});
  CHECK(testing::flat(grad({sum(col * v.index({Slice(None, 2)}))}, {w, v})[1]) ==
        std::vector<double>{-9.0, 2.0 + 12.0, 0.0});
  CHECK(testing::flat(grad({sum(col)}, {w})[0]) == std::vector<double>{0, 3, 0, 0, 3, 0});

  // A buffer without history filled step by step, as a recurrent layer writes its outputs.
  const Tensor buffer = zeros({2, 3}, {.dtype = kFloat64});
  for (std::int64_t t = 0; t < 3; ++t)
    buffer.index_put_({Slice(), t}, w.index({Slice(), t}) * (static_cast<double>(t) + 1.0));
  CHECK(buffer.requires_grad());
  CHECK(testing::flat(grad({sum(buffer)}, {w})[0]) == std::vector<double>{1, 2, 3, 1, 2, 3});

  // A detach()ed view has its own history: writing into it leaves the base's alone.
  const Tensor d = (w * 1.0)[0].detach();
  d.add_(v);
  CHECK(testing::flat(grad({sum(d)}, {v})[0]) == std::vector<double>{1, 1, 1});
}

TEST_CASE("in-place ops through views in a recorded graph: gradcheck and gradgradcheck") {
  const auto f = [](const std::vector<Tensor>& in) {
    const Tensor y = in[0] * in[0];
    y[1].mul_(in[1]);                                            // a row
    y.index({Slice(), Slice(None, None, 2)}).add_(in[0].sum());  // stepped
    y.t()[1].copy_(in[1].index({Slice(None, 2)}).exp());         // a column of the transpose
    const Tensor buffer = zeros({3, 2}, {.dtype = kFloat64});
    buffer.t().copy_(y);  // all through a view
    return buffer.sum(Axes{0}) * y[0].sum();
  };
  const std::vector<Tensor> inputs = {testing::f64({{0.5, -1.5, 2.0}, {1.25, 0.75, -2.0}}, true),
                                      testing::f64({0.3, -0.7, 1.1}, true)};
  CHECK_GRADCHECK(gradcheck(f, inputs));
  CHECK_GRADCHECK(gradgradcheck(f, inputs));
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
