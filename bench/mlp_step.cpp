// The MLP training step that the peers (LibTorch, raw BLAS) are measured on: forward through
// Linear and ReLU layers, the fused softmax cross-entropy, backward, one SGD step.
//
//   mlp_step --batch 64 --steps 300 [--dims 784,256,128,10] [--threads 1]   ->  median_us=...
//
// The median is taken over the steps after the first fifth (warm-up), as the peers do.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include "examples/cli.hpp"

#include "autograd/blas.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

int main(int argc, char** argv) {
  CLI::App app{"Median time of one MLP training step (forward, softmax-CE, backward, SGD)."};
  std::size_t batch = 64, steps = 300;
  std::vector<std::size_t> dims = {784, 256, 128, 10};
  int threads = 1;
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "training steps to time")->check(CLI::Range(5, 1000000));
  app.add_option("--dims", dims, "layer sizes, inputs first")->delimiter(',')->expected(2, 64);
  app.add_option("--threads", threads, "OpenBLAS threads")->check(CLI::PositiveNumber);
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  set_num_threads(threads);
  Generator gen(0);
  nn::MLP net(dims, "relu", Dtype::float32, gen);
  nn::SGD sgd(net.parameters(), {.lr = 0.01});
  const Tensor x = randn({batch, dims.front()}, {}, gen);
  Index y = Index::from_shape({batch});
  for (std::size_t i = 0; i < batch; ++i) y(i) = static_cast<std::int64_t>(i % dims.back());

  std::vector<double> times;
  for (std::size_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    sgd.zero_grad();
    const Tensor loss = nn::softmax_cross_entropy(net(x), y);
    loss.backward();
    sgd.step();
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin() + static_cast<std::ptrdiff_t>(steps / 5), times.end());
  std::printf("median_us=%g\n", times[steps / 5 + (steps - steps / 5) / 2]);
}
