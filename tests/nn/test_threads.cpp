// Two models trained at once on two threads, each on its own tape, end exactly where the same two
// trainings end one after the other.
#include <doctest/doctest.h>

#include <thread>

#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
// Trains a small MLP for 50 steps from `seed`; returns its parameters' values.
std::vector<xt::xarray<double>> train(std::uint64_t seed) {
  Generator gen(seed);
  MLP net({6, 16, 8, 3}, "tanh", kFloat64, gen);
  Adam adam(net.parameters(), {.lr = 0.01});
  const Tensor x = randn({32, 6}, {.dtype = kFloat64}, gen);
  std::vector<std::int64_t> labels(32);
  for (std::size_t i = 0; i < 32; ++i) labels[i] = static_cast<std::int64_t>((i * 5 + seed) % 3);
  const Tensor y = from_vector(labels, {32});
  for (int step = 0; step < 50; ++step) {
    adam.zero_grad();
    softmax_cross_entropy(net(x), y).backward();
    adam.step();
  }
  std::vector<xt::xarray<double>> out;
  for (const Tensor& p : net.parameters()) out.push_back(p.value<double>());
  return out;
}
}  // namespace

TEST_CASE("two models trained on two threads at once match the same trainings run in turn") {
  const auto first = train(1), second = train(2);
  std::vector<xt::xarray<double>> a, b;
  std::thread ta([&] { a = train(1); }), tb([&] { b = train(2); });
  ta.join();
  tb.join();
  REQUIRE(a.size() == first.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i] == first[i]);
    CHECK(b[i] == second[i]);
  }
  CHECK_FALSE(first[0] == second[0]);
}
