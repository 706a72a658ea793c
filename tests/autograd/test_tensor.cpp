#include <doctest/doctest.h>

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "autograd/tensor.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

TEST_CASE("tensors are created from xtensor arrays and nested lists") {
  const Tensor a = tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(a.dtype() == Dtype::float32);
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.dim() == 2);
  CHECK(a.numel() == 6);
  CHECK(a.size(-1) == 3);
  CHECK(a.value<float>()(1, 2) == 6.0f);
  CHECK_THROWS_AS(a.size(2), IndexError);

  const Tensor b = tensor({1.5, 2.5}, {.dtype = kFloat64, .requires_grad = true});
  CHECK(b.dtype() == Dtype::float64);
  CHECK(b.requires_grad());
  CHECK(b.is_leaf());
  CHECK_THROWS_AS(b.value<float>(), DtypeError);

  const xt::xarray<double> values = {{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}};
  const Tensor c(values);
  CHECK(c.shape() == Shape{3, 2});
  CHECK(c.dtype() == Dtype::float64);
  CHECK(scalar(3.0).dim() == 0);
  CHECK(scalar(3.0).item() == 3.0);
  CHECK_THROWS_AS(a.item(), ValueError);
}

TEST_CASE("manual_seed seeds every thread's default generator, not only the caller's") {
  auto draw = [] { return testing::flat(randn({8}, {.dtype = kFloat64})); };
  Generator reference(11);
  const std::vector<double> expected = testing::flat(randn({8}, {.dtype = kFloat64}, reference));
  // A thread that exists already, and has drawn: it restarts from the seed at its next draw.
  std::mutex m;
  std::condition_variable cv;
  int stage = 0;
  std::vector<double> other_before, other_after;
  std::thread other([&] {
    other_before = draw();
    std::unique_lock<std::mutex> lock(m);
    stage = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return stage == 2; });
    other_after = draw();
  });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return stage == 1; });
  }
  manual_seed(11);
  {
    const std::lock_guard<std::mutex> lock(m);
    stage = 2;
  }
  cv.notify_all();
  other.join();
  CHECK(other_after == expected);
  CHECK(draw() == expected);  // and the caller's own
  // A thread started after manual_seed starts from the seed too.
  std::vector<double> later;
  std::thread([&] { later = draw(); }).join();
  CHECK(later == expected);
  // A thread's own seed holds until the next manual_seed.
  std::vector<double> own;
  std::thread([&] {
    default_generator().manual_seed(11);
    draw();
    own = draw();
  }).join();
  CHECK(own != expected);
}

