#pragma once
/// \file
/// The layers of sequence models, as torch::nn's: Embedding, LayerNorm, PositionalEmbedding,
/// MultiheadAttention (batch first), TransformerBlock (pre-norm), GRUCell, GRU, LSTMCell, LSTM.
/// Each is a Module over the public ops (embedding, layer_norm, linear,
/// scaled_dot_product_attention, sigmoid, tanh, gelu).

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "xgrad/autograd/ops.hpp"
#include "xgrad/nn/layers.hpp"
#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

/// Embedding's options, as LibTorch's EmbeddingOptions(1000, 64).padding_idx(0).
class EmbeddingOptions {
 public:
  EmbeddingOptions(std::size_t num_embeddings, std::size_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  XGRAD_ARG(std::size_t, num_embeddings);
  XGRAD_ARG(std::size_t, embedding_dim);
  XGRAD_ARG(std::optional<std::int64_t>, padding_idx);
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// A table of num_embeddings rows of embedding_dim: forward(indices) looks them up, (..., ) ->
/// (..., embedding_dim). Initialized N(0, 1) as PyTorch's, the padding row (if any) zero; that
/// row gets no gradient. The weight may be shared with an output layer (weight tying).
class Embedding : public Module {
 public:
  Embedding(std::size_t num_embeddings, std::size_t embedding_dim,
            std::optional<std::int64_t> padding_idx = std::nullopt, Dtype dtype = Dtype::float32,
            Generator& gen = default_generator());
  explicit Embedding(const EmbeddingOptions& o, Generator& gen = default_generator())
      : Embedding(o.num_embeddings(), o.embedding_dim(), o.padding_idx(), o.dtype(), gen) {}
  /// indices: an int64 tensor (token ids), as for any module's forward: an Embedding can sit
  /// first in a Sequential.
  Tensor forward(const Tensor& indices) override {
    return embedding(weight, indices, padding_idx);
  }
  std::string name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  /// A table of the given rows (num_embeddings, embedding_dim), copied; frozen (no gradient)
  /// unless freeze is false, as torch's Embedding.from_pretrained.
  static std::shared_ptr<Embedding> from_pretrained(const Tensor& embeddings, bool freeze = true,
                                                    std::optional<std::int64_t> padding_idx = {});

  Tensor weight;
  std::optional<std::int64_t> padding_idx;
};

/// LayerNorm's options, as LibTorch's LayerNormOptions({64}).eps(1e-6).elementwise_affine(false).
class LayerNormOptions {
 public:
  LayerNormOptions(Shape normalized_shape)  // NOLINT: implicit, as LibTorch's
      : normalized_shape_(std::move(normalized_shape)) {}
  XGRAD_ARG(Shape, normalized_shape);
  XGRAD_ARG(double, eps) = 1e-5;
  XGRAD_ARG(bool, elementwise_affine) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// layer_norm over the trailing normalized_shape, with a weight (ones) and bias (zeros) of that
/// shape unless elementwise_affine is false.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     Dtype dtype = Dtype::float32);
  explicit LayerNorm(const LayerNormOptions& o)
      : LayerNorm(o.normalized_shape(), o.eps(), o.elementwise_affine(), o.dtype()) {}
  Tensor forward(const Tensor& x) override {
    return layer_norm(x, normalized_shape_, weight, bias, eps_);
  }
  std::string name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;

  Tensor weight, bias;  ///< undefined without elementwise_affine

 private:
  Shape normalized_shape_;
  double eps_;
};

/// A learned position table (max_length, dim), N(0, 1): forward(x) for x (B, T, dim) adds rows
/// 0 .. T-1. A sequence longer than the table: ShapeError naming both lengths.
class PositionalEmbedding : public Module {
 public:
  PositionalEmbedding(std::size_t max_length, std::size_t dim, Dtype dtype = Dtype::float32,
                      Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "PositionalEmbedding"; }
  std::string extra_repr() const override;

  Tensor weight;
};

/// MultiheadAttention's options, as LibTorch's MultiheadAttentionOptions(embed_dim, num_heads)
/// .dropout(0.1).bias(false); causal (forward(x): each position sees itself and the ones before)
/// and dtype (the parameters') are xgrad's. dropout is on the attention weights, in training.
class MultiheadAttentionOptions {
 public:
  MultiheadAttentionOptions(std::size_t embed_dim, std::size_t num_heads)
      : embed_dim_(embed_dim), num_heads_(num_heads) {}
  XGRAD_ARG(std::size_t, embed_dim);
  XGRAD_ARG(std::size_t, num_heads);
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(double, dropout) = 0.0;
  XGRAD_ARG(bool, causal) = false;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// Multi-head attention, batch first: inputs (B, T, E). The queries, keys and values come from
/// one Linear in_proj (E -> 3E: rows 0..E-1 make the queries, then the keys, then the values),
/// are split into num_heads heads of E / num_heads, attended (scaled_dot_product_attention),
/// joined and projected by out_proj (E -> E). Linear's initializations.
class MultiheadAttention : public Module {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& options,
                              Generator& gen = default_generator());
  MultiheadAttention(std::size_t embed_dim, std::size_t num_heads,
                     Generator& gen = default_generator())
      : MultiheadAttention(MultiheadAttentionOptions(embed_dim, num_heads), gen) {}
  /// Self-attention, causal if the options say so.
  Tensor forward(const Tensor& x) override;
  /// Self-attention over a padded batch: key_padding_mask (B, T) bool is true at the padded
  /// steps (PyTorch's convention: logical_not of a Batch's mask), which no query attends to.
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);
  /// query (B, T, E), key and value (B, S, E); mask broadcast to (B, heads, T, S), 0 where a
  /// query must not see a key; key_padding_mask (B, S) bool, true at keys no query sees.
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value,
                 const Tensor& mask = Tensor(), bool is_causal = false,
                 const Tensor& key_padding_mask = Tensor());
  std::string name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override;

