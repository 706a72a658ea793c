// Optimizer steps allocate nothing once their state exists: every operator new of this test
// program is counted while a flag is up.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "nn/layers.hpp"
#include "nn/optim.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
}  // namespace

// g++ 12 sees make_unique's sized delete inlined next to this malloc and warns of a mismatch that
// is not one (both sides are replaced here, malloc with free).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace xgrad;

TEST_CASE("optimizer steps allocate nothing after the first: SGD, Adam, AdamW, RMSprop, Adagrad") {
  Generator gen(2);
  nn::MLP net({20, 30, 5}, "relu", kFloat32, gen);
  for (const Tensor& p : net.parameters()) p.set_grad(ones_like(p));
  std::vector<std::unique_ptr<nn::Optimizer>> optimizers;
  optimizers.push_back(
      std::make_unique<nn::SGD>(net.parameters(), nn::SGDOptions{.lr = 0.01, .momentum = 0.9}));
  optimizers.push_back(std::make_unique<nn::Adam>(net.parameters()));
  optimizers.push_back(std::make_unique<nn::AdamW>(net.parameters()));
  optimizers.push_back(std::make_unique<nn::RMSprop>(
      net.parameters(), nn::RMSpropOptions{.momentum = 0.5, .centered = true}));
  optimizers.push_back(std::make_unique<nn::Adagrad>(net.parameters()));
  counting = true;  // the counter sees what the library allocates: a forward does
  const Tensor y = net(ones({2, 20}));
  counting = false;
  CHECK(allocations > 0);
  for (auto& opt : optimizers) {
    INFO(opt->name());
    opt->step();  // creates the state
    allocations = 0;
    counting = true;
    for (int i = 0; i < 3; ++i) opt->step();
    counting = false;
    CHECK(allocations == 0);
  }
}
