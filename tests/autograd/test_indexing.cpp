// LibTorch's indexing: x.index({...}) against the same entries picked by hand (PyTorch 1.13's
// x[1:, 0], x[..., None], x[mask], x[idx], x[i, :, j] give these, checked by hand), its gradients
// by gradcheck, and index_put_.
#include <doctest/doctest.h>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::indexing;

namespace {
// (2, 3, 4) float64 with entries 0..23.
Tensor cube(bool requires_grad = false) {
  return reshape(arange(0, 24, 1, {.dtype = kFloat64}), {2, 3, 4}).detach().requires_grad_(
      requires_grad);
}
}  // namespace

TEST_CASE("index: integers, slices, None and Ellipsis are views") {
  const Tensor x = cube();
  const Tensor a = x.index({Slice(1, None), 0});  // x[1:, 0]
  CHECK(a.sizes() == IntList({1, 4}));
  CHECK(testing::flat(a) == std::vector<double>{12, 13, 14, 15});
  CHECK(a.is_view());
  CHECK(x.index({Ellipsis, None}).sizes() == IntList({2, 3, 4, 1}));  // x[..., None]
  CHECK(testing::flat(x.index({0, Ellipsis, 2})) == std::vector<double>{2, 6, 10});  // x[0, ..., 2]
  CHECK(testing::flat(x.index({-1, -1, Slice(None, None, 2)})) == std::vector<double>{20, 22});
  CHECK(testing::flat(x.index({Slice(), Slice(1, 3), 3})) == std::vector<double>{7, 11, 19, 23});
  CHECK(x.index({None, 1, None}).sizes() == IntList({1, 1, 3, 4}));
  CHECK_THROWS_WITH_AS(x.index({0, 0, 0, 0}), doctest::Contains("too many indices"), IndexError);
  CHECK_THROWS_WITH_AS(x.index({Ellipsis, 0, Ellipsis}), doctest::Contains("single Ellipsis"),
                       IndexError);
  CHECK_THROWS_AS(x.index({2}), IndexError);
}

TEST_CASE("index: int64 positions and bool masks") {
  const Tensor x = cube();
  // x[:, [2, 0]]: axis 1 picked.
  CHECK(testing::flat(x.index({Slice(), testing::i64({2, 0}), 1})) ==
        std::vector<double>{9, 1, 21, 13});
  // x[0, idx] with a 2-D idx: its shape replaces the axis.
  CHECK(x.index({0, reshape(testing::i64({0, 1, 2, 1}), {2, 2})}).sizes() == IntList({2, 2, 4}));
  // A bool mask over the last axis, and over the last two.
  const Tensor m = tensor({1, 0, 0, 1}, {.dtype = kBool});
  CHECK(testing::flat(x.index({1, 2, m})) == std::vector<double>{20, 23});
  const Tensor row = x[0];
  CHECK(testing::flat(row.index({row > 9.0})) == std::vector<double>{10, 11});
  CHECK(testing::flat(x.index({x > 21.0})) == std::vector<double>{22, 23});
  CHECK_THROWS_WITH_AS(x.index({0, testing::i64({3})}),
                       doctest::Contains("index 3 is out of bounds for axis 0 of size 3"),
                       IndexError);
  CHECK_THROWS_WITH_AS(x.index({0, testing::i64({0, 1}), testing::i64({0, 1, 2})}),
                       doctest::Contains("[2] and [3]"), ShapeError);
  CHECK_THROWS_WITH_AS(x.index({tensor({1, 0, 1}, {.dtype = kBool})}),
                       doctest::Contains("a mask of shape [3] for the axes from 0"), IndexError);
  CHECK_THROWS_AS(x.index({tensor({1.0})}), DtypeError);
}

