// A character-level language model of English words (the wamerican word list, one word per
// sequence): it learns to spell, and its held-out loss says how well, in nats per character.
//
//   char_lm --model transformer        2 pre-norm blocks of width 128, 4 heads (bench/lm_step's)
//   char_lm --model gru                embeddings of 64, a GRU of 256 (bench/lm_step's)
//   char_lm --model lstm               the same with an LSTM of 256 (bench/lm_step's)
//   char_lm --model mlp                the previous 3 characters' embeddings, a tanh layer of 256
//   char_lm --model bigram             the previous character only: a table of logits
//   char_lm --samples 10 --temperature 0.8     words made up by the trained model
//   char_lm --save ckpt   then   --resume ckpt --epochs 10
//
// Each word w becomes the input "^w" and the target "w$" (one token, '\n', stands for both ^ and
// $); a batch pads its words to the longest with a padding token that the loss ignores. The words
// are split 80 / 10 / 10 into train, validation and test by --seed. The last line on stdout is
// test_loss=x.xxxx (nats per character, the end of each word counted as one). Bad input exits 2.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "autograd/blas.hpp"
#include "autograd/grad_mode.hpp"
#include "examples/common/cli.hpp"
#include "examples/common/language_models.hpp"
#include "examples/common/training_run.hpp"
#include "examples/common/word_corpus.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "nn/sequence.hpp"
#include "nn/serialize.hpp"

using namespace xgrad;
using namespace xgrad::nn;
using namespace xgrad::programs;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  std::string corpus = "/usr/share/dict/words";
  std::string model = "transformer";
  int epochs = 10;
  std::size_t batch_size = 32;
  double lr = 0;  // 0: the model's own (default_lr)
  double weight_decay = 0.01;
  std::size_t context = 32;  // the longest sequence: words of up to context - 1 letters
  std::size_t limit = 0;     // 0: every word
  std::uint64_t seed = 1;
  std::size_t samples = 10;
  double temperature = 1.0;
  int threads = 1;
  std::string save, resume, log, plot;
};

// Words as examples: data the boundary token then the word's tokens, target the word's tokens then
// the boundary (T = the word's length + 1). Batches pad both with kPad, which the embedding has a
// row for and the loss ignores.
class Words : public Dataset<> {
 public:
  Words(const std::vector<std::string>& words, const Vocabulary& v) : words_(words), v_(v) {}
  std::size_t size() const override { return words_.size(); }
  Example get(std::size_t i) const override {
    const std::string& w = words_.at(i);
    std::vector<std::int64_t> in = {kBoundary}, target;
    for (char ch : w) {
      in.push_back(v_.token(ch));
      target.push_back(v_.token(ch));
    }
    target.push_back(kBoundary);
    return {from_vector(in, {in.size()}), from_vector(target, {target.size()})};
  }

 private:
  const std::vector<std::string>& words_;
  const Vocabulary& v_;
};

const CollateOptions kWordPadding = {
    .sequences = true, .padding_value = double(kPad), .target_padding_value = kPad};

WordCorpus load_corpus(const Config& c) {
  WordCorpus corpus;
  const std::string error = load_word_corpus(c.corpus, c.context, c.seed, c.limit, corpus);
  if (!error.empty()) throw ValueError(error);
  const std::size_t n = corpus.train.size() + corpus.validation.size() + corpus.test.size();
  std::printf(
      "%s: %zu words (%zu skipped), %zu characters; %zu / %zu / %zu words to train / "
      "validate / test\n",
      c.corpus.c_str(), n, corpus.skipped, corpus.vocab.chars.size(), corpus.train.size(),
      corpus.validation.size(), corpus.test.size());
  return corpus;
}

// AdamW's learning rate for each model, chosen on 20000 words, one epoch (docs/sequence.md).
double default_lr(const std::string& model) {
  if (model == "bigram") return 1e-2;
  if (model == "transformer") return 2e-3;
  return 3e-3;
}

// ---- training ---------------------------------------------------------------------------------

struct Totals {
  double loss = 0;  // summed over the characters
  std::size_t right = 0, characters = 0;
  double mean_loss() const { return loss / double(characters); }
  double accuracy() const { return double(right) / double(characters); }
};