  std::shared_ptr<Linear> in_proj, out_proj;

 private:
  Tensor heads(const Tensor& x) const;  // (B, T, E) -> (B, heads, T, E / heads)
  MultiheadAttentionOptions options_;
  Generator* gen_;
};

/// TransformerBlock's options: TransformerBlockOptions(d_model, num_heads).mlp_hidden(512)
/// .dropout(0.1).causal(false). mlp_hidden 0 is 4 d_model; dropout is after the attention and
/// after the MLP, in training; dtype is the parameters'.
class TransformerBlockOptions {
 public:
  TransformerBlockOptions(std::size_t d_model, std::size_t num_heads)
      : d_model_(d_model), num_heads_(num_heads) {}
  XGRAD_ARG(std::size_t, d_model);
  XGRAD_ARG(std::size_t, num_heads);
  XGRAD_ARG(std::size_t, mlp_hidden) = 0;
  XGRAD_ARG(double, dropout) = 0.0;
  XGRAD_ARG(bool, causal) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// A pre-norm transformer block: x + attn(ln1(x)), then x + fc2(gelu(fc1(ln2(x)))), over
/// (B, T, d_model). Children ln1, attn, ln2, fc1, fc2.
class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const TransformerBlockOptions& options,
                            Generator& gen = default_generator());
  TransformerBlock(std::size_t d_model, std::size_t num_heads, Generator& gen = default_generator())
      : TransformerBlock(TransformerBlockOptions(d_model, num_heads), gen) {}
  Tensor forward(const Tensor& x) override;
  /// Over a padded batch: key_padding_mask (B, T) bool, true at the padded steps.
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);
  std::string name() const override { return "TransformerBlock"; }

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiheadAttention> attn;
  std::shared_ptr<Linear> fc1, fc2;

 private:
  double dropout_;
  Generator* gen_;
};