TEST_CASE("index: several tensor entries broadcast together, as NumPy's advanced indexing") {
  const Tensor x = cube();
  const Tensor i = testing::i64({0, 1}), j = testing::i64({2, -1});
  // x[i, :, j]: the indexed axes are not adjacent, so their shape comes first.
  const Tensor a = x.index({i, Slice(), j});
  CHECK(a.sizes() == IntList({2, 3}));
  CHECK(testing::flat(a) == std::vector<double>{2, 6, 10, 15, 19, 23});
  // x[:, i, j]: adjacent, in place of the axes.
  CHECK(testing::flat(x.index({Slice(), i, j})) == std::vector<double>{2, 7, 14, 19});
  // x[[[0], [1]], [1, 2]]: (2, 1) with (2,) broadcast to (2, 2).
  const Tensor c = x.index({reshape(testing::i64({0, 1}), {2, 1}), testing::i64({1, 2})});
  CHECK(c.sizes() == IntList({2, 2, 4}));
  CHECK(testing::flat(c.index({Ellipsis, 0})) == std::vector<double>{4, 8, 16, 20});
  // A mask over two axes; a mask and an int64 tensor together; a None between two tensors.
  const Tensor m = tensor({{1, 0, 1}, {0, 1, 0}}, {.dtype = kBool});
  CHECK(x.index({m}).sizes() == IntList({3, 4}));
  CHECK(testing::flat(x.index({m, 0})) == std::vector<double>{0, 8, 16});
  CHECK(testing::flat(x.index({1, tensor({1, 0, 1}, {.dtype = kBool}), i})) ==
        std::vector<double>{12, 21});
  const Tensor e = x.index({i, None, j});
  CHECK(e.sizes() == IntList({2, 1, 4}));
  CHECK(testing::flat(e) == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
  // A 0-d mask: a new axis, kept or emptied.
  CHECK(x.index({tensor({1}, {.dtype = kBool}).reshape({})}).sizes() == IntList({1, 2, 3, 4}));
  CHECK(x.index({tensor({0}, {.dtype = kBool}).reshape({})}).sizes() == IntList({0, 2, 3, 4}));
}

TEST_CASE("index: gradients of every kind of entry") {
  const auto f = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    return x.index({Slice(1, None), 0}) * 2.0 + x.index({0, Slice(None, None, 2)}).sum() +
           x.index({Ellipsis, testing::i64({3, 1, 3})}).sum() +
           x.index({1, tensor({0, 1, 1}, {.dtype = kBool})}).sum() +
           x.index({testing::i64({0, 1, 1}), Slice(), testing::i64({3, 0, 3})}).sum();
  };
  const Tensor x = cube(true);
  CHECK_GRADCHECK(gradcheck(f, {x}));
  CHECK_GRADCHECK(gradgradcheck(f, {x}));
}

TEST_CASE("index_put_: through a view, at int64 positions, under a mask") {
  const Tensor x = cube();
  x.index_put_({0, Slice(0, 2)}, 0.0);  // x[0, 0:2] = 0
  CHECK(testing::flat(x[0]) == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 8, 9, 10, 11});
  x.index_put_({1, testing::i64({2, 0})}, testing::f64({-1, -2}).unsqueeze(1));
  CHECK(testing::flat(x[1]) ==
        std::vector<double>{-2, -2, -2, -2, 16, 17, 18, 19, -1, -1, -1, -1});
  x.index_put_({1, 1, tensor({0, 1, 0, 1}, {.dtype = kBool})}, 5.0);
  CHECK(testing::flat(x.index({1, 1})) == std::vector<double>{16, 5, 18, 5});
  // The value broadcasts to x.index(indices) (here (2, 2)), as PyTorch's: [5, 6] is each row.
  const Tensor y = zeros({2, 2}, {.dtype = kFloat64});
  y.index_put_({testing::i64({0, 1})}, testing::f64({5, 6}));
  CHECK(testing::flat(y) == std::vector<double>{5, 6, 5, 6});
  // An Ellipsis before a tensor index: the last axis, every row.
  y.index_put_({Ellipsis, testing::i64({0})}, 7.0);
  CHECK(testing::flat(y) == std::vector<double>{7, 6, 7, 6});
}

