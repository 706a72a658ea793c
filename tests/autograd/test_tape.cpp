// Engine semantics: what backward does, when it refuses, and how much memory the tape keeps.
#include <doctest/doctest.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using testing::flat;

namespace {
Tensor leaf(xt::xarray<double> a) { return Tensor(std::move(a), true); }
}  // namespace

TEST_CASE("every recorded op adds one tape entry; the entries go with the graph") {
  const std::size_t before = Tape::current().size();
  {
    const Tensor x = leaf({1.0, 2.0});
    const Tensor y = exp(x);
    const Tensor z = sum(mul(y, y));
    CHECK(Tape::current().size() == before + 3);  // exp, mul, sum_to
    CHECK(z.grad_fn()->name() == "sum_to");
    CHECK(y.grad_fn()->name() == "exp");
  }
  CHECK(Tape::current().size() == before);
}

TEST_CASE("a tensor used twice accumulates both gradients") {
  const Tensor x = leaf({3.0});
  const Tensor y = x * x + x;  // dy/dx = 2x + 1
  y.backward();
  CHECK(flat(x.grad()) == std::vector<double>{7.0});
}

TEST_CASE("diamond graph: two paths from one input meet again") {
  const Tensor x = leaf({0.5, -1.0});
  const Tensor y = sum(exp(x) * tanh(x));
  y.backward();
  const std::vector<double> g = flat(x.grad());
  for (std::size_t i = 0; i < 2; ++i) {
    const double v = flat(x)[i];
    const double expected =
        std::exp(v) * std::tanh(v) + std::exp(v) * (1 - std::pow(std::tanh(v), 2));
    CHECK(g[i] == doctest::Approx(expected).epsilon(1e-14));
  }
}

TEST_CASE("inputs that do not reach the output get no gradient") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor unused = leaf({5.0});
  const Tensor also_unused = unused * 2.0;  // recorded, but not on the path to y
  const Tensor y = sum(x * 2.0);
  y.backward();
  CHECK(flat(x.grad()) == std::vector<double>{2.0, 2.0});
  CHECK_FALSE(unused.grad().defined());
}

TEST_CASE("no-grad mode records nothing") {
  const Tensor x = leaf({1.0, 2.0});
  const std::size_t before = Tape::current().size();
  Tensor y;
  {
    NoGradGuard guard;
    CHECK_FALSE(GradMode::is_enabled());
    y = sum(exp(x) * x);
  }
  CHECK(GradMode::is_enabled());
  CHECK(Tape::current().size() == before);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  CHECK_THROWS_AS(y.backward(), AutogradError);
}

TEST_CASE("a second backward through released saved tensors fails; retain_graph keeps them") {
  const Tensor x = leaf({2.0});
  const Tensor y = sum(x * x);
  y.backward();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph"), AutogradError);

  const Tensor z = sum(x * x);
  x.zero_grad();
  z.backward(Tensor(), true);
  z.backward();
  CHECK(flat(x.grad()) == std::vector<double>{8.0});  // 2 * (2x)
}

TEST_CASE("leaf gradients accumulate across backward calls until zero_grad") {
  const Tensor x = leaf({1.0, -1.0});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  CHECK(flat(x.grad()) == std::vector<double>{6.0, 6.0});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * 3.0).backward();
  CHECK(flat(x.grad()) == std::vector<double>{3.0, 3.0});
}

TEST_CASE("backward needs a seed for a tensor of more than one element") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("[2]"), AutogradError);
  CHECK_THROWS_AS(y.backward(testing::f64({1.0, 2.0, 3.0})), AutogradError);
  CHECK_THROWS_AS(y.backward(tensor({1.0, 1.0})), AutogradError);  // float32 seed
  y.backward(testing::f64({1.0, 10.0}));
  CHECK(flat(x.grad()) == std::vector<double>{2.0, 20.0});
  const Tensor single = leaf({4.0});
  (single * single).backward();  // one element: seeded with 1
  CHECK(flat(single.grad()) == std::vector<double>{8.0});
}

TEST_CASE("the seed given to backward is not aliased by a leaf's gradient") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor seed = testing::f64({1.0, 1.0});
  x.backward(seed);  // a leaf as output: its gradient is the seed
  x.backward(seed);
  CHECK(flat(x.grad()) == std::vector<double>{2.0, 2.0});
  CHECK(flat(seed) == std::vector<double>{1.0, 1.0});
}

