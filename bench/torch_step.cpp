// LibTorch doing what mlp_step and op_overhead do, for ratios measured in the same run. Built only
// when libtorch-dev is installed (./dev bench --with-torch installs it).
//
//   torch_step mlp --batch 64 --steps 300 [--dims 784,256,128,10]   ->  median_us=...
//   torch_step cnn --batch 64 --steps 30    (the reference CNN of cnn_step) ->  median_us=...
//                                                                  peak_rss_mb=...
//   torch_step lm --model transformer|gru --batch 32 --steps 30  (lm_step's models) -> median_us=...
//   torch_step char-lm [--epochs 10 --limit 0 --seed 1]   (char_lm --model transformer's training)
//                                                                  ->  test_loss=...
//   torch_step ops --ops 1000 [--reps 50]                             ->  ns_per_op=...
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "bench/peak_memory.hpp"
#include "examples/common/word_corpus.hpp"

namespace {

// "--name value" pairs after the mode; a bad one exits with status 2.
std::string option(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 2; i + 1 < argc; i += 2)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

double median_tail(std::vector<double> t) {
  const std::size_t skip = t.size() / 5;
  std::sort(t.begin() + static_cast<std::ptrdiff_t>(skip), t.end());
  return t[skip + (t.size() - skip) / 2];
}

// The median time of a training step: forward, cross-entropy, backward, optimizer step.
double median_step_us(torch::nn::Sequential& net, torch::optim::Optimizer& optimizer,
                      const torch::Tensor& x, const torch::Tensor& y, int steps) {
  std::vector<double> times;
  for (int s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    torch::nn::functional::cross_entropy(net->forward(x), y).backward();
    optimizer.step();
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return median_tail(times);
}

int mlp(int argc, char** argv) {
  const int batch = std::stoi(option(argc, argv, "--batch", "64"));
  const int steps = std::stoi(option(argc, argv, "--steps", "300"));
  std::vector<int64_t> dims;
  std::stringstream list(option(argc, argv, "--dims", "784,256,128,10"));
  for (std::string item; std::getline(list, item, ',');) dims.push_back(std::stoll(item));
  torch::manual_seed(0);
  torch::nn::Sequential net;
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    net->push_back(torch::nn::Linear(dims[i], dims[i + 1]));
    if (i + 2 < dims.size()) net->push_back(torch::nn::ReLU());
  }
  torch::optim::SGD sgd(net->parameters(), 0.01);
  const auto x = torch::randn({batch, dims.front()});
  const auto y = torch::arange(batch, torch::kLong) % dims.back();
  std::printf("median_us=%g\n", median_step_us(net, sgd, x, y, steps));
  return 0;
}

// cnn_step's network: four 3x3 convolutions (1->32, 32->32, pool, 32->64, 64->64, pool) each
// with batch norm and ReLU, then 3136 -> 256, ReLU, dropout 0.5, 256 -> 10; Adam 1e-3.
int cnn(int argc, char** argv) {
  const int batch = std::stoi(option(argc, argv, "--batch", "64"));
  const int steps = std::stoi(option(argc, argv, "--steps", "30"));
  torch::manual_seed(0);
  namespace tnn = torch::nn;
  tnn::Sequential net;
  const auto block = [&](int in, int out) {
    net->push_back(tnn::Conv2d(tnn::Conv2dOptions(in, out, 3).padding(1)));
    net->push_back(tnn::BatchNorm2d(out));
    net->push_back(tnn::ReLU());
  };
  block(1, 32);
  block(32, 32);
  net->push_back(tnn::MaxPool2d(2));
  block(32, 64);
  block(64, 64);
  net->push_back(tnn::MaxPool2d(2));
  net->push_back(tnn::Flatten());
  net->push_back(tnn::Linear(3136, 256));
  net->push_back(tnn::ReLU());
  net->push_back(tnn::Dropout(0.5));
  net->push_back(tnn::Linear(256, 10));
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-3));
  const auto x = torch::randn({batch, 1, 28, 28});
  const auto y = torch::arange(batch, torch::kLong) % 10;
  std::printf("median_us=%g\npeak_rss_mb=%.1f\n", median_step_us(net, adam, x, y, steps),
              bench::peak_resident_mb());
  return 0;
}

// lm_step's models, written with LibTorch's modules: vocabulary 64, context 32, AdamW 3e-4.
constexpr int64_t kVocab = 64, kContext = 32, kWidth = 128, kHeads = 4;