/// TransformerEncoderLayer's options, with PyTorch's names and defaults:
/// TransformerEncoderLayerOptions(d_model, nhead).dim_feedforward(2048).dropout(0.1)
/// .activation("relu").layer_norm_eps(1e-5).norm_first(false). Batch first, as all of xgrad's
/// attention (batch_first(false) is refused).
class TransformerEncoderLayerOptions {
 public:
  TransformerEncoderLayerOptions(std::size_t d_model, std::size_t nhead)
      : d_model_(d_model), nhead_(nhead) {}
  XGRAD_ARG(std::size_t, d_model);
  XGRAD_ARG(std::size_t, nhead);
  XGRAD_ARG(std::size_t, dim_feedforward) = 2048;
  XGRAD_ARG(double, dropout) = 0.1;
  XGRAD_ARG(std::string, activation) = "relu";  ///< "relu" or "gelu"
  XGRAD_ARG(double, layer_norm_eps) = 1e-5;
  XGRAD_ARG(bool, batch_first) = true;
  XGRAD_ARG(bool, norm_first) = false;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// As torch's TransformerEncoderLayer: self-attention then a feed-forward block, each with a
/// residual and a layer norm, after (post-norm, the default) or before (norm_first):
///   post: x = norm1(x + sa(x)), x = norm2(x + ff(x));  pre: x = x + sa(norm1(x)), x + ff(norm2(x))
/// with ff(x) = linear2(dropout(activation(linear1(x)))). Children self_attn, linear1, linear2,
/// norm1, norm2, as PyTorch's (self_attn's projection is in_proj.weight where PyTorch has
/// in_proj_weight).
class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerEncoderLayerOptions& options,
                                   Generator& gen = default_generator());
  Tensor forward(const Tensor& src) override { return forward(src, Tensor()); }
  /// src_key_padding_mask (B, T) bool, true at the padding; src_mask broadcast to (B, heads, T,
  /// T), 0 where a position must not attend (a causal mask: tril of ones).
  Tensor forward(const Tensor& src, const Tensor& src_key_padding_mask,
                 const Tensor& src_mask = Tensor());
  std::string name() const override { return "TransformerEncoderLayer"; }
  const TransformerEncoderLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;

 private:
  Tensor drop(const Tensor& x);
  TransformerEncoderLayerOptions options_;
  Generator* gen_;
};

/// num_layers encoder layers made from one options object (each its own weights), then a final
/// layer norm when norm is set, as torch's TransformerEncoder(layer, num_layers, norm). Children
/// layers (0, 1, ...) and norm.
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(const TransformerEncoderLayerOptions& layer, std::size_t num_layers,
                     bool norm = false, Generator& gen = default_generator());
  Tensor forward(const Tensor& src) override { return forward(src, Tensor()); }
  Tensor forward(const Tensor& src, const Tensor& src_key_padding_mask,
                 const Tensor& src_mask = Tensor());
  std::string name() const override { return "TransformerEncoder"; }

  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> norm;  ///< null without a final norm
};

/// TransformerDecoderLayer's options: the encoder layer's, with the same names and defaults.
using TransformerDecoderLayerOptions = TransformerEncoderLayerOptions;

/// As torch's TransformerDecoderLayer: self-attention over the target, attention from the target
/// to the memory (the encoder's output), then the feed-forward block, each with a residual and a
/// layer norm after it (post-norm, the default) or before it (norm_first). Children self_attn,
/// multihead_attn, linear1, linear2, norm1, norm2, norm3, as PyTorch's. Masks are xgrad's: true
/// where a query may attend (tgt_mask = tril of ones is causal); key padding masks true at the
/// padding, as PyTorch's.
class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerDecoderLayerOptions& options,
                                   Generator& gen = default_generator());
  Tensor forward(const Tensor& tgt) override;  ///< refused: a decoder needs a memory
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor());
  std::string name() const override { return "TransformerDecoderLayer"; }

  std::shared_ptr<MultiheadAttention> self_attn, multihead_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;

 private:
  Tensor drop(const Tensor& x);
  TransformerDecoderLayerOptions options_;
  Generator* gen_;
};

/// num_layers decoder layers, then a final layer norm when norm is set, as torch's
/// TransformerDecoder. Children layers (0, 1, ...) and norm.
class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerDecoderLayerOptions& layer, std::size_t num_layers,
                     bool norm = false, Generator& gen = default_generator());
  Tensor forward(const Tensor& tgt) override;  ///< refused: a decoder needs a memory
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor());
  std::string name() const override { return "TransformerDecoder"; }

  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> norm;  ///< null without a final norm
};

/// One GRU step, as PyTorch defines it, from the input's projection xp = x W_ih^T + b_ih (B, 3H,
/// gates r, z, n) and the state h (B, H); the gates run fused (gru_cell):
///   hp = h W_hh^T + b_hh,  r = sigmoid(xp_r + hp_r),  z = sigmoid(xp_z + hp_z),
///   n = tanh(xp_n + r hp_n),  h' = (1 - z) n + z h.
Tensor gru_step(const Tensor& xp, const Tensor& h, const Tensor& weight_hh, const Tensor& bias_hh);

