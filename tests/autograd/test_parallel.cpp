// xgrad's own loops on two threads: parallel_for's blocks, and ops and optimizer steps large
// enough to be split giving the same bits as on one thread (every split loop is elementwise, or
// sums each output in one fixed order).
#include <doctest/doctest.h>

#include <atomic>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "autograd/parallel.hpp"
#include "nn/optim.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// Sets the thread count for a scope, then back to the one the tests run with.
struct Threads {
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(1); }
};

// Everything the split loops touch, computed with `threads` threads from the same inputs. With
// gemm, products of K > 1 terms too: a GEMM may sum in another order on another thread count.
std::vector<std::vector<double>> run(int threads, Dtype dtype, bool gemm) {
  const Threads scope(threads);
  Generator gen(17);
  const Tensor x = randn({300, 400}, {.dtype = dtype, .requires_grad = true}, gen);
  const Tensor w = randn({300, 400}, {.dtype = dtype, .requires_grad = true}, gen);
  // Without gemm, linear has K = 1 (one product per entry) and only its bias wants a gradient:
  // the epilogue and the bias's column sum are xgrad's loops, split over 300 x 300 entries.
  const Tensor u = gemm ? x : randn({300, 1}, {.dtype = dtype}, gen);
  const Tensor v = gemm ? w : randn({300, 1}, {.dtype = dtype}, gen);
  const Tensor b = randn({300}, {.dtype = dtype, .requires_grad = true}, gen);
  const Tensor y = linear(u, v, b, Epilogue::tanh);
  const Tensor z = exp(mul(x, 0.01)) * w + relu(x) - 0.5;  // map and zip, 120k entries
  const Tensor loss = sum(mul(y, y)) + sum(mul(z, z));
  loss.backward();
  std::vector<std::vector<double>> out;
  for (const Tensor& t : {y, z, x.grad(), w.grad(), b.grad()})
    out.push_back(testing::flat(cast(t, kFloat64)));
  nn::Adam adam({x, w, b}, {.lr = 0.01, .weight_decay = 0.1});
  nn::SGD sgd({x, w, b}, {.lr = 0.01, .momentum = 0.9, .nesterov = true});
  for (int step = 0; step < 2; ++step) {
    adam.step();
    sgd.step();
  }
  for (const Tensor& t : {x, w, b}) out.push_back(testing::flat(cast(t, kFloat64)));
  return out;
}

void check_same(const std::vector<std::vector<double>>& a,
                const std::vector<std::vector<double>>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("array " << i);
    CHECK(a[i] == b[i]);
  }
}
}  // namespace

TEST_CASE("parallel_for: blocks cover the range once, split only when worth it") {
  const Threads scope(2);
  std::vector<std::atomic<int>> hits(100000);
  std::atomic<int> calls{0};
  parallel_for(hits.size(), kParallelGrain, [&](std::size_t begin, std::size_t end) {
    ++calls;
    for (std::size_t i = begin; i < end; ++i) ++hits[i];
  });
  CHECK(calls == 2);
  std::size_t wrong = 0;
  for (const auto& h : hits) wrong += h != 1;
  CHECK(wrong == 0);
  calls = 0;
  parallel_for(1000, kParallelGrain, [&](std::size_t begin, std::size_t end) {
    ++calls;
    CHECK(begin == 0);
    CHECK(end == 1000);
  });
  CHECK(calls == 1);
  parallel_for(0, 1, [&](std::size_t, std::size_t) { ++calls; });  // nothing to do: no call
  CHECK(calls == 1);
}

TEST_CASE("two threads give the same bits as one in xgrad's own loops, and run to run") {
  for (Dtype dtype : {kFloat32, kFloat64}) {
    INFO((dtype == kFloat32 ? "float32" : "float64"));
    check_same(run(1, dtype, false), run(2, dtype, false));  // elementwise, column sums, optimizers
    check_same(run(2, dtype, true), run(2, dtype, true));    // with GEMMs: same count, same bits
  }
}
