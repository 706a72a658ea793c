#include "examples/common/language_models.hpp"

namespace xgrad::programs {

using namespace xgrad::nn;

namespace {

// The next character from the current one alone: a V x V table of logits.
class Bigram : public LanguageModel {
 public:
  Bigram(std::size_t V, Generator& gen) {
    table =
        register_module("table", std::make_shared<Embedding>(V, V, std::nullopt, kFloat32, gen));
  }
  Tensor logits(const Tensor& tokens) override { return table->forward(tokens); }
  std::string name() const override { return "Bigram"; }
  std::shared_ptr<Embedding> table;
};

// Bengio et al.'s model: the embeddings of the last k characters (the word's start repeated
// before it), joined, through a tanh layer.
class ContextMLP : public LanguageModel {
 public:
  ContextMLP(std::size_t V, std::size_t k, std::size_t dim, std::size_t hidden, Generator& gen)
      : k_(k) {
    emb = register_module("emb", std::make_shared<Embedding>(V, dim, std::nullopt, kFloat32, gen));
    fc = register_module("fc", std::make_shared<Linear>(k * dim, hidden, true, kFloat32, gen));
    out = register_module("out", std::make_shared<Linear>(hidden, V, true, kFloat32, gen));
  }
  Tensor logits(const Tensor& tokens) override {
    const std::size_t B = tokens.size(0), T = tokens.size(1);
    const xt::xarray<std::int64_t>& ids = tokens.value<std::int64_t>();
    xt::xarray<std::int64_t> context = xt::xarray<std::int64_t>::from_shape({B, T, k_});
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t j = 0; j < k_; ++j) {  // position t - (k - 1 - j)
          const long at = long(t) - long(k_ - 1 - j);
          context(b, t, j) = at >= 0 ? ids(b, std::size_t(at)) : kBoundary;
        }
    const Tensor e = emb->forward(Tensor(std::move(context)));  // (B, T, k, dim)
    return out->forward(tanh(fc->forward(flatten(e, 2))));
  }
  std::string name() const override { return "ContextMLP"; }
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Linear> fc, out;

 private:
  std::size_t k_;
};

// bench/lm_step's recurrent models: embeddings of 64, a GRU or an LSTM of hidden 256, a Linear to
// the vocabulary.
template <class Cell>
class RecurrentModel : public LanguageModel {
 public:
  RecurrentModel(std::size_t V, std::string name, Generator& gen) : name_(std::move(name)) {
    emb = register_module("emb", std::make_shared<Embedding>(V, 64, std::nullopt, kFloat32, gen));
    rnn = register_module(name_ == "GruModel" ? "gru" : "lstm", std::make_shared<Cell>(64, 256, gen));
    head = register_module("head", std::make_shared<Linear>(256, V, true, kFloat32, gen));
  }
  Tensor logits(const Tensor& tokens) override {
    return head->forward(rnn->forward(emb->forward(tokens)));
  }
  Tensor ragged_logits(const Tensor& tokens, const Tensor& lengths) override {
    using namespace nn::utils::rnn;
    const PackedSequence steps = pack_padded_sequence(emb->forward(tokens), lengths, true, false);
    const auto [h, unused] =
        pad_packed_sequence(rnn->forward(steps).output, true, 0.0, tokens.size(1));
    return head->forward(h);
  }
  std::string name() const override { return name_; }
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Cell> rnn;
  std::shared_ptr<Linear> head;

 private:
  std::string name_;
};

// bench/lm_step's transformer: width 128, learned positions, 2 causal pre-norm blocks of 4 heads,
// a final layer norm, a Linear to the vocabulary.
class TransformerModel : public LanguageModel {
 public:
  TransformerModel(std::size_t V, std::size_t context, Generator& gen) {
    const std::size_t C = 128;
    tok = register_module("tok", std::make_shared<Embedding>(V, C, std::nullopt, kFloat32, gen));
    pos = register_module("pos", std::make_shared<PositionalEmbedding>(context, C, kFloat32, gen));
    blocks = register_module("blocks", std::make_shared<Sequential>());
    for (int i = 0; i < 2; ++i) blocks->push_back(std::make_shared<TransformerBlock>(C, 4, gen));
    lnf = register_module("lnf", std::make_shared<LayerNorm>(Shape{C}));
    head = register_module("head", std::make_shared<Linear>(C, V, true, kFloat32, gen));
  }
  Tensor logits(const Tensor& tokens) override {
    return head->forward(lnf->forward(blocks->forward(pos->forward(tok->forward(tokens)))));
  }
  std::string name() const override { return "TransformerModel"; }
  std::shared_ptr<Embedding> tok;
  std::shared_ptr<PositionalEmbedding> pos;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<LayerNorm> lnf;
  std::shared_ptr<Linear> head;
};

}  // namespace

std::shared_ptr<LanguageModel> make_language_model(const std::string& kind, std::size_t V,
                                                   std::size_t context, Generator& gen) {
  if (kind == "bigram") return std::make_shared<Bigram>(V, gen);
  if (kind == "mlp") return std::make_shared<ContextMLP>(V, 3, 16, 256, gen);
  if (kind == "gru") return std::make_shared<RecurrentModel<GRU>>(V, "GruModel", gen);
  if (kind == "lstm") return std::make_shared<RecurrentModel<LSTM>>(V, "LstmModel", gen);
  if (kind == "transformer") return std::make_shared<TransformerModel>(V, context, gen);
  throw ValueError("no language model \"" + kind + "\" (bigram, mlp, gru, lstm or transformer)");
}

}  // namespace xgrad::programs