namespace {
Tensor loss_built_in_a_scope(const Tensor& w) {
  const Tensor hidden = tanh(w * 2.0);
  const Tensor out = hidden * hidden;
  return sum(out);  // hidden and out go out of scope here
}
}  // namespace

TEST_CASE("backward works after the scope that built the graph has ended") {
  const Tensor w = leaf({0.3, -0.2});
  const Tensor loss = loss_built_in_a_scope(w);
  loss.backward();
  for (std::size_t i = 0; i < 2; ++i) {
    const double t = std::tanh(2 * flat(w)[i]);
    CHECK(flat(w.grad())[i] == doctest::Approx(2 * t * (1 - t * t) * 2).epsilon(1e-14));
  }
}

TEST_CASE("a chain of 1,000,000 ops runs backward and is freed without overflowing the stack") {
  const Tensor x = leaf({1.5});
  const std::size_t before = Tape::current().size();
  {
    Tensor y = x;
    for (int i = 0; i < 1000000; ++i) y = neg(y);
    CHECK(Tape::current().size() == before + 1000000);
    y.backward();
  }
  CHECK(flat(x.grad()) == std::vector<double>{1.0});
  CHECK(Tape::current().size() == before);
}

TEST_CASE("grad() returns gradients without touching .grad, and create_graph differentiates them") {
  const Tensor x = leaf({1.0, 2.0, -1.0});
  const Tensor y = sum(pow(x, 3.0));
  const std::vector<Tensor> g = grad({y}, {x}, {}, std::nullopt, true);
  CHECK_FALSE(x.grad().defined());
  CHECK(g[0].requires_grad());
  CHECK(flat(g[0]) == std::vector<double>{3.0, 12.0, 3.0});
  // Hessian-vector product: H v = 6 x * v for this f.
  const Tensor v = testing::f64({1.0, 0.5, 2.0});
  const std::vector<Tensor> hv = grad({sum(g[0] * v)}, {x});
  CHECK(flat(hv[0]) == std::vector<double>{6.0, 6.0, -12.0});

  const Tensor w = leaf({1.0});
  CHECK_THROWS_WITH_AS(grad({sum(x)}, {w}), doctest::Contains("allow_unused"), AutogradError);
  CHECK_FALSE(grad({sum(x)}, {w}, {}, std::nullopt, false, true)[0].defined());
}

TEST_CASE("grad() of intermediate tensors") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor h = x * 3.0;
  const Tensor y = sum(h * h);
  const std::vector<Tensor> g = grad({y}, {h, x});
  CHECK(flat(g[0]) == std::vector<double>{6.0, 12.0});   // 2h
  CHECK(flat(g[1]) == std::vector<double>{18.0, 36.0});  // 2h * 3
}

TEST_CASE("with create_graph off, backward records nothing; with it on, it does") {
  const Tensor x = leaf({0.5, 1.0});
  const Tensor y = sum(exp(x) * x);
  const std::size_t recorded = Tape::current().size();
  y.backward(Tensor(), true);
  CHECK(Tape::current().size() == recorded);
  CHECK_FALSE(x.grad().requires_grad());
  x.zero_grad();
  y.backward(Tensor(), true, true);
  CHECK(Tape::current().size() > recorded);
  CHECK(x.grad().requires_grad());
  x.zero_grad();  // x.grad's graph holds x: drop it, or the two keep each other alive
}

TEST_CASE("each thread has its own tape; a graph cannot cross threads") {
  auto work = [](double start, double* result, std::size_t* tape_size) {
    const Tensor x = leaf({start});
    Tensor y = x;
    for (int i = 0; i < 1000; ++i) y = y * 1.001 + 0.001;
    *tape_size = Tape::current().size();
    y.backward();
    *result = x.grad().item();
  };
  double r1 = 0, r2 = 0;
  std::size_t s1 = 0, s2 = 0;
  std::thread t1(work, 1.0, &r1, &s1), t2(work, 2.0, &r2, &s2);
  t1.join();
  t2.join();
  CHECK(r1 == doctest::Approx(std::pow(1.001, 1000)).epsilon(1e-12));
  CHECK(r1 == r2);
  CHECK(s1 == 2000);  // a mul and an add per step, on each thread's own tape
  CHECK(s2 == 2000);

  const Tensor x = leaf({1.0});
  const Tensor here = x * 2.0;
  std::string message;
  std::thread other([&] {
    try {
      (void)(here * 3.0);
    } catch (const AutogradError& e) {
      message = e.what();
    }
  });
  other.join();
  CHECK(message.find("another thread") != std::string::npos);
}

