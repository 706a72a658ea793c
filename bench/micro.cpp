// Micro-benchmarks (Google Benchmark): the pieces a training step is made of.
//   build/bench/micro [--benchmark_filter=Mm]
#include <benchmark/benchmark.h>

#include <string>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "autograd/detail/blas.hpp"
#include "autograd/detail/blocked.hpp"
#include "autograd/detail/conv_onednn.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/functional.hpp"
#include "autograd/ops.hpp"
#include "nn/loss.hpp"
#include "nn/sequence.hpp"

using namespace xgrad;

namespace {

// Forward and backward of a chain of 100 tiny ops: the tape's own cost per op.
void BM_OpChain(benchmark::State& state) {
  const Tensor x = rand({1}, {.requires_grad = true});
  for (auto _ : state) {
    Tensor y = x;
    for (int i = 0; i < 100; ++i) y = i % 2 ? y * 0.999 : y + 0.001;
    sum(y).backward();
    x.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_OpChain);

// (M x K) @ (K x N)^T, as Linear computes it, forward only or forward and backward.
void BM_Mm(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0)),
             k = static_cast<std::size_t>(state.range(1)),
             n = static_cast<std::size_t>(state.range(2));
  const bool backward = state.range(3) != 0;
  const Tensor a = randn({m, k}, {.requires_grad = backward}),
               b = randn({n, k}, {.requires_grad = backward});
  for (auto _ : state) {
    const Tensor c = mm(a, b, false, true);
    if (backward) {
      c.backward(ones_like(c));
      a.zero_grad();
      b.zero_grad();
    }
    benchmark::DoNotOptimize(c.impl());
  }
  state.SetItemsProcessed(state.iterations() *
                          static_cast<std::int64_t>(2 * m * n * k * (backward ? 3 : 1)));
}
BENCHMARK(BM_Mm)
    ->Args({64, 784, 256, 0})
    ->Args({64, 784, 256, 1})
    ->Args({256, 256, 128, 1})
    ->Args({512, 1024, 1024, 1});

// Linear forward and backward (input gradient not needed, as for a first layer, or needed).
void BM_Linear(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0)),
             in = static_cast<std::size_t>(state.range(1)),
             out = static_cast<std::size_t>(state.range(2));
  const Tensor x = randn({batch, in}, {.requires_grad = state.range(3) != 0});
  const Tensor w = randn({out, in}, {.requires_grad = true}),
               b = zeros({out}, {.requires_grad = true});
  for (auto _ : state) {
    const Tensor z = linear(x, w, b);
    z.backward(ones_like(z));
    w.zero_grad();
    b.zero_grad();
    x.zero_grad();
  }
}
BENCHMARK(BM_Linear)
    ->Args({64, 784, 256, 0})
    ->Args({64, 256, 128, 1})
    ->Args({256, 256, 128, 1})
    ->Args({64, 3136, 256, 1});

// ReLU forward and backward.
void BM_Relu(benchmark::State& state) {
  const Tensor x = randn({static_cast<std::size_t>(state.range(0)), 256}, {.requires_grad = true});
  for (auto _ : state) {
    const Tensor y = relu(x);
    y.backward(ones_like(y));
    x.zero_grad();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 256 * 4);
}
BENCHMARK(BM_Relu)->Arg(64)->Arg(256);

// Batch norm in training then ReLU, forward and backward, over the reference CNN's first blocks
// (arg 1: 0 for 64 x 32 x 28 x 28, 1 for 64 x 64 x 14 x 14): as two ops (arg 0: 0), or as one,
// batch_norm with a relu epilogue (arg 0: 1).
void BM_BatchNormRelu(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  const std::size_t c = state.range(1) == 0 ? 32 : 64, hw = state.range(1) == 0 ? 28 : 14;
  const Tensor x = randn({64, c, hw, hw}, {.requires_grad = true}), g = randn({64, c, hw, hw});
  const Tensor w = ones({c}, {.requires_grad = true}), b = zeros({c}, {.requires_grad = true});
  for (auto _ : state) {
    const Tensor y = fused ? batch_norm(x, {}, {}, w, b, true, 0.1, 1e-5, Epilogue::relu)
                           : relu(batch_norm(x, {}, {}, w, b, true));
    y.backward(g);
  }
  state.SetLabel(fused ? "fused" : "two ops");
}
BENCHMARK(BM_BatchNormRelu)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond);

