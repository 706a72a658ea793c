// The baseline without a framework: the same MLP training step as mlp_step (Linear + ReLU layers,
// softmax cross-entropy, backward, plain SGD), hand-written on cblas with every buffer allocated
// once. What is left between this and mlp_step is the framework's cost.
//
//   raw_step --batch 64 --steps 300 [--dims 784,256,128,10] [--threads 1]   ->  median_us=...
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bench/options.hpp"

namespace {

using Buffer = std::vector<float>;

struct Net {
  std::vector<std::size_t> d;        // layer widths, inputs first
  std::vector<Buffer> W, b, gW, gb;  // per layer
  std::vector<Buffer> act, grad;     // per layer boundary: act[0] is the input batch
};

void step(Net& n, std::size_t B, const std::vector<int>& labels, float lr) {
  const std::size_t L = n.W.size();
  for (std::size_t l = 0; l < L; ++l) {  // act[l+1] = act[l] W^T + b, ReLU on hidden layers
    const int in = static_cast<int>(n.d[l]), out = static_cast<int>(n.d[l + 1]);
    float* z = n.act[l + 1].data();
    for (std::size_t i = 0; i < B; ++i) std::copy(n.b[l].begin(), n.b[l].end(), z + i * n.d[l + 1]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(B), out, in, 1.f,
                n.act[l].data(), in, n.W[l].data(), in, 1.f, z, out);
    if (l + 1 < L)
      for (float& v : n.act[l + 1]) v = std::max(v, 0.f);
  }
  const std::size_t C = n.d[L];
  for (std::size_t i = 0; i < B; ++i) {  // grad at the logits: (softmax - onehot) / B
    const float* z = n.act[L].data() + i * C;
    float* g = n.grad[L].data() + i * C;
    const float m = *std::max_element(z, z + C);
    float s = 0;
    for (std::size_t c = 0; c < C; ++c) s += (g[c] = std::exp(z[c] - m));
    for (std::size_t c = 0; c < C; ++c) g[c] = g[c] / s / static_cast<float>(B);
    g[labels[i]] -= 1.f / static_cast<float>(B);
  }
  for (std::size_t l = L; l-- > 0;) {
    const int in = static_cast<int>(n.d[l]), out = static_cast<int>(n.d[l + 1]),
              batch = static_cast<int>(B);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, batch, 1.f, n.grad[l + 1].data(),
                out, n.act[l].data(), in, 0.f, n.gW[l].data(), in);
    std::fill(n.gb[l].begin(), n.gb[l].end(), 0.f);
    for (std::size_t i = 0; i < B; ++i)
      for (std::size_t j = 0; j < n.d[l + 1]; ++j) n.gb[l][j] += n.grad[l + 1][i * n.d[l + 1] + j];
    if (l == 0) continue;  // no gradient for the input batch
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, in, out, 1.f,
                n.grad[l + 1].data(), out, n.W[l].data(), in, 0.f, n.grad[l].data(), in);
    for (std::size_t i = 0; i < n.grad[l].size(); ++i) {  // ReLU, branch-free so that it vectorizes
      const float g = n.grad[l][i];
      n.grad[l][i] = n.act[l][i] > 0.f ? g : 0.f;
    }
  }
  for (std::size_t l = 0; l < L; ++l) {
    cblas_saxpy(static_cast<int>(n.W[l].size()), -lr, n.gW[l].data(), 1, n.W[l].data(), 1);
    cblas_saxpy(static_cast<int>(n.b[l].size()), -lr, n.gb[l].data(), 1, n.b[l].data(), 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::StepOptions o;
  if (const int status = bench::parse_step_options(
          argc, argv, "Median time of the MLP training step hand-written on raw BLAS.", o);
      status >= 0)
    return status;
  // Named copies, not a structured binding: lambdas below capture them (clang 14 cannot).
  const std::size_t batch = o.batch, steps = o.steps;
  const std::vector<std::size_t> dims = o.dims;
  const int threads = o.threads;
  openblas_set_num_threads(threads);
  std::mt19937 gen(0);
  std::normal_distribution<float> normal(0.f, 0.05f);
  Net n;
  n.d = dims;
  const std::size_t L = dims.size() - 1;
  for (std::size_t l = 0; l < L; ++l) {
    n.W.emplace_back(dims[l + 1] * dims[l]);
    for (float& w : n.W.back()) w = normal(gen);
    n.b.emplace_back(dims[l + 1], 0.f);
    n.gW.emplace_back(n.W.back().size());
    n.gb.emplace_back(dims[l + 1]);
  }
  for (std::size_t l = 0; l <= L; ++l) {
    n.act.emplace_back(batch * dims[l]);
    n.grad.emplace_back(batch * dims[l]);
  }
  for (float& v : n.act[0]) v = normal(gen) * 20;
  std::vector<int> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<int>(i % dims.back());
  std::vector<double> times;
  for (std::size_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    step(n, batch, labels, 0.01f);
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("median_us=%g\n", bench::median_after_warmup(times));
}