TEST_CASE("memory stays bounded over 10,000 training-like iterations") {
  const std::size_t before = Tape::current().size();
  Tensor w = leaf(xt::xarray<double>{{0.1, -0.2}, {0.3, 0.05}});
  const Tensor x = testing::f64({{1.0, 2.0}, {-1.0, 0.5}, {0.2, 0.1}});
  Tensor loss;  // kept across iterations, as training loops often do
  std::size_t size_after_first = 0;
  for (int step = 0; step < 10000; ++step) {
    loss = mean(relu(matmul(x, w)) * 2.0);
    loss.backward();
    {
      NoGradGuard no_grad;
      w.mutable_value<double>() -= 0.01 * w.grad().value<double>();
    }
    w.zero_grad();
    if (step == 0) size_after_first = Tape::current().size();
  }
  CHECK(Tape::current().size() <= size_after_first);
  CHECK(Tape::current().saved_bytes() < 4096);
  loss = Tensor();
  CHECK(Tape::current().size() == before);
}

TEST_CASE("memory stays bounded when forward results that require grad are discarded") {
  const std::size_t before = Tape::current().size();
  const Tensor w = leaf({0.5, -0.5, 2.0});
  for (int i = 0; i < 10000; ++i) (void)sum(tanh(w * 2.0));
  CHECK(Tape::current().size() == before);

  Tensor kept;  // each iteration's result replaces the last: old entries are freed in the middle
  for (int i = 0; i < 10000; ++i) kept = sum(tanh(w * 2.0));
  CHECK(Tape::current().size() < before + 600);
  kept = Tensor();
  CHECK(Tape::current().size() == before);
}

TEST_CASE("a tensor changed in place between forward and backward: an error naming the op") {
  const Tensor x = testing::f64({1.0, 2.0}, true);
  const Tensor w = testing::f64({3.0, 4.0});
  const Tensor y = sum(x * w);
  w.mutable_value<double>()(0) = 30.0;  // the gradient of x would silently be 30, not 3
  CHECK_THROWS_WITH_AS(y.backward(),
                       doctest::Contains("mul: an input that it saved for backward was changed "
                                         "in place after the forward"),
                       AutogradError);
  // A saved output changed through a detached handle: it shares the values, so their version.
  const Tensor e = exp(x);
  const Tensor z = sum(e);
  e.detach().mutable_value<double>()(1) = 0.0;
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("exp: the output"), AutogradError);
  // Changes after backward are what optimizers do: fine.
  const Tensor v = sum(x * w);
  v.backward();
  x.mutable_value<double>()(0) = 5.0;
  CHECK(x.grad().defined());
}

TEST_CASE("handles dropped on another thread while the building thread keeps recording") {
  // Thread A builds graphs and hands their outputs to thread B, which drops them, while A goes on
  // recording: the nodes go back to A's tape and A deletes them. Under ./dev sanitize any race on
  // the tape or the nodes is a report.
  std::mutex m;
  std::condition_variable cv;
  std::deque<Tensor> handed;
  bool done = false;
  std::size_t dropped = 0;
  std::thread b([&] {
    for (;;) {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return done || !handed.empty(); });
      if (handed.empty() && done) return;
      Tensor t = std::move(handed.front());
      handed.pop_front();
      lock.unlock();
      t = Tensor();  // the last handle of that graph goes here, on B
      ++dropped;
    }
  });
  std::size_t live_after = 0;
  std::thread a([&] {
    const Tensor x = testing::f64({1.0, 2.0, 3.0}, true);
    for (int i = 0; i < 2000; ++i) {
      Tensor y = x;
      for (int k = 0; k < 5; ++k) y = tanh(y * 1.01 + 0.1);
      {
        std::lock_guard<std::mutex> lock(m);
        handed.push_back(sum(y));
      }
      cv.notify_one();
      const Tensor own = sum(exp(x));  // A keeps recording and running backward meanwhile
      own.backward();
    }
    {
      std::lock_guard<std::mutex> lock(m);
      done = true;
    }
    cv.notify_one();
    while (true) {  // once B dropped everything, A's next op collects what came back
      {
        std::lock_guard<std::mutex> lock(m);
        if (handed.empty()) break;
      }
      std::this_thread::yield();
    }
    b.join();
    const Tensor probe = exp(x);
    live_after = Tape::current().size();
  });
  a.join();
  CHECK(dropped == 2000);
  CHECK(live_after == 1);  // only the probe's node: every handed-back graph was deleted
}

