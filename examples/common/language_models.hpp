#pragma once
// The language models of examples/char_lm, and bench/lm_step's reference models among them:
// tokens (B, T) -> logits (B, T, V). Not part of the library: programs built on it.

#include <memory>
#include <string>

#include "examples/common/word_corpus.hpp"
#include "nn/layers.hpp"
#include "nn/sequence.hpp"

namespace xgrad::programs {

class LanguageModel : public nn::Module {
 public:
  virtual Tensor logits(const Tensor& tokens) = 0;  ///< tokens: int64 (B, T)
  /// The same for a padded batch whose sequence b has lengths[b] real tokens (padding at the end):
  /// the recurrent model skips the padded steps (packed sequences); the others, whose outputs at
  /// real steps do not depend on later tokens, compute them all.
  virtual Tensor ragged_logits(const Tensor& tokens, const Tensor& /*lengths*/) {
    return logits(tokens);
  }
};

// "bigram": the next character from the current one alone, a V x V table of logits.
// "mlp": Bengio et al.'s model, the embeddings (16) of the last 3 characters (the start token
//   repeated before the word), joined, through a tanh layer of 256.
// "gru": bench/lm_step's GRU, embeddings of 64, a GRU of hidden 256, a Linear to V.
// "lstm": the same with an LSTM of hidden 256.
// "transformer": bench/lm_step's transformer, width 128, learned positions (context of them),
//   2 causal pre-norm blocks of 4 heads with GELU MLPs of 512, a final layer norm, a Linear to V.
// float32, initialized from gen.
std::shared_ptr<LanguageModel> make_language_model(const std::string& kind, std::size_t vocabulary,
                                                   std::size_t context, Generator& gen);

}  // namespace xgrad::programs
