// The CNN training step that the LibTorch peer (torch_cnn of ../shared/peers) is measured on:
// the reference network of bench/reference_cnn.hpp; softmax cross-entropy, Adam 1e-3.
//
//   cnn_step --batch 64 --steps 30 [--threads 1] [--profile]
//     ->  median_us=...  step_mflop=...  peak_rss_mb=...
//   cnn_step --conv --batch 64  ->  conv_gflops=...  sgemm_gflops=...
//
// --conv times conv2d forward and backward alone on the network's two large layers (32->32 at
// 28x28, 64->64 at 14x14) and prints their rate next to the best rate of the float32 GEMM on
// the products an im2col convolution would make of one image (O x L x 9C), in the same run.
#include <cstdio>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "bench/gemm_rate.hpp"
#include "bench/options.hpp"
#include "bench/peak_memory.hpp"
#include "bench/reference_cnn.hpp"
#include "bench/steps.hpp"
#include "nn/conv.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

namespace {

void step_time(std::size_t batch, std::size_t steps, bool profile) {
  Generator gen(0);
  auto net = bench::reference_cnn(gen);
  nn::Adam adam(net->parameters(), {.lr = 1e-3});
  const Tensor x = randn({batch, 1, 28, 28}, {}, gen);
  std::vector<std::int64_t> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<std::int64_t>(i % 10);
  const Tensor y = from_vector(labels, {batch});
  const auto step = [&] {
    adam.zero_grad();
    const Tensor loss = nn::softmax_cross_entropy((*net)(x), y);
    loss.backward();
    adam.step();
  };
  bench::report_step(step, steps);
  std::printf("peak_rss_mb=%.1f\n", bench::peak_resident_mb());
  if (profile) bench::print_profile(step, steps);
}

void conv_rate(std::size_t batch, std::size_t steps) {
  Generator gen(0);
  struct Layer {
    std::size_t c, hw;
  };
  double flop = 0, seconds = 0, sgemm = 0;
  for (const Layer l : {Layer{32, 28}, Layer{64, 14}}) {
    const Tensor x = randn({batch, l.c, l.hw, l.hw}, {}, gen).requires_grad_();
    const Tensor w = randn({l.c, l.c, 3, 3}, {}, gen).requires_grad_();
    const Tensor g = randn({batch, l.c, l.hw, l.hw}, {}, gen);
    seconds += bench::median_step_us(
                   [&] {
                     sum(mul(conv2d(x, w, {}, Conv2dFuncOptions().padding(1)), g)).backward();
                   },
                   steps) /
               1e6;
    // forward, weight gradient, input gradient: three products of 2 N O L 9C each
    const double L = double(l.hw * l.hw), K = 9.0 * double(l.c), O = double(l.c);
    flop += 3 * 2 * double(batch) * O * L * K;
    for (const bench::Product p : {bench::Product{false, false, l.c, l.hw * l.hw, 9 * l.c},
                                   bench::Product{false, true, l.c, 9 * l.c, l.hw * l.hw},
                                   bench::Product{true, false, 9 * l.c, l.hw * l.hw, l.c}})
      sgemm = std::max(sgemm, bench::best_rate(p, 30));
  }
  std::printf("conv_gflops=%.1f\nsgemm_gflops=%.1f\n", flop / seconds / 1e9, sgemm);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t batch = 64, steps = 30;
  int threads = 1;
  bool profile = false, conv = false;
  CLI::App app{"Median time of one training step of the reference CNN (forward, backward, Adam)."};
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", steps, "training steps")->check(CLI::Range(5, 100000));
  app.add_option("--threads", threads, "BLAS threads")->check(CLI::Range(1, 1024));
  app.add_flag("--profile", profile, "then print the per-op profile of as many steps");
  app.add_flag("--conv", conv, "the rate of conv2d alone against the GEMM's, instead");
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  return bench::guarded("cnn_step", [&] {
    keep_freed_memory();
    set_num_threads(threads);
    if (conv)
      conv_rate(batch, steps);
    else
      step_time(batch, steps, profile);
  });
}