struct PreNormBlock : torch::nn::Module {
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear in_proj{nullptr}, out_proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  PreNormBlock() {
    const std::vector<int64_t> width = {kWidth};
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions(width)));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions(width)));
    in_proj = register_module("in_proj", torch::nn::Linear(kWidth, 3 * kWidth));
    out_proj = register_module("out_proj", torch::nn::Linear(kWidth, kWidth));
    fc1 = register_module("fc1", torch::nn::Linear(kWidth, 4 * kWidth));
    fc2 = register_module("fc2", torch::nn::Linear(4 * kWidth, kWidth));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& future) {
    const int64_t B = x.size(0), T = x.size(1);
    const auto qkv = in_proj->forward(norm1->forward(x)).chunk(3, -1);
    const auto split = [&](const torch::Tensor& t) {
      return t.reshape({B, T, kHeads, kWidth / kHeads}).permute({0, 2, 1, 3});
    };
    const auto q = split(qkv[0]), k = split(qkv[1]), v = split(qkv[2]);
    auto scores = q.matmul(k.transpose(2, 3)) * (1.0 / std::sqrt(double(kWidth / kHeads)));
    const auto weights = scores.masked_fill(future, -std::numeric_limits<float>::infinity()).softmax(-1);
    const auto joined = weights.matmul(v).permute({0, 2, 1, 3}).reshape({B, T, kWidth});
    const auto h = x + out_proj->forward(joined);
    return h + fc2->forward(torch::gelu(fc1->forward(norm2->forward(h))));
  }
};

struct TransformerLM : torch::nn::Module {
  torch::nn::Embedding tokens{nullptr}, positions{nullptr};
  std::shared_ptr<PreNormBlock> first, second;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};
  explicit TransformerLM(int64_t vocab = kVocab) {
    tokens = register_module("tokens", torch::nn::Embedding(vocab, kWidth));
    positions = register_module("positions", torch::nn::Embedding(kContext, kWidth));
    first = register_module("first", std::make_shared<PreNormBlock>());
    second = register_module("second", std::make_shared<PreNormBlock>());
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({kWidth})));
    head = register_module("head", torch::nn::Linear(kWidth, vocab));
  }
  torch::Tensor forward(const torch::Tensor& idx) {  // (B, T), T <= kContext
    const int64_t T = idx.size(1);
    const auto future = torch::ones({T, T}, torch::kBool).triu(1);
    auto h = tokens->forward(idx) + positions->forward(torch::arange(T));
    h = second->forward(first->forward(h, future), future);
    return head->forward(norm->forward(h));
  }
};

struct GruLM : torch::nn::Module {
  torch::nn::Embedding tokens{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::Linear head{nullptr};
  GruLM() {
    tokens = register_module("tokens", torch::nn::Embedding(kVocab, 64));
    gru = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(64, 256).batch_first(true)));
    head = register_module("head", torch::nn::Linear(256, kVocab));
  }
  torch::Tensor forward(const torch::Tensor& idx) {
    return head->forward(std::get<0>(gru->forward(tokens->forward(idx))));
  }
};

template <class Model>
double lm_median_us(int batch, int steps) {
  auto model = std::make_shared<Model>();
  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(3e-4));
  const auto x = torch::randint(kVocab, {batch, kContext}, torch::kLong);
  const auto y = torch::randint(kVocab, {batch * kContext}, torch::kLong);
  std::vector<double> times;
  for (int s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    adamw.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x).reshape({-1, kVocab}), y).backward();
    adamw.step();
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return median_tail(times);
}

int lm(int argc, char** argv) {
  const std::string model = option(argc, argv, "--model", "transformer");
  const int batch = std::stoi(option(argc, argv, "--batch", "32"));
  const int steps = std::stoi(option(argc, argv, "--steps", "30"));
  torch::manual_seed(0);
  if (model != "transformer" && model != "gru") {
    std::fprintf(stderr, "torch_step lm: --model is transformer or gru, got %s\n", model.c_str());
    return 2;
  }
  const double us = model == "gru" ? lm_median_us<GruLM>(batch, steps)
                                   : lm_median_us<TransformerLM>(batch, steps);
  std::printf("median_us=%g\n", us);
  return 0;
}