// The summed loss of a batch, and its correct guesses counted into `totals`.
Tensor batch_loss(LanguageModel& model, const Batch& b, std::size_t V, Totals& totals) {
  const Tensor logits = reshape(model.ragged_logits(b.data, b.lengths), {-1, std::ptrdiff_t(V)});
  const Tensor targets = reshape(b.target, {-1});
  const Tensor loss =
      softmax_cross_entropy(logits, targets, {.reduction = Reduction::sum, .ignore_index = kPad});
  const Tensor right = logical_and(targets != kPad, argmax(logits, 1) == targets);
  totals.right += static_cast<std::size_t>(count_nonzero(right).item<std::int64_t>());
  totals.loss += loss.item();
  totals.characters += static_cast<std::size_t>(sum(b.lengths).item<std::int64_t>());
  return loss;
}

Totals evaluate(LanguageModel& model, const std::vector<std::string>& words, const Vocabulary& v) {
  NoGradGuard no_grad;
  model.eval();
  Totals totals;
  DataLoader loader(std::make_shared<Words>(words, v),
                    {.batch_size = 256, .shuffle = false, .collate = kWordPadding});
  for (const Batch& b : loader) batch_loss(model, b, v.size(), totals);
  model.train();
  return totals;
}

// A word made up by the model: characters drawn one at a time from softmax(logits / temperature)
// until the end token or the context is full.
std::string sample_word(LanguageModel& model, const Vocabulary& v, std::size_t context,
                        double temperature, Generator& gen) {
  NoGradGuard no_grad;
  std::vector<std::int64_t> tokens = {kBoundary};
  std::string word;
  while (tokens.size() < context) {
    const Tensor input = from_vector(tokens, {1, tokens.size()});
    const Tensor logits = select(select(model.logits(input), 0, 0), 0, -1);
    const std::int64_t next =
        multinomial(softmax(logits / temperature), 1, true, gen).item<std::int64_t>();
    if (next == kBoundary || next == kPad) break;
    tokens.push_back(next);
    word += v.character(next);
  }
  return word;
}

