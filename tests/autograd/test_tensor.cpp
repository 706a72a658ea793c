#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
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

TEST_CASE("printing shows shape, dtype and values") {
  const Tensor x = tensor({1, 2}, {.requires_grad = true});
  const std::string s = x.str();
  CHECK(s.find("shape=[2]") != std::string::npos);
  CHECK(s.find("float32") != std::string::npos);
  CHECK(s.find("requires_grad=true") != std::string::npos);
  CHECK(s.find("{ 1.,  2.}") != std::string::npos);
  CHECK((x * 2.0).str().find("grad_fn=mul") != std::string::npos);
  CHECK(Tensor().str() == "Tensor(undefined)");
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
