// Peak memory of a training run against what it must hold: parameters, their gradients, the
// optimizer's state (SGD momentum) and one batch's activations (the input and each layer's
// pre-activation and output). Also whether the resident size stays flat from step to step.
//
//   memory_use --batch 256 --steps 200 [--dims 784,256,128,10]
//   -> needed_mb=... peak_mb=... ratio=... rss_step10_mb=... rss_last_mb=...
//
// peak_mb counts bytes allocated through operator new (every tensor's storage) and still live, at
// their highest during training: exact, unlike the resident size, which also holds freed memory
// that malloc keeps and OpenBLAS's own buffers. The resident size is reported for flatness.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "bench/options.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

namespace {
std::size_t live_bytes = 0, peak_bytes = 0;  // this program is single-threaded
}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size ? size : 1);
  if (!p) throw std::bad_alloc();
  live_bytes += malloc_usable_size(p);
  peak_bytes = std::max(peak_bytes, live_bytes);
  return p;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  live_bytes -= malloc_usable_size(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace {
// A field of /proc/self/status ("VmRSS", "VmHWM") in MiB.
double status_mb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  bench::StepOptions o{.batch = 256, .steps = 200};
  const char* about =
      "Peak memory of MLP training against parameters + gradients + optimizer state + "
      "activations.";
  if (const int status = bench::parse_step_options(argc, argv, about, o, 20, false); status >= 0)
    return status;
  // Named copies, not a structured binding: lambdas below capture them (clang 14 cannot).
  const std::size_t batch = o.batch, steps = o.steps;
  const std::vector<std::size_t> dims = o.dims;
  return bench::guarded("memory_use", [&] {
    keep_freed_memory();
    set_num_threads(1);
    const std::size_t baseline = live_bytes;  // what the program holds before the model exists
    peak_bytes = live_bytes;

    Generator gen(0);
    nn::MLP net(dims, "relu", Dtype::float32, gen);
    nn::SGD sgd(net.parameters(), {.lr = 0.01, .momentum = 0.9});
    const Tensor x = randn({batch, dims.front()}, {}, gen);
    std::vector<std::int64_t> labels(batch);
    for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<std::int64_t>(i % dims.back());
    const Tensor y = from_vector(labels, {batch});

    double parameters = 0, activations = static_cast<double>(batch * dims.front());
    for (const Tensor& p : net.parameters()) parameters += static_cast<double>(p.numel());
    for (std::size_t l = 1; l < dims.size(); ++l)
      activations += static_cast<double>(batch * dims[l]) * (l + 1 < dims.size() ? 2 : 1);
    const double mb = 4.0 / (1 << 20);
    const double needed = (3 * parameters + activations) * mb;  // parameters, gradients, momentum

    double rss_step10 = 0;
    for (std::size_t s = 0; s < steps; ++s) {
      sgd.zero_grad();
      nn::softmax_cross_entropy(net(x), y).backward();
      sgd.step();
      if (s == 9) rss_step10 = status_mb("VmRSS");
    }
    const double peak = static_cast<double>(peak_bytes - baseline) / (1 << 20);
    std::printf("needed_mb=%.2f peak_mb=%.2f ratio=%.2f rss_step10_mb=%.1f rss_last_mb=%.1f\n",
                needed, peak, peak / needed, rss_step10, status_mb("VmRSS"));
  });
}