// The same fused op on plain values (arg 0: 0) and on oneDNN's blocked layout of 16 or 8 channels
// (arg 0: 16, 8: a convolution's output, autograd/node.hpp's BlockedArray), its gradient in the
// same layout; arg 1 as above.
void BM_BatchNormReluLayout(benchmark::State& state) {
  if (!detail::onednn_convolution()) return state.SkipWithError("no oneDNN in this build");
  const auto block = static_cast<std::size_t>(state.range(0));
  const std::size_t c = state.range(1) == 0 ? 32 : 64, hw = state.range(1) == 0 ? 28 : 14;
  const auto layout = [&](const Tensor& t) {
    return block ? detail::make_blocked(detail::to_blocked(t, block)) : t;
  };
  Tensor x = layout(randn({64, c, hw, hw}));
  x.requires_grad_();
  const Tensor g = layout(randn({64, c, hw, hw}));
  const Tensor w = ones({c}, {.requires_grad = true}), b = zeros({c}, {.requires_grad = true});
  for (auto _ : state) {
    batch_norm(x, {}, {}, w, b, true, 0.1, 1e-5, Epilogue::relu).backward(g);
    x.zero_grad();
  }
  state.SetLabel(block ? "blocked " + std::to_string(block) : "plain");
}
BENCHMARK(BM_BatchNormReluLayout)->ArgsProduct({{0, 16, 8}, {0, 1}})->Unit(benchmark::kMicrosecond);