/// The state of an LSTM: hidden h and cell c.
struct LSTMState {
  Tensor h, c;
};
/// One LSTM step from xp = x W_ih^T + b_ih (B, 4H, gates i, f, g, o); the gates run fused
/// (lstm_cell), h' and c' are views of its result:
///   gates = xp + h W_hh^T + b_hh,  i, f, o = sigmoid,  g = tanh,
///   c' = f c + i g,  h' = o tanh(c').
LSTMState lstm_step(const Tensor& xp, const LSTMState& state, const Tensor& weight_hh,
                    const Tensor& bias_hh);

/// The parameters of one recurrent step: weight_ih (G H, input), weight_hh (G H, H), biases
/// (G H), for G gates, uniform in +-1/sqrt(H) as PyTorch's.
class RecurrentCell : public Module {
 public:
  std::string extra_repr() const override;
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;  ///< biases undefined without bias

 protected:
  RecurrentCell(const char* layer, std::size_t gates, std::size_t input_size,
                std::size_t hidden_size, bool bias, Dtype dtype, Generator& gen);
  void check_input(const Tensor& x, const Tensor& state) const;
  Tensor zero_state(const Tensor& x) const;

 private:
  std::size_t input_, hidden_;
};

/// One GRU step (gates r, z, n): x (B, input) and h (B, hidden) -> h' (B, hidden).
class GRUCell : public RecurrentCell {
 public:
  GRUCell(std::size_t input_size, std::size_t hidden_size, bool bias = true,
          Dtype dtype = Dtype::float32, Generator& gen = default_generator())
      : RecurrentCell("GRUCell", 3, input_size, hidden_size, bias, dtype, gen) {}
  Tensor forward(const Tensor& x, const Tensor& h);
  Tensor forward(const Tensor& x) override;  ///< from a zero state
  std::string name() const override { return "GRUCell"; }
};

/// One LSTM step (gates i, f, g, o): x (B, input) and (h, c) -> (h', c').
class LSTMCell : public RecurrentCell {
 public:
  LSTMCell(std::size_t input_size, std::size_t hidden_size, bool bias = true,
           Dtype dtype = Dtype::float32, Generator& gen = default_generator())
      : RecurrentCell("LSTMCell", 4, input_size, hidden_size, bias, dtype, gen) {}
  LSTMState forward(const Tensor& x, const LSTMState& state);
  Tensor forward(const Tensor& x) override;  ///< h' from a zero state
  std::string name() const override { return "LSTMCell"; }
};

