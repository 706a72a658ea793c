// The physical limit of an MLP training step: its floating-point work divided by the best rate
// the float32 GEMM backend reaches on this core, measured now on the step's own products.
//
//   roofline --batch 64 [--dims 784,256,128,10]
//     ->  step_mflop=...  best_gflops=...  roofline_us=...
//
// A step multiplies, per layer l of (in, out): forward x W^T (2 B in out), the weight gradient
// G^T x (2 B in out), and, except for the first layer (its input needs no gradient), G W (2 B in
// out). Everything else a step does (bias, activations, loss, update) is not counted: the
// roofline is what a step would take if it were only its GEMMs, each at the best rate.
#include <cstdio>
#include <vector>

#include "autograd/blas.hpp"
#include "bench/gemm_rate.hpp"
#include "bench/options.hpp"

using bench::best_rate;
using bench::Product;

int main(int argc, char** argv) {
  bench::StepOptions o;
  CLI::App app{"The GEMM-bound limit of an MLP training step on one core."};
  bench::add_step_options(app, o, 1, false);
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  return bench::guarded("roofline", [&] {
    xgrad::set_num_threads(1);
    std::vector<Product> products;
    double flop = 0;
    for (std::size_t l = 0; l + 1 < o.dims.size(); ++l) {
      const std::size_t in = o.dims[l], out = o.dims[l + 1], b = o.batch;
      products.push_back({false, true, b, out, in});  // forward
      products.push_back({true, false, out, in, b});  // weight gradient
      if (l > 0) products.push_back({false, false, b, in, out});  // input gradient
      flop += (l > 0 ? 3.0 : 2.0) * 2.0 * double(b) * double(in) * double(out);
    }
    double best = 0;
    for (const Product& p : products) best = std::max(best, best_rate(p, 30));
    std::printf("step_mflop=%.2f\nbest_gflops=%.1f\nroofline_us=%.1f\n", flop / 1e6, best,
                flop / (best * 1e9) * 1e6);
  });
}