TEST_CASE("a graph outlives the thread that built it, and is freed where its last handle goes") {
  Tensor kept;
  std::thread t([&] {
    const Tensor x = testing::f64({1.0, 2.0}, true);
    kept = sum(tanh(x) * 2.0);
  });
  t.join();
  CHECK(kept.item() == doctest::Approx(2 * (std::tanh(1.0) + std::tanh(2.0))));
  kept = Tensor();
}

TEST_CASE("post-accumulate-grad hooks: once per backward, when the leaf's gradient is final") {
  const Tensor w1 = testing::f64({1.0, 2.0}, true), w2 = testing::f64({0.5, -1.0}, true);
  const Tensor x = testing::f64({3.0, 4.0});
  std::vector<std::string> order;
  std::vector<std::vector<double>> seen;
  const auto hook = [&](const char* name) {
    return [&, name](const Tensor& leaf) {
      order.push_back(name);
      seen.push_back(testing::flat(leaf.grad()));
    };
  };
  w1.register_post_accumulate_grad_hook(hook("w1"));
  w2.register_post_accumulate_grad_hook(hook("w2"));
  // A recurrence: w1 is used at each of three steps, and in one op twice; w2 only at the end.
  Tensor h = x;
  for (int t = 0; t < 3; ++t) h = tanh(h * w1 + w1 * w1);
  const Tensor loss = sum(h * w2);
  loss.backward();
  REQUIRE(order == std::vector<std::string>{"w2", "w1"});  // w2's last use is the newest
  CHECK(seen[0] == testing::flat(w2.grad()));  // final when the hook ran: nothing came after
  CHECK(seen[1] == testing::flat(w1.grad()));
  // grad() leaves .grad alone and calls no hook.
  const Tensor again = sum(tanh(x * w1) * w2);
  grad({again}, {w1});
  CHECK(order.size() == 2);
  // A second backward calls them again, with the accumulated gradient.
  sum(tanh(x * w1) * w2).backward();
  REQUIRE(order.size() == 4);
  CHECK(seen[3] == testing::flat(w1.grad()));
  CHECK_THROWS_AS((w1 * 2.0).register_post_accumulate_grad_hook([](const Tensor&) {}),
                  AutogradError);
}

TEST_CASE("queue_backward_callback: runs once the sweep is done, in order, only within backward") {
  const Tensor w = testing::f64({1.0, 2.0}, true), v = testing::f64({3.0}, true);
  std::vector<std::string> events;
  w.register_post_accumulate_grad_hook([&](const Tensor&) {
    events.push_back("hook w");
    queue_backward_callback([&] {
      // Every gradient of this backward is final here, v's too (its hook runs after w's).
      events.push_back("first: v.grad " + std::to_string(v.grad().item()));
      queue_backward_callback([&] { events.push_back("queued by a callback"); });
    });
    queue_backward_callback([&] { events.push_back("second"); });
  });
  v.register_post_accumulate_grad_hook([&](const Tensor&) { events.push_back("hook v"); });
  const Tensor loss = sum(w * w) * v;  // v's use is the newest op: its hook runs first
  loss.backward();
  CHECK(events == std::vector<std::string>{"hook v", "hook w", "first: v.grad 5.000000", "second",
                                           "queued by a callback"});
  CHECK_THROWS_WITH_AS(queue_backward_callback([] {}),
                       doctest::Contains("called outside a backward()"), AutogradError);
  // A callback's exception reaches backward's caller, and the next backward starts clean.
  events.clear();
  const Tensor u = testing::f64({1.0}, true);
  u.register_post_accumulate_grad_hook([&](const Tensor&) {
    queue_backward_callback([] { throw ValueError("from a callback"); });
  });
  CHECK_THROWS_AS(sum(u * 2.0).backward(), ValueError);
  CHECK_THROWS_AS(queue_backward_callback([] {}), AutogradError);
}

TEST_CASE("post-accumulate-grad hooks: a leaf no path reaches is settled when the sweep passes it") {
  const Tensor used = testing::f64({1.0}, true), unused = testing::f64({2.0}, true);
  int calls = 0;
  unused.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    ++calls;
    CHECK_FALSE(leaf.grad().defined());  // nothing came to it
  });
  const Tensor other = unused * 3.0;  // an op that uses it, on the tape, off the loss's path
  const Tensor loss = sum(used * 2.0) + sum(used * used);
  loss.backward();
  CHECK(calls == 1);
  CHECK(other.requires_grad());
}