/// GRU's and LSTM's options, as LibTorch's GRUOptions(input_size, hidden_size).num_layers(2)
/// .dropout(0.1).bias(false). xgrad's recurrent layers are batch first: batch_first(true) is
/// accepted, false is a ValueError when the layer is made. dropout is on each layer's outputs
/// but the last, in training; dtype is the parameters'.
class RecurrentOptions {
 public:
  RecurrentOptions(std::size_t input_size, std::size_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  XGRAD_ARG(std::size_t, input_size);
  XGRAD_ARG(std::size_t, hidden_size);
  XGRAD_ARG(std::size_t, num_layers) = 1;
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(double, dropout) = 0.0;
  XGRAD_ARG(bool, batch_first) = true;
  /// A second direction that reads each sequence from its end: outputs (..., 2 H), the final
  /// states (num_layers * 2, B, H), parameters ..._reverse, as PyTorch's.
  XGRAD_ARG(bool, bidirectional) = false;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};
using GRUOptions = RecurrentOptions;
using LSTMOptions = RecurrentOptions;

/// What GRU and LSTM return: the last layer's outputs at every step (B, T, H), or (B, T, 2 H)
/// when bidirectional, and the final state of every layer and direction (num_layers * dirs, B,
/// H); c only for the LSTM.
struct RecurrentOutput {
  Tensor output, h, c;
};

namespace utils::rnn {

/// Sequences of different lengths packed step by step, as torch's PackedSequence: `data` holds the
/// step-0 entries of every sequence, then the step-1 entries of those longer than 1, and so on
/// (batch_sizes[t] of them at step t), the sequences in order of decreasing length
/// (sorted_indices[k] is the batch row of the k-th longest; unsorted_indices the inverse).
struct PackedSequence {
  Tensor data;              ///< (sum of the lengths, features...)
  Tensor batch_sizes;       ///< (T) int64: how many sequences are longer than t
  Tensor sorted_indices;    ///< (B) int64
  Tensor unsorted_indices;  ///< (B) int64
};

/// x (B, T, ...) when batch_first, else (T, B, ...) (LibTorch's default), and each sequence's
/// length (B) int64, from 1 to T: its steps packed, the padding left out. enforce_sorted: the
/// lengths must come in decreasing order (ValueError otherwise); false sorts them (stably).
PackedSequence pack_padded_sequence(const Tensor& x, const Tensor& lengths,
                                    bool batch_first = false, bool enforce_sorted = true);

/// The inverse: the sequences (B, T, ...) when batch_first, else (T, B, ...), in their original
/// order, padded with padding_value to total_length steps (by default the longest), and their
/// lengths (B) int64. Gradients flow back to the packed data.
std::tuple<Tensor, Tensor> pad_packed_sequence(const PackedSequence& sequence,
                                               bool batch_first = false, double padding_value = 0,
                                               std::optional<std::size_t> total_length = {});

}  // namespace utils::rnn

/// What GRU and LSTM return for a packed input: the outputs packed as it (data (sum of lengths,
/// H or 2 H)), and each sequence's final state, the one after its last real step (reversed: after
/// its first), in the batch's order.
struct PackedRecurrentOutput {
  utils::rnn::PackedSequence output;
  Tensor h, c;
};

/// A GRU or LSTM unrolled over a batch-first input (B, T, input), num_layers deep, as torch's
/// with batch_first. Parameters weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... as
/// PyTorch names them, uniform in +-1/sqrt(H). The gates run fused (gru_cell, lstm_cell), and
/// the input's projection of every step is one product per layer and direction.
class Recurrent : public Module {
 public:
  /// h0 and c0: (num_layers * dirs, B, H) or undefined for zeros.
  RecurrentOutput forward(const Tensor& x, const Tensor& h0, const Tensor& c0 = Tensor());
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).output; }
  /// Sequences of different lengths: a padded step neither changes a sequence's state nor gets
  /// a gradient (the steps run on the sequences still going, selected, not masked).
  PackedRecurrentOutput forward(const utils::rnn::PackedSequence& x, const Tensor& h0 = Tensor(),
                                const Tensor& c0 = Tensor());
  std::string extra_repr() const override;

  std::size_t num_layers() const { return options_.num_layers(); }
  std::size_t hidden_size() const { return options_.hidden_size(); }

 protected:
  Recurrent(bool lstm, const RecurrentOptions& options, Generator& gen);

 private:
  // The layers over packed steps (batch_sizes, with the offset of each step in the data), the
  // initial states in sorted order.
  PackedRecurrentOutput run(const Tensor& data, const std::vector<std::size_t>& batch_sizes,
                            const Tensor& h0, const Tensor& c0, const char* layer);

  bool lstm_;
  RecurrentOptions options_;
  Generator* gen_;
  // For layer l and direction d, entry l * dirs + d.
  std::vector<Tensor> weight_ih_, weight_hh_, bias_ih_, bias_hh_;
};

class GRU : public Recurrent {
 public:
  explicit GRU(const GRUOptions& options, Generator& gen = default_generator())
      : Recurrent(false, options, gen) {}
  GRU(std::size_t input_size, std::size_t hidden_size, Generator& gen = default_generator())
      : GRU(GRUOptions(input_size, hidden_size), gen) {}
  std::string name() const override { return "GRU"; }
};

class LSTM : public Recurrent {
 public:
  explicit LSTM(const LSTMOptions& options, Generator& gen = default_generator())
      : Recurrent(true, options, gen) {}
  LSTM(std::size_t input_size, std::size_t hidden_size, Generator& gen = default_generator())
      : LSTM(LSTMOptions(input_size, hidden_size), gen) {}
  std::string name() const override { return "LSTM"; }
};

}  // namespace xgrad::nn