// examples/char_lm's transformer training, in LibTorch: the same words, split, order and padded
// batches (examples/common/word_corpus.hpp), AdamW (weight decay 0.01) with the cosine schedule
// over the epochs, the mean cross-entropy over the characters (padding ignored).
int char_lm(int argc, char** argv) {
  using namespace xgrad::programs;
  const std::string corpus_path = option(argc, argv, "--corpus", "/usr/share/dict/words");
  const int epochs = std::stoi(option(argc, argv, "--epochs", "10"));
  const std::size_t batch = std::stoul(option(argc, argv, "--batch-size", "32"));
  const double lr = std::stod(option(argc, argv, "--lr", "2e-3"));
  const std::uint64_t seed = std::stoull(option(argc, argv, "--seed", "1"));
  const std::size_t limit = std::stoul(option(argc, argv, "--limit", "0"));
  WordCorpus corpus;
  const std::string error = load_word_corpus(corpus_path, kContext, seed, limit, corpus);
  if (!error.empty()) {
    std::fprintf(stderr, "torch_step char-lm: %s\n", error.c_str());
    return 2;
  }
  torch::manual_seed(seed);
  const auto V = static_cast<int64_t>(corpus.vocab.size());
  auto model = std::make_shared<TransformerLM>(V);
  torch::optim::AdamW adamw(model->parameters(),
                            torch::optim::AdamWOptions(lr).weight_decay(0.01));
  const auto tensors = [](const TokenBatch& b) {
    auto in = torch::from_blob(const_cast<int64_t*>(b.inputs.data()),
                               {int64_t(b.rows), int64_t(b.length)}, torch::kLong);
    auto target = torch::from_blob(const_cast<int64_t*>(b.targets.data()),
                                   {int64_t(b.rows * b.length)}, torch::kLong);
    return std::pair{in, target};
  };
  const auto loss_of = [&](const TokenBatch& b) {
    const auto [in, target] = tensors(b);
    return torch::nn::functional::cross_entropy(
        model->forward(in).reshape({-1, V}), target,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kPad).reduction(torch::kSum));
  };
  const auto evaluate = [&](const std::vector<std::string>& words) {
    torch::NoGradGuard no_grad;
    std::vector<std::size_t> order(words.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    double loss = 0;
    std::size_t characters = 0;
    for_each_token_batch(words, order, 256, corpus.vocab, [&](const TokenBatch& b) {
      loss += loss_of(b).item<double>();
      characters += b.characters;
    });
    return loss / double(characters);
  };
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const double rate = lr * 0.5 * (1 + std::cos(M_PI * (epoch - 1) / epochs));  // cosine
    for (auto& group : adamw.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(rate);
    double loss = 0;
    std::size_t characters = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for_each_token_batch(corpus.train, epoch_order(corpus.train.size(), seed, epoch), batch,
                         corpus.vocab, [&](const TokenBatch& b) {
                           adamw.zero_grad();
                           const auto sum = loss_of(b);
                           (sum / double(b.characters)).backward();
                           adamw.step();
                           loss += sum.item<double>();
                           characters += b.characters;
                         });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("epoch %2d/%d  train loss %.4f  validation loss %.4f  %.2f s\n", epoch, epochs,
                loss / double(characters), evaluate(corpus.validation), seconds);
    std::fflush(stdout);
  }
  std::printf("test_loss=%.4f\n", evaluate(corpus.test));
  return 0;
}

int ops(int argc, char** argv) {
  const int n = std::stoi(option(argc, argv, "--ops", "1000"));
  const int reps = std::stoi(option(argc, argv, "--reps", "50"));
  const auto x = torch::rand({1}, torch::requires_grad());
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    {
      auto y = x;
      for (int i = 0; i < n; ++i) y = i % 2 ? y * 0.999 : y + 0.001;
      y.sum().backward();
    }
    best = std::min(
        best,
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
            n);
    x.grad().zero_();
  }
  std::printf("ns_per_op=%g\n", best);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "mlp") return mlp(argc, argv);
    if (mode == "cnn") return cnn(argc, argv);
    if (mode == "lm") return lm(argc, argv);
    if (mode == "char-lm") return char_lm(argc, argv);
    if (mode == "ops") return ops(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_step: %s\n", e.what());
    return 2;
  }
  std::fprintf(
      stderr,
      "usage: torch_step mlp|cnn|lm|char-lm|ops [--model transformer|gru] [--batch N --steps N --dims a,b,c | --ops N --reps N]\n");
  return 2;
}