// GELU, tanh and sigmoid forward and backward over the reference transformer's MLP activations
// (32 x 128 rows of 512): arrays far larger than the caches, so the passes over them count.
void BM_Transcendental(benchmark::State& state) {
  const Tensor x = randn({32 * 128, 512}, {.requires_grad = true});
  const Tensor g = randn({32 * 128, 512});
  const int op = static_cast<int>(state.range(0));
  for (auto _ : state) {
    const Tensor y = op == 0 ? gelu(x) : op == 1 ? tanh(x) : sigmoid(x);
    y.backward(g);
    x.zero_grad();
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
  state.SetLabel(op == 0 ? "gelu" : op == 1 ? "tanh" : "sigmoid");
}
BENCHMARK(BM_Transcendental)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

// Layer norm's rows, forward and backward with a weight and a bias, over the reference
// transformer's activations (32 x 128 rows of 128), on each instruction set's path (arg: 0 sse2,
// 1 avx2, 2 avx512; sse2 is what the plain loops got from the compiler's default flags).
void BM_LayerNormPath(benchmark::State& state) {
  const auto isa = static_cast<detail::vec::Isa>(state.range(0));
  state.SetLabel(detail::vec::isa_name(isa));
  if (!detail::vec::supported(isa)) return state.SkipWithError("not on this processor");
  const detail::vec::Functions& f = detail::vec::functions(isa);
  const std::size_t rows = 32 * 128, d = 128;
  const Tensor x = randn({rows, d}), g = randn({rows, d}), w = randn({d}), b = randn({d});
  const float *px = x.value<float>().data(), *pg = g.value<float>().data();
  const detail::vec::LayerNormRows in{px, w.value<float>().data(), rows, d};
  std::vector<float> z(rows * d), dx(rows * d), mean(rows), invstd(rows), scratch(2 * d);
  std::vector<double> dw(d), db(d);
  for (auto _ : state) {
    f.layer_norm_forward(in, b.value<float>().data(), 1e-5, z.data(), mean.data(), invstd.data());
    f.layer_norm_backward(in, pg, mean.data(), invstd.data(), dx.data(), dw.data(), db.data(),
                          scratch.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetBytesProcessed(state.iterations() * int64_t(rows * d * 4));
}
BENCHMARK(BM_LayerNormPath)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

// Causal multi-head attention, forward and backward, as the reference transformer has it (width
// 128, 4 heads of 32) over 4096 tokens in sequences of T; its backward reading the probabilities
// saved whole (arg 1) or making them again from the rows' log-sum-exp (arg 2).
void BM_Attention(benchmark::State& state) {
  const auto T = static_cast<std::size_t>(state.range(0));
  const auto saves = static_cast<detail::AttentionSaves>(state.range(1));
  const detail::AttentionSaves before = detail::set_attention_saves(saves);
  state.SetLabel(saves == detail::AttentionSaves::probabilities ? "probabilities saved"
                                                                : "row statistics saved");
  const Tensor qkv = randn({4096 / T, T, 3 * 128}, {.requires_grad = true});
  const Tensor g = randn({4096 / T, T, 128});
  for (auto _ : state) {
    const Tensor y = multi_head_attention(qkv, 4, {.is_causal = true});
    y.backward(g);
    qkv.zero_grad();
  }
  detail::set_attention_saves(before);
}
BENCHMARK(BM_Attention)->ArgsProduct({{32, 128, 256, 512}, {1, 2}})->Unit(benchmark::kMicrosecond);

// One product of an attention head at the reference transformer's sizes (32 x 32 x 32, its
// operands in the packed qkv, rows 384 floats apart), arg 0 the form (0 N N: D V, 1 N T: Q K^T,
// 2 T N: D^T G), arg 1 where it runs (0 detail::gemm, 1 vector_math's small_gemm).
void BM_HeadProduct(benchmark::State& state) {
  const bool ta = state.range(0) == 2, tb = state.range(0) == 1, tiles = state.range(1) == 1;
  state.SetLabel(std::string(ta ? "T" : "N") + (tb ? "T" : "N") +
                 (tiles ? " small_gemm" : " gemm"));
  const std::size_t n = 32, ld = 384;
  std::vector<float> a(n * ld), b(n * ld), c(n * n), scratch(n * n);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = float(i % 97) * 1e-3f;
    b[i] = float(i % 89) * 2e-3f;
  }
  for (auto _ : state) {
    if (tiles)
      detail::vec::small_gemm(
          {ta, tb, n, n, n, 1.0f, a.data(), ld, b.data(), ld, 0.0f, c.data(), n}, scratch.data());
    else
      detail::gemm(ta, tb, n, n, n, 1.0f, a.data(), ld, b.data(), ld, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
}
BENCHMARK(BM_HeadProduct)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond);

// A bidirectional GRU or LSTM (arg 0 or 1) of hidden 256 over 32 sequences of 32 steps of 64
// features, forward and backward: each direction one gru_sequence or lstm_sequence.
void BM_Bidirectional(benchmark::State& state) {
  const bool lstm = state.range(0) != 0;
  state.SetLabel(lstm ? "LSTM" : "GRU");
  const nn::RecurrentOptions options = nn::RecurrentOptions(64, 256).bidirectional(true);
  std::shared_ptr<nn::Recurrent> layer =
      lstm ? std::shared_ptr<nn::Recurrent>(std::make_shared<nn::LSTM>(options))
           : std::make_shared<nn::GRU>(options);
  const Tensor x = randn({32, 32, 64}), g = randn({32, 32, 512});
  for (auto _ : state) {
    const Tensor y = layer->forward(x);
    y.backward(g);
    layer->zero_grad();
  }
}
BENCHMARK(BM_Bidirectional)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// One AdamW update of 400k parameters (about the reference transformer's), on each path.
void BM_AdamPath(benchmark::State& state) {
  const auto isa = static_cast<detail::vec::Isa>(state.range(0));
  state.SetLabel(detail::vec::isa_name(isa));
  if (!detail::vec::supported(isa)) return state.SkipWithError("not on this processor");
  const detail::vec::Functions& f = detail::vec::functions(isa);
  const std::size_t n = 400000;
  std::vector<float> p(n, 0.5f), g(n, 1e-3f), m(n, 0.0f), v(n, 0.0f);
  const AdamStep c{0.9f, 0.999f, 1e-3f, 1e-2f, 1e-2f, 0.03f, 1e-8f, 0.0f, true};
  for (auto _ : state) {
    f.adam_update(p.data(), g.data(), m.data(), v.data(), n, c);
    benchmark::DoNotOptimize(p.data());
  }
  state.SetBytesProcessed(state.iterations() * int64_t(n * 4 * 4));
}
BENCHMARK(BM_AdamPath)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

// The other optimizers' updates of 400k float32 parameters on each path (arg 0 as above): arg 1
// = 0 SGD with momentum and weight decay, 1 RMSprop with momentum, centered, 2 Adagrad.
void BM_OptimizerPath(benchmark::State& state) {
  const auto isa = static_cast<detail::vec::Isa>(state.range(0));
  const char* names[] = {"SGD", "RMSprop", "Adagrad"};
  state.SetLabel(std::string(names[state.range(1)]) + ", " + detail::vec::isa_name(isa));
  if (!detail::vec::supported(isa)) return state.SkipWithError("not on this processor");
  const detail::vec::Functions& f = detail::vec::functions(isa);
  const std::size_t n = 400000;
  std::vector<float> p(n, 0.5f), g(n, 1e-3f), a(n, 0.01f), b(n, 0.0f), c(n, 0.0f);
  std::size_t arrays = 0;  // read and written, each 4 bytes an element
  for (auto _ : state) {
    switch (state.range(1)) {
      case 0:
        f.sgd_update(p.data(), g.data(), b.data(), n, {1e-3f, 1e-4f, 0.9f, 1.0f});
        arrays = 3;
        break;
      case 1:
        f.rmsprop_update(p.data(), g.data(), a.data(), b.data(), c.data(), n,
                         {1e-3f, 0.99f, 1e-8f, 0.0f, 0.9f});
        arrays = 5;
        break;
      default:
        f.adagrad_update(p.data(), g.data(), a.data(), n, {1e-3f, 1e-10f, 0.0f});
        arrays = 3;
    }
    benchmark::DoNotOptimize(p.data());
  }
  state.SetBytesProcessed(state.iterations() * int64_t(n * 4 * arrays));
}
BENCHMARK(BM_OptimizerPath)->ArgsProduct({{0, 1, 2}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);

// The fused softmax cross-entropy, forward and backward, on (batch, classes) logits.
void BM_SoftmaxCrossEntropy(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0)),
             classes = static_cast<std::size_t>(state.range(1));
  const Tensor z = randn({batch, classes}, {.requires_grad = true});
  std::vector<std::int64_t> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<std::int64_t>(i % classes);
  const Tensor y = from_vector(labels, {batch});
  for (auto _ : state) {
    nn::softmax_cross_entropy(z, y).backward();
    z.zero_grad();
  }
}
BENCHMARK(BM_SoftmaxCrossEntropy)->Args({64, 10})->Args({256, 10})->Args({128, 1000});

// The bias gradient: a (batch, out) gradient summed over the batch.
void BM_SumToBias(benchmark::State& state) {
  const Tensor g = randn({static_cast<std::size_t>(state.range(0)), 512});
  for (auto _ : state) benchmark::DoNotOptimize(sum_to(g, {512}).impl());
}
BENCHMARK(BM_SumToBias)->Arg(64)->Arg(1024);

// Adaptive average pooling, forward and backward, of 8 x 3 images 224 x 224: to 100 x 100
// (cells that overlap: its own kernel) against avg_pool2d's 2 x 2 windows to 112 x 112 (unfold
// and a mean), the same amount of input read, in the same run.
void BM_AdaptiveAvgPool(benchmark::State& state) {
  const Tensor x = randn({8, 3, 224, 224}, {.requires_grad = true});
  const bool adaptive = state.range(0) == 1;
  for (auto _ : state) {
    const Tensor y = adaptive ? adaptive_avg_pool2d(x, {100, 100}) : avg_pool2d(x, {2, 2});
    y.backward(ones_like(y));
    x.zero_grad();
  }
  state.SetLabel(adaptive ? "adaptive 224->100" : "avg_pool2d 2x2 224->112");
}
BENCHMARK(BM_AdaptiveAvgPool)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

// contiguous() of a time-major sequence output (32 steps, 32 sequences, 256 wide) transposed to
// batch first: whole rows of 256 (arg 0), and of its transpose over the last two axes, where no
// row is whole (arg 1).
void BM_Contiguous(benchmark::State& state) {
  const Tensor x = randn({32, 32, 256});
  for (auto _ : state) {  // a new view each time: a view keeps its copy until its base changes
    const Tensor v = state.range(0) == 0 ? transpose(x, 0, 1) : transpose(x, 1, 2);
    benchmark::DoNotOptimize(v.contiguous());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
  state.SetLabel(state.range(0) == 0 ? "transpose(0, 1)" : "transpose(1, 2)");
}
BENCHMARK(BM_Contiguous)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// The view ops on a 1 KB (16 x 16) and a 64 MB (4096 x 4096) float32 tensor: views share the
// storage, so each takes the same time, whatever the size (no element is copied).
void BM_View(benchmark::State& state) {
  const std::size_t n = state.range(1) == 0 ? 16 : 4096;
  const Tensor x = randn({n, n});
  const auto side = static_cast<std::ptrdiff_t>(n);
  const char* names[] = {"reshape", "transpose", "slice", "select"};
  for (auto _ : state) {
    switch (state.range(0)) {
      case 0: benchmark::DoNotOptimize(reshape(x, {side / 2, 2 * side}).impl()); break;
      case 1: benchmark::DoNotOptimize(transpose(x).impl()); break;
      case 2: benchmark::DoNotOptimize(slice(x, 1, 1, side - 1, 2).impl()); break;
      default: benchmark::DoNotOptimize(select(x, 0, side / 2).impl()); break;
    }
  }
  state.SetLabel(std::string(names[state.range(0)]) + (n == 16 ? " of 1 KB" : " of 64 MB"));
}
BENCHMARK(BM_View)->ArgsProduct({{0, 1, 2, 3}, {0, 1}});

// A recurrent layer's pattern: every time step of a (32, T, 256) tensor taken with select, each
// used, then one backward through all of them. Its time per step should not grow with T: the
// row at T = 512 about 4x the row at T = 128 (linear; quadratic would be 16x).
void BM_PerStepSlices(benchmark::State& state) {
  const auto steps = static_cast<std::size_t>(state.range(0));
  const Tensor x = randn({32, steps, 256}, {.requires_grad = true});
  for (auto _ : state) {
    Tensor total = sum(select(x, 1, 0));
    for (std::size_t t = 1; t < steps; ++t)
      total = total + sum(select(x, 1, static_cast<std::ptrdiff_t>(t)));
    total.backward();
    x.zero_grad();
  }
  state.SetLabel("T = " + std::to_string(steps) + ", forward and backward");
}
BENCHMARK(BM_PerStepSlices)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

// The baseline for the row above, in the same run: the same tensor summed whole, forward and
// backward, which reads it once and writes its gradient once, as the T slices together do. From
// 4 MiB to 16 MiB the time grows by more than 4x on machines whose cache holds the first and not
// the second; PerStepSlices / WholeSlices at each T factors that out: about equal at T = 128 and
// T = 512 when the slices are linear in T.
void BM_WholeSlices(benchmark::State& state) {
  const auto steps = static_cast<std::size_t>(state.range(0));
  const Tensor x = randn({32, steps, 256}, {.requires_grad = true});
  for (auto _ : state) {
    sum(x).backward();
    x.zero_grad();
  }
  state.SetLabel("T = " + std::to_string(steps) + ", the whole tensor once");
}
BENCHMARK(BM_WholeSlices)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

// jacobian (autograd/functional.hpp) of x -> tanh(W x), R^n -> R^m, float64, in each mode
// (arg 2: 0 reverse, 1 forward), against one forward and backward of the same function in the
// same run (arg 2 = 2: a vjp, the unit of the other two). Reverse mode is a backward per output,
// forward mode a forward-mode pass per input (forward_ad.hpp).
void BM_Jacobian(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)),
             m = static_cast<std::size_t>(state.range(1));
  const int mode = static_cast<int>(state.range(2));
  const Tensor W = randn({m, n}, {.dtype = kFloat64}), x = randn({n}, {.dtype = kFloat64});
  const auto f = [&](const Tensor& t) { return reshape(tanh(mm(W, reshape(t, {-1, 1}))), {-1}); };
  const Tensor u = randn({m}, {.dtype = kFloat64});
  for (auto _ : state) {
    if (mode == 2) {
      benchmark::DoNotOptimize(vjp(f, x, u).second.impl());
    } else {
      const JacobianMode how = mode == 0 ? JacobianMode::reverse : JacobianMode::forward;
      benchmark::DoNotOptimize(jacobian(f, x, {.mode = how}).impl());
    }
  }
  state.SetLabel(mode == 2 ? "one vjp" : mode == 0 ? "reverse" : "forward");
}
BENCHMARK(BM_Jacobian)
    ->ArgsProduct({{1000}, {10}, {0, 1, 2}})
    ->ArgsProduct({{10}, {1000}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond);

// hvp (autograd/functional.hpp) of the reference MLP's loss (784-256-128-10, batch 64, float32)
// in its six parameters, forward over reverse, against the forward and backward of a training
// step's gradient in the same run (arg 0; the update left out).
void BM_MlpHvp(benchmark::State& state) {
  const bool hessian_vector = state.range(0) != 0;
  const Tensor x = randn({64, 784});
  std::vector<std::int64_t> classes(64);
  for (std::size_t i = 0; i < classes.size(); ++i) classes[i] = std::int64_t(i % 10);
  const Tensor labels = from_vector(classes, {64});
  std::vector<Tensor> params, v;
  for (auto [out, in] : {std::pair<std::size_t, std::size_t>{256, 784}, {128, 256}, {10, 128}}) {
    params.push_back(mul(randn({out, in}), 0.05));
    params.push_back(zeros({out}));
  }
  for (const Tensor& p : params) v.push_back(randn(p.shape()));
  const auto loss = [&](const std::vector<Tensor>& p) {
    const Tensor h = relu(linear(relu(linear(x, p[0], p[1])), p[2], p[3]));
    return std::vector<Tensor>{softmax_cross_entropy(linear(h, p[4], p[5]), labels)};
  };
  for (auto _ : state) {
    if (hessian_vector) {
      benchmark::DoNotOptimize(hvp(loss, params, v).second[0].impl());
    } else {
      benchmark::DoNotOptimize(vjp(loss, params, {scalar(1.0)}).second[0].impl());
    }
  }
  state.SetLabel(hessian_vector ? "hvp" : "gradient");
}
BENCHMARK(BM_MlpHvp)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
