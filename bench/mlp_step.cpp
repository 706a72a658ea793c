// The MLP training step that the peers (LibTorch, raw BLAS) are measured on: forward through
// Linear and ReLU layers, the fused softmax cross-entropy, backward, one SGD step.
//
//   mlp_step --batch 64 --steps 300 [--dims 784,256,128,10] [--threads 1] [--fused] [--profile]
//     ->  median_us=...  step_mflop=... (the float32 GEMM and convolution work of a step)
//
// --fused runs each hidden ReLU inside its Linear (nn::MLP::fuse); --profile then runs as many
// steps again under xgrad::Profiler and prints its table, per step.
// The median is taken over the steps after the first fifth (warm-up), as the peers do.
#include <cstdio>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "bench/options.hpp"
#include "bench/steps.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

int main(int argc, char** argv) {
  bench::StepOptions o;
  bool fused = false, profile = false;
  CLI::App app{"Median time of one MLP training step (forward, softmax-CE, backward, SGD)."};
  bench::add_step_options(app, o, 5);
  app.add_flag("--fused", fused, "ReLU in the Linear's epilogue (MLP::fuse)");
  app.add_flag("--profile", profile, "then print the per-op profile of as many steps");
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  // Named copies, not a structured binding: lambdas below capture them (clang 14 cannot).
  const std::size_t batch = o.batch, steps = o.steps;
  const std::vector<std::size_t> dims = o.dims;
  const int threads = o.threads;
  return bench::guarded("mlp_step", [&] {
    keep_freed_memory();
    set_num_threads(threads);
    Generator gen(0);
    nn::MLP net(dims, "relu", Dtype::float32, gen);
    net.fuse(fused);
    nn::SGD sgd(net.parameters(), {.lr = 0.01});
    const Tensor x = randn({batch, dims.front()}, {}, gen);
    std::vector<std::int64_t> labels(batch);
    for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<std::int64_t>(i % dims.back());
    const Tensor y = from_vector(labels, {batch});

    const auto step = [&] {
      sgd.zero_grad();
      const Tensor loss = nn::softmax_cross_entropy(net(x), y);
      loss.backward();
      sgd.step();
    };
    bench::report_step(step, steps);
    if (profile) bench::print_profile(step, steps);
  });
}