TEST_CASE("factories: zeros, ones, full, arange, and seeded random tensors") {
  CHECK(testing::flat(zeros({2, 2}, {.dtype = kFloat64})) == std::vector<double>(4, 0.0));
  CHECK(testing::flat(ones({3}, {.dtype = kFloat64})) == std::vector<double>(3, 1.0));
  CHECK(testing::flat(full({2}, 7.0, {.dtype = kFloat64})) == std::vector<double>{7.0, 7.0});
  CHECK(testing::flat(arange(0, 1, 0.25, {.dtype = kFloat64})) ==
        std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(arange(5, 0, -1).numel() == 5);
  CHECK_THROWS_AS(arange(0, 1, 0), ValueError);

  manual_seed(7);
  const Tensor r1 = randn({100}, {.dtype = kFloat64});
  manual_seed(7);
  const Tensor r2 = randn({100}, {.dtype = kFloat64});
  CHECK(testing::flat(r1) == testing::flat(r2));
  Generator gen(3);
  const Tensor u = rand({1000}, {.dtype = kFloat64}, gen);
  for (double v : testing::flat(u)) {
    CHECK(v >= 0.0);
    CHECK(v < 1.0);
  }
  const auto stats = testing::flat(randn({20000}, {.dtype = kFloat64}, gen));
  double m = 0;
  for (double v : stats) m += v / stats.size();
  CHECK(std::abs(m) < 0.05);
}

// Every expected text but the last two was printed by LibTorch 1.13.1 (std::cout << t) for the
// same values; the last two are where xgrad lays out "Columns" headers on their own line.
TEST_CASE("printing: LibTorch's layout, formats and footer") {
  struct Case {
    Tensor t;
    const char* text;
  };
  const Case cases[] = {
      {tensor({{1.5f, -2.25f, 3.f}, {4.f, 5.125f, -6.f}}),
       " 1.5000 -2.2500  3.0000\n 4.0000  5.1250 -6.0000\n[ CPUFloatType{2,3} ]"},
      {tensor({{1.f, 2.f}, {3.f, 40.f}}), "  1   2\n  3  40\n[ CPUFloatType{2,2} ]"},
      {tensor({{1, 2, 3}, {-4, 50, 600}}, {.dtype = kInt64}),
       "   1    2    3\n  -4   50  600\n[ CPULongType{2,3} ]"},
      {tensor({1, 0, 1}, {.dtype = kBool}), " 1\n 0\n 1\n[ CPUBoolType{3} ]"},
      {tensor({1, 2, 255}, {.dtype = kUInt8}), "   1\n   2\n 255\n[ CPUByteType{3} ]"},
      {tensor({7, -8}, {.dtype = kInt32}), " 7\n-8\n[ CPUIntType{2} ]"},
      {full({}, 3.25), "3.25\n[ CPUFloatType{} ]"},
      {full({}, 5, {.dtype = kInt64}), "5\n[ CPULongType{} ]"},
      {tensor({0.1, 0.25, 100.0}, {.dtype = kFloat64}),
       "   0.1000\n   0.2500\n 100.0000\n[ CPUDoubleType{3} ]"},
      {tensor({0.001f, 0.002f}), "0.001 *\n 1.0000\n 2.0000\n[ CPUFloatType{2} ]"},
      {tensor({123456.5, 200000.5}, {.dtype = kFloat64}),
       "1e+05 *\n 1.2346\n 2.0000\n[ CPUDoubleType{2} ]"},
      {tensor({12345.f, 2.f, 0.5f}), " 1.2345e+04\n 2.0000e+00\n 5.0000e-01\n[ CPUFloatType{3} ]"},
      {tensor({12345678901.0, 1.0}, {.dtype = kFloat64}),
       " 1.2346e+10\n 1.0000e+00\n[ CPUDoubleType{2} ]"},
      {tensor({1e-120, 1e120}, {.dtype = kFloat64}),
       " 1.0000e-120\n 1.0000e+120\n[ CPUDoubleType{2} ]"},
      {tensor({1.5f, NAN, INFINITY, -INFINITY}),
       " 1.5000\n    nan\n    inf\n   -inf\n[ CPUFloatType{4} ]"},
      {tensor({INFINITY, -INFINITY}), "inf\n-inf\n[ CPUFloatType{2} ]"},
      {tensor({-0.0f, 1.0f}), "-0\n 1\n[ CPUFloatType{2} ]"},
      {tensor({-0.5f, 0.25f}), "-0.5000\n 0.2500\n[ CPUFloatType{2} ]"},
      {tensor({{1000.5f, 2000.25f}, {3.f, 4.f}}),
       " 1000.5000  2000.2500\n    3.0000     4.0000\n[ CPUFloatType{2,2} ]"},
      {reshape(arange(0, 12, 1), {2, 2, 3}),
       "(1,.,.) = \n  0  1  2\n  3  4  5\n\n(2,.,.) = \n   6   7   8\n   9  10  11\n"
       "[ CPUFloatType{2,2,3} ]"},
      {reshape(arange(0, 8, 1).to(kInt64), {2, 1, 2, 2}),
       "(1,1,.,.) = \n  0  1\n  2  3\n\n(2,1,.,.) = \n  4  5\n  6  7\n[ CPULongType{2,1,2,2} ]"},
      {tensor({{{0.001f, 0.002f}}, {{1.f, 2.f}}}),
       "(1,.,.) = \n 0.001 *\n  1.0000  2.0000\n\n(2,.,.) = \n  1  2\n[ CPUFloatType{2,1,2} ]"},
      {zeros({2, 0}), "[ CPUFloatType{2,0} ]"},
      {ones({2}, {.requires_grad = true}), " 1\n 1\n[ CPUFloatType{2} ]"},
      {Tensor(), "[ Tensor (undefined) ]"},
      // xgrad's own layout from here (LibTorch runs the first row into the header).
      {reshape(arange(0, 40, 1).to(kInt64), {1, 40}),
       "Columns 1 to 20\n  0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16  17  "
       "18  19\n"
       "\nColumns 21 to 40\n 20  21  22  23  24  25  26  27  28  29  30  31  32  33  34  35  36  "
       "37  38  39\n"
       "[ CPULongType{1,40} ]"},
      {tensor({1234567890123.0, 1.0}, {.dtype = kFloat64}).to(kInt64),  // every digit of an int
       " 1234567890123\n             1\n[ CPULongType{2} ]"},
  };
  for (const Case& c : cases) {
    std::ostringstream os;
    os << c.t;
    CHECK(os.str() == c.text);
    CHECK(c.t.str() == c.text);
  }
}

TEST_CASE(
    "printing: digits after the point follow set_print_precision; the stream keeps its flags") {
  std::ostringstream os;
  set_print_precision(2);
  os << tensor({1.0 / 3, 2.5}, {.dtype = kFloat64});
  set_print_precision(4);
  CHECK(os.str() == " 0.33\n 2.50\n[ CPUDoubleType{2} ]");
  CHECK_THROWS_AS(set_print_precision(0), ValueError);
  std::ostringstream after;
  after << tensor({1.5}) << " " << 0.125;  // no fixed or precision left behind
  CHECK(after.str() == " 1.5000\n[ CPUFloatType{1} ] 0.125");
}

TEST_CASE("detach shares the value and leaves the graph; requires_grad_ only on leaves") {
  const Tensor x = tensor({1, 2}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor y = x * 3.0;
  const Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(testing::flat(d) == std::vector<double>{3, 6});
  Tensor y2 = y;
  CHECK_THROWS_AS(y2.requires_grad_(false), AutogradError);
  Tensor leaf = tensor({1.0});
  leaf.requires_grad_();
  CHECK(leaf.requires_grad());
}

TEST_CASE("an undefined tensor gives a clear error, not a crash") {
  const Tensor t;
  CHECK_FALSE(t.defined());
  CHECK_THROWS_WITH_AS(t.shape(), doctest::Contains("undefined"), ValueError);
  CHECK_THROWS_AS(t.item(), ValueError);
}

TEST_CASE("compound assignment is in place: recorded, it rebases the history; on a leaf under "
          "NoGradGuard it is an SGD step") {
  const Tensor c0 = testing::f64({1.0, 2.0}, true);
  Tensor c = c0 * 1.0;  // not a leaf: in place while recording is allowed
  const Tensor alias = c;
  c += c + 1.0;  // c = 2 c0 + 1, written into c's storage
  c *= 2.0;
  CHECK(testing::flat(c) == std::vector<double>{6.0, 10.0});
  CHECK(alias.impl() == c.impl());  // every handle is the same tensor, as in LibTorch
  CHECK_FALSE(c.is_leaf());
  sum(c).backward();
  CHECK(testing::flat(c0.grad()) == std::vector<double>{4.0, 4.0});
  // A leaf that requires grad is refused while recording (PyTorch's message).
  Tensor leaf = testing::f64({1.0, 2.0}, true);
  CHECK_THROWS_WITH_AS(leaf += 1.0,
                       doctest::Contains("a leaf Variable that requires grad is being used in "
                                         "an in-place operation"),
                       AutogradError);

  // A hand-written SGD step: the parameter stays the same leaf, updated in place.
  Tensor p = testing::f64({1.0, -1.0}, true);
  const Tensor same = p;
  sum(p * p).backward();
  {
    NoGradGuard no_grad;
    p -= 0.25 * p.grad();
  }
  CHECK(p.is_leaf());
  CHECK(p.requires_grad());
  CHECK(p.impl() == same.impl());
  CHECK(testing::flat(same) == std::vector<double>{0.5, -0.5});
  {
    NoGradGuard no_grad;
    Tensor q = testing::f64({1.0, 2.0}, true);
    CHECK_THROWS_WITH_AS(q += testing::f64({{1.0, 2.0}, {3.0, 4.0}}),
                         doctest::Contains("must keep the tensor's shape [2]"), ShapeError);
    q /= 2.0;
    CHECK(testing::flat(q) == std::vector<double>{0.5, 1.0});
  }
}