void run(Config c) {
  set_num_threads(c.threads);
  if (c.lr == 0) c.lr = default_lr(c.model);
  const WordCorpus corpus = load_corpus(c);
  const Vocabulary& v = corpus.vocab;
  Generator gen(c.seed);
  const std::shared_ptr<LanguageModel> model =
      make_language_model(c.model, v.size(), c.context, gen);
  AdamW optimizer(model->parameters(), AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  CosineAnnealingLR schedule(optimizer, c.epochs);
  Checkpoint checkpoint;
  checkpoint.module(*model).optimizer(optimizer).scheduler(schedule).generator("model", gen);
  // What a resume may not change (docs/design.md lists what it may).
  const RunSettings settings = {{"--model", c.model},
                                {"--batch-size", std::to_string(c.batch_size)},
                                {"--lr", setting_value(c.lr)},
                                {"--weight-decay", setting_value(c.weight_decay)},
                                {"--context", std::to_string(c.context)},
                                {"--limit", std::to_string(c.limit)},
                                {"--seed", std::to_string(c.seed)},
                                {"corpus", file_identity(c.corpus)}};
  TrainingRun training(checkpoint, {c.save, c.resume, c.log, c.plot}, c.epochs, settings);
  std::size_t parameters = 0;
  for (const Tensor& p : model->parameters()) parameters += p.numel();
  std::printf("model %s: %zu parameters, vocabulary %zu; AdamW lr %g\n", c.model.c_str(),
              parameters, v.size(), c.lr);
  std::fflush(stdout);
  // The order of epoch e is a function of (seed, e) alone: a resumed run takes the same.
  DataLoader loader(std::make_shared<Words>(corpus.train, v),
                    {.batch_size = c.batch_size, .seed = c.seed, .collate = kWordPadding});
  for (int epoch = training.epochs_done() + 1; epoch <= c.epochs; ++epoch) {
    const auto start = Clock::now();
    loader.set_epoch(static_cast<std::size_t>(epoch));
    Progress progress(epoch, c.epochs, loader.num_batches(), "char/s");
    Totals totals;
    std::size_t done = 0;
    for (const Batch& b : loader) {
      optimizer.zero_grad();
      const Tensor loss = batch_loss(*model, b, v.size(), totals);
      div(loss, sum(b.lengths).to(kFloat32)).backward();  // the mean over the batch's characters
      optimizer.step();
      progress.update(++done, totals.mean_loss(), totals.characters);
    }
    progress.clear();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const Totals val = evaluate(*model, corpus.validation, v);
    const EpochResult r{epoch,           totals.mean_loss(), totals.accuracy(),
                        val.mean_loss(), val.accuracy(),     seconds};
    std::printf("epoch %2d/%d  train loss %.4f acc %.4f  validation loss %.4f acc %.4f  %.2f s\n",
                epoch, c.epochs, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy,
                r.seconds);
    std::fflush(stdout);
    schedule.step();
    training.end_epoch(r, nlohmann::json{{"model", c.model}}.dump());
  }
  training.finish();
  if (c.samples > 0) {
    Generator draw(c.seed + 7);
    std::printf("samples (temperature %g):", c.temperature);
    for (std::size_t i = 0; i < c.samples; ++i)
      std::printf(" %s", sample_word(*model, v, c.context, c.temperature, draw).c_str());
    std::printf("\n");
  }
  const Totals test = evaluate(*model, corpus.test, v);
  std::printf("test_accuracy=%.4f\n", test.accuracy());
  std::printf("test_loss=%.4f\n", test.mean_loss());
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"Train a character-level language model of English words with xgrad."};
  app.add_option("--corpus", c.corpus, "text file, one word per line")->capture_default_str();
  app.add_option("--model", c.model, "bigram, mlp, gru, lstm or transformer")
      ->check(CLI::IsMember({"bigram", "mlp", "gru", "lstm", "transformer"}))
      ->capture_default_str();
  app.add_option("--epochs", c.epochs, "epochs in all (counting those of a resumed run)")
      ->check(cli::count_up_to(100000))
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "words per step")
      ->check(cli::count_up_to(1 << 16))
      ->capture_default_str();
  app.add_option("--lr", c.lr,
                 "AdamW's learning rate, cosine schedule over the epochs (0: the model's default, "
                 "1e-2 bigram, 2e-3 transformer, 3e-3 mlp, gru and lstm)")
      ->check(cli::non_negative())
      ->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "AdamW's weight decay")
      ->check(cli::non_negative())
      ->capture_default_str();
  app.add_option("--context", c.context,
                 "the longest sequence, in tokens (the transformer's position table)")
      ->check(cli::number_rule("a whole number from 2 to 1024", 2, false, 1024, true))
      ->capture_default_str();
  app.add_option("--limit", c.limit, "use only this many words (at least 10; 0: all)")
      ->check(cli::number_rule("a whole number from 0 to 1e9", 0, false, 1e9, true))
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the split, the initialization and the order")
      ->capture_default_str();
  app.add_option("--samples", c.samples, "words to generate after training")
      ->check(cli::number_rule("a whole number from 0 to 100000", 0, false, 1e5, true))
      ->capture_default_str();
  app.add_option("--temperature", c.temperature, "divides the logits when sampling")
      ->check(cli::positive())
      ->capture_default_str();
  app.add_option("--threads", c.threads, "threads of xgrad's loops and the GEMMs")
      ->check(cli::count_up_to(1024))
      ->capture_default_str();
  app.add_option("--save", c.save, "folder to write a checkpoint to after every epoch");
  app.add_option("--resume", c.resume, "folder of a checkpoint to continue from");
  app.add_option("--log", c.log,
                 "CSV file: epoch, train loss, train accuracy, validation loss, validation "
                 "accuracy, seconds");
  app.add_option("--plot", c.plot,
                 "PNG or SVG file of the loss and accuracy curves (needs gnuplot)")
      ->check(cli::rule(plot_path_error, "FILE.png or FILE.svg"));
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  return guarded_main("char_lm", [&] { run(c); });
}
