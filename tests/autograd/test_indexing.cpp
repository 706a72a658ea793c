// LibTorch's indexing: x.index({...}) against the same entries picked by hand (PyTorch 1.13's
// x[1:, 0], x[..., None], x[mask], x[idx] give these, checked by hand), its gradients by
// gradcheck, and index_put_.
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
  CHECK_THROWS_AS(x.index({testing::i64({0}), testing::i64({0})}), IndexError);
  CHECK_THROWS_AS(x.index({0, testing::i64({3})}), IndexError);
  CHECK_THROWS_AS(x.index({tensor({1.0})}), DtypeError);
}

TEST_CASE("index: gradients of every kind of entry") {
  const auto f = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    return x.index({Slice(1, None), 0}) * 2.0 + x.index({0, Slice(None, None, 2)}).sum() +
           x.index({Ellipsis, testing::i64({3, 1, 3})}).sum() +
           x.index({1, tensor({0, 1, 1}, {.dtype = kBool})}).sum();
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
