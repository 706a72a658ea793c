// slice's backward gives only its region, which the engine adds into the input's gradient:
// every way a gradient can arrive (a node's slot, a leaf's .grad, grad(), a slot shared with
// another input, a second backward) against the same sums written out by hand.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// x (2, 4, 3) float64 with entries 0.1 i.
Tensor ramp(bool requires_grad) {
  std::vector<double> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * double(i);
  return from_vector(v, {2, 4, 3}, {.dtype = kFloat64, .requires_grad = requires_grad});
}

// sum over t of (t + 1) * select(x, 1, t), summed: d/dx[b, t, h] = t + 1.
Tensor per_step(const Tensor& x) {
  Tensor total;
  for (std::ptrdiff_t t = 0; t < 4; ++t) {
    const Tensor term = sum(select(x, 1, t) * double(t + 1));
    total = total.defined() ? total + term : term;
  }
  return total;
}

std::vector<double> expected_per_step(double scale) {
  std::vector<double> e;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 4; ++t)
      for (int h = 0; h < 3; ++h) e.push_back(scale * (t + 1));
  return e;
}
}  // namespace

TEST_CASE("slices of a leaf: each step's gradient lands in its region of .grad") {
  const Tensor x = ramp(true);
  per_step(x).backward();
  CHECK(testing::flat(x.grad()) == expected_per_step(1));
  per_step(x).backward();  // accumulates into the same .grad, in place
  CHECK(testing::flat(x.grad()) == expected_per_step(2));
  // grad() fills its own result, not .grad.
  CHECK(testing::flat(grad({per_step(x)}, {x})[0]) == expected_per_step(1));
  CHECK(testing::flat(x.grad()) == expected_per_step(2));
}

TEST_CASE("slices of an op's output, strided and overlapping, and a slot shared with another input") {
  const Tensor x = ramp(true);
  const Tensor y = x * 2.0;  // an op's output: its gradient slot collects the regions
  // Overlapping regions and a step: rows 0, 2 of axis 1 and rows 1..3, then the whole of y.
  const Tensor loss = sum(slice(y, 1, 0, 4, 2)) + sum(slice(y, 1, 1, 4)) * 3.0 + sum(y);
  loss.backward();
  std::vector<double> e;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 4; ++t)
      for (int h = 0; h < 3; ++h) e.push_back(2.0 * ((t % 2 == 0 ? 1 : 0) + (t >= 1 ? 3 : 0) + 1));
  CHECK(testing::flat(x.grad()) == e);
  // add hands one gradient to both of its inputs: the region added into one must not show up in
  // the other.
  // (Op outputs, so that both gradients sit in node slots; the slice is recorded first, so the
  // sweep reaches add before it.)
  const Tensor x0 = ramp(true), x1 = ramp(true);
  const Tensor a = x0 * 1.0, b = x1 * 1.0;
  const Tensor picked = select(a, 1, 2);
  const Tensor s = a + b;
  (sum(s) + sum(picked) * 10.0).backward();
  std::vector<double> ea(24, 1.0), eb(24, 1.0);
  for (int bb = 0; bb < 2; ++bb)
    for (int h = 0; h < 3; ++h) ea[std::size_t(bb * 12 + 2 * 3 + h)] += 10.0;
  CHECK(testing::flat(x0.grad()) == ea);
  CHECK(testing::flat(x1.grad()) == eb);
}

TEST_CASE("slices under create_graph: the gradient is differentiable again") {
  const Tensor x = ramp(true);
  const Tensor y = sum(pow(slice(x, 1, 1, 3), 3.0));
  const Tensor g = grad({y}, {x}, {}, std::nullopt, true)[0];
  CHECK(g.requires_grad());
  const Tensor h = grad({sum(g)}, {x})[0];  // d/dx of 3 x^2 in the region: 6 x, 0 elsewhere
  const std::vector<double> hv = testing::flat(h), xv = testing::flat(x);
  for (std::size_t i = 0; i < 24; ++i) {
    const std::size_t t = (i / 3) % 4;
    CHECK(hv[i] == doctest::Approx(t == 1 || t == 2 ? 6 * xv[i] : 0.0));
  }
  CHECK_GRADCHECK(gradgradcheck([](const std::vector<Tensor>& in) {
    return slice(in[0], 2, 0, 3, 2) * slice(in[0], 1, 1, 4, 2).sum();
  }, {ramp(true)}));
}
