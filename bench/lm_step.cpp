// The language-model training steps that the LibTorch peer (torch_lm of ../shared/peers) is
// measured on: the reference sequence models, on random tokens of a vocabulary of 64 and a
// context of 32, AdamW 3e-4, the mean cross-entropy over every position:
//   transformer: width 128, learned positions, 2 causal pre-norm blocks of 4 heads (GELU MLP 512)
//   gru:         embeddings of 64, a GRU of hidden 256, Linear 256 -> 64
//   lstm:        the same with an LSTM of hidden 256
// The models are examples/char_lm's (examples/common/language_models.hpp).
//
//   lm_step --model transformer|gru|lstm --batch 32 --steps 30 [--threads 1] [--profile]
//     ->  median_us=...  step_mflop=... (the float32 GEMM and convolution work of a step)
#include <cstdio>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "bench/options.hpp"
#include "bench/steps.hpp"
#include "examples/common/language_models.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

namespace {

constexpr std::size_t kVocabulary = 64, kContext = 32;

void step_time(const std::string& model, std::size_t batch, std::size_t steps, bool profile) {
  Generator gen(0);
  const auto net = programs::make_language_model(model, kVocabulary, kContext, gen);
  nn::AdamW adamw(net->parameters(), {.lr = 3e-4, .weight_decay = 0.01});
  std::vector<std::int64_t> inputs(batch * kContext), targets(batch * kContext);
  std::mt19937_64 draw(1);
  for (auto& t : inputs) t = std::int64_t(draw() % kVocabulary);
  for (auto& t : targets) t = std::int64_t(draw() % kVocabulary);
  const Tensor x = from_vector(inputs, {batch, kContext}), y = from_vector(targets, {batch * kContext});
  const auto step = [&] {
    adamw.zero_grad();
    const Tensor logits = reshape(net->logits(x), {-1, std::ptrdiff_t(kVocabulary)});
    softmax_cross_entropy(logits, y).backward();
    adamw.step();
  };
  bench::report_step(step, steps);
  if (profile) bench::print_profile(step, steps);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "transformer";
  std::size_t batch = 32, steps = 30;
  int threads = 1;
  bool profile = false;
  CLI::App app{"Median time of one training step of a reference language model (AdamW)."};
  app.add_option("--model", model, "transformer, gru or lstm")
      ->check(CLI::IsMember({"transformer", "gru", "lstm"}));
  app.add_option("--batch", batch, "sequences per step")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", steps, "training steps")->check(CLI::Range(5, 100000));
  app.add_option("--threads", threads, "threads")->check(CLI::Range(1, 1024));
  app.add_flag("--profile", profile, "then print the per-op profile of as many steps");
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  return bench::guarded("lm_step", [&] {
    keep_freed_memory();
    set_num_threads(threads);
    step_time(model, batch, steps, profile);
  });
}