TEST_CASE("index_put_ and the gradient at several tensor entries, repeats included") {
  // y[i, :, j] = [1, 2, 3]: each picked row of the middle axis gets the value.
  const Tensor y = zeros({2, 3, 4}, {.dtype = kFloat64});
  y.index_put_({testing::i64({0, 1}), Slice(), testing::i64({2, -1})}, testing::f64({1, 2, 3}));
  CHECK(testing::flat(y) == std::vector<double>{0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0,
                                                0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3});
  const Tensor q = zeros({2, 3}, {.dtype = kFloat64});
  q.index_put_({testing::i64({0, 1, 1}), testing::i64({2, 0, 1})}, testing::f64({1, 2, 3}));
  CHECK(testing::flat(q) == std::vector<double>{0, 0, 1, 2, 3, 0});
  q.index_put_({tensor({{1, 0, 1}, {0, 1, 0}}, {.dtype = kBool})}, testing::f64({4, 5, 6}));
  CHECK(testing::flat(q) == std::vector<double>{4, 0, 5, 2, 6, 0});
  q.index_put_({q > 4.5}, -1.0);  // a mask alone with one value: masked_fill_
  CHECK(testing::flat(q) == std::vector<double>{4, 0, -1, 2, -1, 0});
  const Tensor n = testing::i64({1, 2, 3});
  n.index_put_({n > 1}, scalar(7, {.dtype = kInt64}));
  CHECK(testing::ints(n) == testing::I64s{1, 7, 7});
  // Repeated positions add up in the gradient.
  const Tensor w = reshape(arange(0, 6, 1, {.dtype = kFloat64}), {2, 3}).detach().requires_grad_();
  const Tensor picked = w.index({testing::i64({0, 0, 1}), testing::i64({1, 1, 2})});
  sum(picked * testing::f64({1, 2, 3})).backward();
  CHECK(testing::flat(w.grad()) == std::vector<double>{0, 3, 0, 0, 0, 3});
  // Written while recording: the value's gradient comes back from where it went.
  const auto f = [](const std::vector<Tensor>& in) {
    const Tensor buffer = in[0] * 1.0;
    buffer.index_put_({testing::i64({0, 1}), Slice(), testing::i64({1, 0})}, in[1] * in[1]);
    return buffer * buffer;
  };
  const std::vector<Tensor> inputs = {cube(true), testing::f64({0.5, -1.5, 2.0}, true)};
  CHECK_GRADCHECK(gradcheck(f, inputs));
  CHECK_GRADCHECK(gradgradcheck(f, inputs));
  // Through a view of a buffer, and into a detach()ed view (its own history).
  const auto g = [](const std::vector<Tensor>& in) {
    const Tensor buffer = zeros({2, 3}, {.dtype = kFloat64});
    buffer[1].index_put_({testing::i64({2, 0})}, in[1].index({Slice(None, 2)}).exp());
    const Tensor mine = full({1, 3}, 2.0, {.dtype = kFloat64})[0].detach();
    mine.index_put_({testing::i64({1})}, in[1][2] * 3.0);
    return buffer.sum(Axes{0}) * mine;
  };
  const std::vector<Tensor> small = {cube(true), testing::f64({0.5, -1.5, 2.0}, true)};
  CHECK_GRADCHECK(gradcheck(g, small));
  CHECK_GRADCHECK(gradgradcheck(g, small));
  // Positions written once each, read through any layout: a transposed x.
  const Tensor t = zeros({3, 2}, {.dtype = kFloat64});
  t.t().index_put_({testing::i64({1}), testing::i64({0, 2})}, testing::f64({8, 9}));
  CHECK(testing::flat(t) == std::vector<double>{0, 8, 0, 0, 0, 9});
}
