#include "nn/sequence.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.hpp"
#include "nn/init.hpp"

namespace xgrad::nn {
namespace {

std::ptrdiff_t signed_size(std::size_t n) { return static_cast<std::ptrdiff_t>(n); }

// A weight of `shape` uniform in +-1/sqrt(hidden), as PyTorch's recurrent layers start.
Tensor recurrent_weight(const Shape& shape, std::size_t hidden, Dtype dtype, Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
  return init::uniform_(zeros(shape, {.dtype = dtype}), -bound, bound, gen);
}

void check_sizes(const char* layer, std::size_t input, std::size_t hidden) {
  if (input == 0 || hidden == 0)
    throw ValueError(std::string(layer) + ": needs input_size and hidden_size > 0, got " +
                     std::to_string(input) + " and " + std::to_string(hidden));
}

}  // namespace

// ---- Embedding, LayerNorm, PositionalEmbedding ------------------------------------------------

std::shared_ptr<Embedding> Embedding::from_pretrained(const Tensor& embeddings, bool freeze,
                                                      std::optional<std::int64_t> padding_idx) {
  if (!embeddings.defined() || embeddings.dim() != 2 || !is_floating_point(embeddings.dtype()))
    throw ShapeError(
        "Embedding::from_pretrained: needs a floating table (num_embeddings, "
        "embedding_dim), got " +
        (embeddings.defined()
             ? shape_str(embeddings.shape()) + " " + std::string(dtype_name(embeddings.dtype()))
             : std::string("none")));
  auto e = std::make_shared<Embedding>(embeddings.size(0), embeddings.size(1), padding_idx,
                                       embeddings.dtype());
  {
    const NoGradGuard no_grad;
    e->weight.copy_(embeddings);  // in place: the registered parameter stays the same tensor
  }
  if (freeze) e->weight.requires_grad_(false);
  return e;
}

Embedding::Embedding(std::size_t num_embeddings, std::size_t embedding_dim,
                     std::optional<std::int64_t> padding, Dtype dtype, Generator& gen)
    : padding_idx(padding) {
  if (num_embeddings == 0 || embedding_dim == 0)
    throw ValueError("Embedding: needs num_embeddings and embedding_dim > 0, got " +
                     std::to_string(num_embeddings) + " and " + std::to_string(embedding_dim));
  if (padding && (*padding < 0 || *padding >= signed_size(num_embeddings)))
    throw IndexError("Embedding: padding_idx " + std::to_string(*padding) +
                     " is out of range for " + std::to_string(num_embeddings) + " embeddings");
  register_parameter("weight", weight, zeros({num_embeddings, embedding_dim}, {.dtype = dtype}));
  init::normal_(weight, 0.0, 1.0, gen);
  if (padding) {  // the padding row starts at zero, in place: the parameter stays the same leaf
    std::vector<double> keep(num_embeddings, 1.0);
    keep[static_cast<std::size_t>(*padding)] = 0.0;
    const NoGradGuard no_grad;
    weight *= from_vector(keep, {num_embeddings, 1}, {.dtype = dtype});
  }
}

std::string Embedding::extra_repr() const {
  std::string s = std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1));
  if (padding_idx) s += ", padding_idx=" + std::to_string(*padding_idx);
  return s;
}

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine, Dtype dtype)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  if (normalized_shape_.empty() || !(eps > 0))
    throw ValueError("LayerNorm: needs a normalized shape and eps > 0, got " +
                     shape_str(normalized_shape_) + " and " + number_str(eps));
  if (elementwise_affine) {
    register_parameter("weight", weight, ones(normalized_shape_, {.dtype = dtype}));
    register_parameter("bias", bias, zeros(normalized_shape_, {.dtype = dtype}));
  }
}

std::string LayerNorm::extra_repr() const {
  return shape_str(normalized_shape_) + ", eps=" + number_str(eps_) +
         ", elementwise_affine=" + (weight.defined() ? "true" : "false");
}

PositionalEmbedding::PositionalEmbedding(std::size_t max_length, std::size_t dim, Dtype dtype,
                                         Generator& gen) {
  if (max_length == 0 || dim == 0)
    throw ValueError("PositionalEmbedding: needs max_length and dim > 0, got " +
                     std::to_string(max_length) + " and " + std::to_string(dim));
  register_parameter("weight", weight, zeros({max_length, dim}, {.dtype = dtype}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor PositionalEmbedding::forward(const Tensor& x) {
  const std::size_t table = weight.size(0), dim = weight.size(1);
  if (x.dim() < 2 || x.size(-1) != dim)
    throw ShapeError("PositionalEmbedding: needs input (..., T, " + std::to_string(dim) +
                     "), got " + shape_str(x.shape()));
  const std::size_t length = x.size(-2);
  if (length > table)
    throw ShapeError("PositionalEmbedding: a sequence of length " + std::to_string(length) +
                     " is longer than the table's " + std::to_string(table) + " positions");
  return add(x, slice(weight, 0, 0, signed_size(length)));
}

std::string PositionalEmbedding::extra_repr() const {
  return std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1));
}

// ---- attention --------------------------------------------------------------------------------

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& options, Generator& gen)
    : options_(options), gen_(&gen) {
  const std::size_t embed_dim = options.embed_dim(), num_heads = options.num_heads();
  const Dtype dtype = options.dtype();
  if (embed_dim == 0 || num_heads == 0 || embed_dim % num_heads != 0)
    throw ValueError("MultiheadAttention: " + std::to_string(num_heads) +
                     " heads do not divide the width " + std::to_string(embed_dim) +
                     " (expected embed_dim a positive multiple of num_heads)");
  if (!(options.dropout() >= 0 && options.dropout() < 1))
    throw ValueError("MultiheadAttention: dropout must be in [0, 1), got " +
                     number_str(options.dropout()));
  in_proj = register_module(
      "in_proj", std::make_shared<Linear>(embed_dim, 3 * embed_dim, options.bias(), dtype, gen));
  out_proj = register_module(
      "out_proj", std::make_shared<Linear>(embed_dim, embed_dim, options.bias(), dtype, gen));
}

Tensor MultiheadAttention::heads(const Tensor& x) const {
  const std::ptrdiff_t B = signed_size(x.size(0)), T = signed_size(x.size(1));
  return transpose(reshape(x, {B, T, signed_size(options_.num_heads()), -1}), 1, 2);
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  if (x.dim() != 3 || x.size(2) != options_.embed_dim())
    throw ShapeError("MultiheadAttention: needs input (B, T, " +
                     std::to_string(options_.embed_dim()) + "), got " + shape_str(x.shape()));
  AttentionOptions attend{.is_causal = options_.causal(), .generator = gen_};
  if (is_training()) attend.dropout_p = options_.dropout();
  return out_proj->forward(multi_head_attention(in_proj->forward(x), options_.num_heads(), attend));
}

namespace {
// A key padding mask (B, S) bool, true at padding, as an attention mask (B, 1, 1, S), true where a
// query may look; combined with `mask` when there is one.
Tensor keys_to_attend(const Tensor& key_padding_mask, const Tensor& key, const Tensor& mask) {
  if (!key_padding_mask.defined()) return mask;
  if (key_padding_mask.dtype() != Dtype::bool_ || key_padding_mask.dim() != 2 ||
      key_padding_mask.size(0) != key.size(0) || key_padding_mask.size(1) != key.size(1))
    throw ShapeError("MultiheadAttention: key_padding_mask must be bool (B, S) = (" +
                     std::to_string(key.size(0)) + ", " + std::to_string(key.size(1)) +
                     "), true at the padded keys; got " +
                     std::string(dtype_name(key_padding_mask.dtype())) + " " +
                     shape_str(key_padding_mask.shape()));
  const Tensor keep = reshape(logical_not(key_padding_mask),
                              {signed_size(key.size(0)), 1, 1, signed_size(key.size(1))});
  return mask.defined() ? logical_and(mask, keep) : keep;
}
}  // namespace

Tensor MultiheadAttention::forward(const Tensor& x, const Tensor& key_padding_mask) {
  if (!key_padding_mask.defined()) return forward(x);
  return forward(x, x, x, Tensor(), options_.causal(), key_padding_mask);
}

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& mask, bool is_causal,
                                   const Tensor& key_padding_mask) {
  for (const Tensor* t : {&query, &key, &value})
    if (t->dim() != 3 || t->size(2) != options_.embed_dim() || t->size(0) != query.size(0))
      throw ShapeError(
          "MultiheadAttention: needs query (B, T, E), key and value (B, S, E) with E " +
          std::to_string(options_.embed_dim()) + ", got " + shape_str(query.shape()) + ", " +
          shape_str(key.shape()) + ", " + shape_str(value.shape()));
  // The three projections are the three blocks of in_proj's rows.
  const auto E = signed_size(options_.embed_dim());
  const auto project = [&](const Tensor& t, std::ptrdiff_t block) {
    const Tensor w = slice(in_proj->weight, 0, block * E, (block + 1) * E);
    const Tensor b =
        in_proj->bias.defined() ? slice(in_proj->bias, 0, block * E, (block + 1) * E) : Tensor();
    return heads(linear(t, w, b));
  };
  AttentionOptions attend{.mask = keys_to_attend(key_padding_mask, key, mask),
                          .is_causal = is_causal,
                          .generator = gen_};
  if (is_training()) attend.dropout_p = options_.dropout();
  const Tensor y =
      scaled_dot_product_attention(project(query, 0), project(key, 1), project(value, 2), attend);
  return out_proj->forward(
      reshape(transpose(y, 1, 2), {signed_size(query.size(0)), signed_size(query.size(1)), -1}));
}

std::string MultiheadAttention::extra_repr() const {
  return "embed_dim=" + std::to_string(options_.embed_dim()) +
         ", num_heads=" + std::to_string(options_.num_heads()) +
         ", dropout=" + number_str(options_.dropout()) +
         ", causal=" + (options_.causal() ? "true" : "false");
}

TransformerBlock::TransformerBlock(const TransformerBlockOptions& options, Generator& gen)
    : dropout_(options.dropout()), gen_(&gen) {
  const std::size_t d_model = options.d_model();
  const Dtype dtype = options.dtype();
  const std::size_t hidden = options.mlp_hidden() ? options.mlp_hidden() : 4 * d_model;
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(Shape{d_model}, 1e-5, true, dtype));
  attn = register_module("attn", std::make_shared<MultiheadAttention>(
                                     MultiheadAttentionOptions(d_model, options.num_heads())
                                         .causal(options.causal())
                                         .dtype(dtype),
                                     gen));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(Shape{d_model}, 1e-5, true, dtype));
  fc1 = register_module("fc1", std::make_shared<Linear>(d_model, hidden, true, dtype, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, d_model, true, dtype, gen));
}

Tensor TransformerBlock::forward(const Tensor& x) { return forward(x, Tensor()); }

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask) {
  const bool drop = is_training() && dropout_ > 0;
  Tensor a = attn->forward(ln1->forward(x), key_padding_mask);
  if (drop) a = dropout(a, dropout_, true, *gen_);
  const Tensor h = add(x, a);
  Tensor m = fc2->forward(gelu(fc1->forward(ln2->forward(h))));
  if (drop) m = dropout(m, dropout_, true, *gen_);
  return add(h, m);
}

// ---- PyTorch's encoder ------------------------------------------------------------------------

namespace {
// The options an encoder or decoder layer refuses, named by `layer`.
void check_layer_options(const std::string& layer, const TransformerEncoderLayerOptions& o) {
  if (!o.batch_first())
    throw ValueError(layer +
                     ": xgrad's attention is batch first, inputs (B, T, d_model); "
                     "batch_first(false) is not supported (transpose(x, 0, 1) the input)");
  if (o.activation() != "relu" && o.activation() != "gelu")
    throw ValueError(layer + ": activation \"" + o.activation() +
                     "\"; expected \"relu\" or \"gelu\"");
  if (!(o.dropout() >= 0 && o.dropout() < 1))
    throw ValueError(layer + ": dropout must be in [0, 1), got " + number_str(o.dropout()));
}

// The options of an encoder or decoder layer's parts, from the layer's.
MultiheadAttentionOptions attention_options(const TransformerEncoderLayerOptions& o) {
  return MultiheadAttentionOptions(o.d_model(), o.nhead()).dropout(o.dropout()).dtype(o.dtype());
}
LayerNormOptions norm_options(const TransformerEncoderLayerOptions& o) {
  return LayerNormOptions({o.d_model()}).eps(o.layer_norm_eps()).dtype(o.dtype());
}

// x through dropout when training with p > 0.
Tensor maybe_dropout(const Tensor& x, double p, bool training, Generator& gen) {
  return training && p > 0 ? dropout(x, p, true, gen) : x;
}

// An encoder or decoder layer's feed-forward block: linear2(dropout(activation(linear1(x)))),
// dropped out again.
template <class Drop>
Tensor feed_forward(const Tensor& x, Linear& linear1, Linear& linear2,
                    const std::string& activation, Drop drop) {
  const Tensor h = linear1.forward(x);
  return drop(linear2.forward(drop(activation == "gelu" ? gelu(h) : relu(h))));
}
}  // namespace

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerEncoderLayerOptions& o,
                                                 Generator& gen)
    : options_(o), gen_(&gen) {
  check_layer_options("TransformerEncoderLayer", o);
  self_attn =
      register_module("self_attn", std::make_shared<MultiheadAttention>(attention_options(o), gen));
  linear1 = register_module(
      "linear1", std::make_shared<Linear>(o.d_model(), o.dim_feedforward(), true, o.dtype(), gen));
  linear2 = register_module(
      "linear2", std::make_shared<Linear>(o.dim_feedforward(), o.d_model(), true, o.dtype(), gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(norm_options(o)));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(norm_options(o)));
}

Tensor TransformerEncoderLayer::drop(const Tensor& x) {
  return maybe_dropout(x, options_.dropout(), is_training(), *gen_);
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& key_padding_mask,
                                        const Tensor& src_mask) {
  const auto sa = [&](const Tensor& x) {
    return drop(self_attn->forward(x, x, x, src_mask, false, key_padding_mask));
  };
  const auto ff = [&](const Tensor& x) {
    return feed_forward(x, *linear1, *linear2, options_.activation(),
                        [this](const Tensor& t) { return drop(t); });
  };
  if (options_.norm_first()) {
    const Tensor x = add(src, sa(norm1->forward(src)));
    return add(x, ff(norm2->forward(x)));
  }
  const Tensor x = norm1->forward(add(src, sa(src)));
  return norm2->forward(add(x, ff(x)));
}

TransformerEncoder::TransformerEncoder(const TransformerEncoderLayerOptions& layer,
                                       std::size_t num_layers, bool final_norm, Generator& gen) {
  if (num_layers == 0) throw ValueError("TransformerEncoder: needs num_layers > 0");
  layers = register_module("layers", std::make_shared<ModuleList>());
  for (std::size_t l = 0; l < num_layers; ++l)
    layers->push_back(std::make_shared<TransformerEncoderLayer>(layer, gen));
  if (final_norm) norm = register_module("norm", std::make_shared<LayerNorm>(norm_options(layer)));
}

Tensor TransformerEncoder::forward(const Tensor& src, const Tensor& key_padding_mask,
                                   const Tensor& src_mask) {
  Tensor x = src;
  for (std::size_t l = 0; l < layers->size(); ++l)
    x = layers->at<TransformerEncoderLayer>(l)->forward(x, key_padding_mask, src_mask);
  return norm ? norm->forward(x) : x;
}

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerDecoderLayerOptions& o,
                                                 Generator& gen)
    : options_(o), gen_(&gen) {
  check_layer_options("TransformerDecoderLayer", o);
  const auto attention = [&] {
    return std::make_shared<MultiheadAttention>(attention_options(o), gen);
  };
  self_attn = register_module("self_attn", attention());
  multihead_attn = register_module("multihead_attn", attention());
  linear1 = register_module(
      "linear1", std::make_shared<Linear>(o.d_model(), o.dim_feedforward(), true, o.dtype(), gen));
  linear2 = register_module(
      "linear2", std::make_shared<Linear>(o.dim_feedforward(), o.d_model(), true, o.dtype(), gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(norm_options(o)));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(norm_options(o)));
  norm3 = register_module("norm3", std::make_shared<LayerNorm>(norm_options(o)));
}

Tensor TransformerDecoderLayer::drop(const Tensor& x) {
  return maybe_dropout(x, options_.dropout(), is_training(), *gen_);
}

Tensor TransformerDecoderLayer::forward(const Tensor&) {
  throw ValueError(
      "TransformerDecoderLayer: needs the memory too: forward(tgt, memory, tgt_mask, ...)");
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const Tensor& tgt_mask, const Tensor& memory_mask,
                                        const Tensor& tgt_key_padding_mask,
                                        const Tensor& memory_key_padding_mask) {
  const auto sa = [&](const Tensor& x) {
    return drop(self_attn->forward(x, x, x, tgt_mask, false, tgt_key_padding_mask));
  };
  const auto ca = [&](const Tensor& x) {
    return drop(
        multihead_attn->forward(x, memory, memory, memory_mask, false, memory_key_padding_mask));
  };
  const auto ff = [&](const Tensor& x) {
    return feed_forward(x, *linear1, *linear2, options_.activation(),
                        [this](const Tensor& t) { return drop(t); });
  };
  if (options_.norm_first()) {
    Tensor x = add(tgt, sa(norm1->forward(tgt)));
    x = add(x, ca(norm2->forward(x)));
    return add(x, ff(norm3->forward(x)));
  }
  Tensor x = norm1->forward(add(tgt, sa(tgt)));
  x = norm2->forward(add(x, ca(x)));
  return norm3->forward(add(x, ff(x)));
}

TransformerDecoder::TransformerDecoder(const TransformerDecoderLayerOptions& layer,
                                       std::size_t num_layers, bool final_norm, Generator& gen) {
  if (num_layers == 0) throw ValueError("TransformerDecoder: needs num_layers > 0");
  layers = register_module("layers", std::make_shared<ModuleList>());
  for (std::size_t l = 0; l < num_layers; ++l)
    layers->push_back(std::make_shared<TransformerDecoderLayer>(layer, gen));
  if (final_norm) norm = register_module("norm", std::make_shared<LayerNorm>(norm_options(layer)));
}

Tensor TransformerDecoder::forward(const Tensor&) {
  throw ValueError("TransformerDecoder: needs the memory too: forward(tgt, memory, tgt_mask, ...)");
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask,
                                   const Tensor& memory_mask, const Tensor& tgt_key_padding_mask,
                                   const Tensor& memory_key_padding_mask) {
  Tensor x = tgt;
  for (std::size_t l = 0; l < layers->size(); ++l)
    x = layers->at<TransformerDecoderLayer>(l)->forward(
        x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask);
  return norm ? norm->forward(x) : x;
}

// ---- recurrence -------------------------------------------------------------------------------

Tensor gru_step(const Tensor& xp, const Tensor& h, const Tensor& weight_hh, const Tensor& bias_hh) {
  return gru_cell(xp, linear(h, weight_hh, bias_hh), h);
}

LSTMState lstm_step(const Tensor& xp, const LSTMState& state, const Tensor& weight_hh,
                    const Tensor& bias_hh) {
  const Tensor next = lstm_cell(xp, linear(state.h, weight_hh, bias_hh), state.c);
  return {select(next, 0, 0), select(next, 0, 1)};
}

RecurrentCell::RecurrentCell(const char* layer, std::size_t gates, std::size_t input_size,
                             std::size_t hidden_size, bool bias, Dtype dtype, Generator& gen)
    : input_(input_size), hidden_(hidden_size) {
  check_sizes(layer, input_size, hidden_size);
  const std::size_t rows = gates * hidden_size;
  register_parameter("weight_ih", weight_ih,
                     recurrent_weight({rows, input_size}, hidden_size, dtype, gen));
  register_parameter("weight_hh", weight_hh,
                     recurrent_weight({rows, hidden_size}, hidden_size, dtype, gen));
  if (bias) {
    register_parameter("bias_ih", bias_ih, recurrent_weight({rows}, hidden_size, dtype, gen));
    register_parameter("bias_hh", bias_hh, recurrent_weight({rows}, hidden_size, dtype, gen));
  }
}

void RecurrentCell::check_input(const Tensor& x, const Tensor& h) const {
  if (x.dim() != 2 || x.size(1) != input_ || !h.defined() || h.dim() != 2 ||
      h.size(0) != x.size(0) || h.size(1) != hidden_)
    throw ShapeError(name() + ": needs input (B, " + std::to_string(input_) + ") and state (B, " +
                     std::to_string(hidden_) + "), got " + shape_str(x.shape()) + " and " +
                     (h.defined() ? shape_str(h.shape()) : std::string("none")));
}

Tensor RecurrentCell::zero_state(const Tensor& x) const {
  return zeros({x.dim() == 2 ? x.size(0) : 1, hidden_}, {.dtype = weight_ih.dtype()});
}

std::string RecurrentCell::extra_repr() const {
  return std::to_string(input_) + ", " + std::to_string(hidden_) +
         (bias_ih.defined() ? "" : ", bias=false");
}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) {
  check_input(x, h);
  return gru_step(linear(x, weight_ih, bias_ih), h, weight_hh, bias_hh);
}

Tensor GRUCell::forward(const Tensor& x) { return forward(x, zero_state(x)); }

LSTMState LSTMCell::forward(const Tensor& x, const LSTMState& state) {
  check_input(x, state.h);
  check_input(x, state.c);
  return lstm_step(linear(x, weight_ih, bias_ih), state, weight_hh, bias_hh);
}

Tensor LSTMCell::forward(const Tensor& x) {
  const Tensor zero = zero_state(x);
  return forward(x, LSTMState{zero, zero}).h;
}

Recurrent::Recurrent(bool lstm, const RecurrentOptions& options, Generator& gen)
    : lstm_(lstm), options_(options), gen_(&gen) {
  const char* layer = lstm ? "LSTM" : "GRU";
  const std::size_t input_size = options.input_size(), hidden_size = options.hidden_size();
  const Dtype dtype = options.dtype();
  check_sizes(layer, input_size, hidden_size);
  if (options.num_layers() == 0 || !(options.dropout() >= 0 && options.dropout() < 1))
    throw ValueError(std::string(layer) + ": needs num_layers > 0 and dropout in [0, 1), got " +
                     std::to_string(options.num_layers()) + " and " +
                     number_str(options.dropout()));
  if (!options.batch_first())
    throw ValueError(std::string(layer) +
                     ": xgrad's recurrent layers are batch first, inputs (B, T, features); "
                     "batch_first(false) is not supported (transpose(x, 0, 1) the input)");
  const std::size_t rows = (lstm ? 4 : 3) * hidden_size;
  const std::size_t dirs = options.bidirectional() ? 2 : 1;
  for (std::size_t l = 0; l < options.num_layers(); ++l)
    for (std::size_t d = 0; d < dirs; ++d) {
      const std::string k = std::to_string(l) + (d ? "_reverse" : "");
      const std::size_t in = l == 0 ? input_size : dirs * hidden_size;
      weight_ih_.push_back(register_parameter(
          "weight_ih_l" + k, recurrent_weight({rows, in}, hidden_size, dtype, gen)));
      weight_hh_.push_back(register_parameter(
          "weight_hh_l" + k, recurrent_weight({rows, hidden_size}, hidden_size, dtype, gen)));
      if (options.bias()) {
        bias_ih_.push_back(
            register_parameter("bias_ih_l" + k, recurrent_weight({rows}, hidden_size, dtype, gen)));
        bias_hh_.push_back(
            register_parameter("bias_hh_l" + k, recurrent_weight({rows}, hidden_size, dtype, gen)));
      } else {
        bias_ih_.emplace_back();
        bias_hh_.emplace_back();
      }
    }
}

namespace {

std::vector<std::size_t> sizes_of(const Tensor& batch_sizes) {
  std::vector<std::size_t> out;
  for (std::int64_t b : batch_sizes.value<std::int64_t>())
    out.push_back(static_cast<std::size_t>(b));
  return out;
}

// One direction of one layer over packed steps: for each step t (in reverse when `reverse`), the
// sequences still going (the first batch_sizes[t] rows of the state, longest first) take a step;
// the others keep their state untouched. Returns the outputs of every step in the data's order
// and leaves the final states in `state`.
Tensor run_direction(const Tensor& data, const std::vector<std::size_t>& batch_sizes,
                     LSTMState& state, bool lstm, bool reverse, const Tensor& weight_ih,
                     const Tensor& weight_hh, const Tensor& bias_ih, const Tensor& bias_hh) {
  const std::size_t T = batch_sizes.size(), B = state.h.size(0);
  std::vector<std::size_t> offset(T, 0);
  for (std::size_t t = 1; t < T; ++t) offset[t] = offset[t - 1] + batch_sizes[t - 1];
  std::vector<Tensor> outputs(T);
  // The input's projection of every step in one product (and its weight gradient in one).
  const Tensor projected = linear(data, weight_ih, bias_ih);
  const bool unpacked =
      std::all_of(batch_sizes.begin(), batch_sizes.end(), [B](std::size_t n) { return n == B; });
  if (T > 0 && unpacked) {  // equal lengths: the layer's steps in one op (in reverse: time flipped)
    const auto H = signed_size(state.h.size(1)), last = signed_size(T) - 1;
    Tensor xp = reshape(projected, {signed_size(T), signed_size(B), (lstm ? 4 : 3) * H});
    if (reverse) xp = flip(xp, {0});
    const auto in_order = [&](const Tensor& steps) {  // (T, B, H) in the data's order, as rows
      return reshape(reverse ? flip(steps, {0}) : steps, {-1, H});
    };
    if (!lstm) {
      const Tensor states = gru_sequence(xp, state.h, weight_hh, bias_hh);
      state.h = select(states, 0, last);
      return in_order(states);
    }
    const Tensor both = lstm_sequence(xp, state.h, state.c, weight_hh, bias_hh);
    const Tensor hs = select(both, 0, 0);
    state.h = select(hs, 0, last);
    state.c = select(select(both, 0, 1), 0, last);
    return in_order(hs);
  }
  for (std::size_t k = 0; k < T; ++k) {
    const std::size_t t = reverse ? T - 1 - k : k, n = batch_sizes[t];
    const auto rows = [&](const Tensor& s, std::size_t start, std::size_t count) {
      return start == 0 && count == B ? s : narrow(s, 0, signed_size(start), count);
    };
    const Tensor xp = T == 1 ? projected : narrow(projected, 0, signed_size(offset[t]), n);
    LSTMState active{rows(state.h, 0, n), lstm ? rows(state.c, 0, n) : Tensor()};
    if (lstm)
      active = lstm_step(xp, active, weight_hh, bias_hh);
    else
      active.h = gru_step(xp, active.h, weight_hh, bias_hh);
    outputs[t] = active.h;
    const auto joined = [&](const Tensor& now, const Tensor& before) {
      return n == B ? now : concat({now, rows(before, n, B - n)}, 0);
    };
    state.h = joined(active.h, state.h);
    if (lstm) state.c = joined(active.c, state.c);
  }
  return T == 1 ? outputs[0] : concat(outputs, 0);
}

}  // namespace

PackedRecurrentOutput Recurrent::run(const Tensor& data,
                                     const std::vector<std::size_t>& batch_sizes, const Tensor& h0,
                                     const Tensor& c0, const char* layer) {
  const std::size_t hidden = options_.hidden_size(), L = options_.num_layers();
  const std::size_t dirs = options_.bidirectional() ? 2 : 1;
  const std::size_t B = batch_sizes.empty() ? 0 : batch_sizes.front();
  const Shape state_shape = {L * dirs, B, hidden};
  for (const Tensor* s : {&h0, &c0})
    if (s->defined() && s->shape() != state_shape)
      throw ShapeError(
          std::string(layer) + ": an initial state of shape " + shape_str(s->shape()) +
          "; expected (num_layers * directions, B, hidden) = " + shape_str(state_shape));
  if (c0.defined() && !lstm_) throw ValueError("GRU: takes no initial cell state");
  const Tensor zero = zeros({B, hidden}, {.dtype = data.dtype()});
  Tensor input = data;
  std::vector<Tensor> last_h, last_c;
  for (std::size_t l = 0; l < L; ++l) {
    std::vector<Tensor> outputs;
    for (std::size_t d = 0; d < dirs; ++d) {
      const std::size_t k = l * dirs + d;
      LSTMState state{h0.defined() ? select(h0, 0, signed_size(k)) : zero,
                      lstm_ ? (c0.defined() ? select(c0, 0, signed_size(k)) : zero) : Tensor()};
      outputs.push_back(run_direction(input, batch_sizes, state, lstm_, d == 1, weight_ih_[k],
                                      weight_hh_[k], bias_ih_[k], bias_hh_[k]));
      last_h.push_back(state.h);
      last_c.push_back(state.c);
    }
    input = dirs == 1 ? outputs[0] : concat(outputs, 1);
    if (l + 1 < L && is_training() && options_.dropout() > 0)
      input = dropout(input, options_.dropout(), true, *gen_);
  }
  PackedRecurrentOutput out;
  out.output.data = input;
  out.h = stack(last_h, 0);
  if (lstm_) out.c = stack(last_c, 0);
  return out;
}

RecurrentOutput Recurrent::forward(const Tensor& x, const Tensor& h0, const Tensor& c0) {
  const std::string layer = name();
  const std::size_t inputs = options_.input_size();
  if (x.dim() != 3 || x.size(2) != inputs)
    throw ShapeError(layer + ": needs input (B, T, " + std::to_string(inputs) + "), got " +
                     shape_str(x.shape()));
  const std::size_t B = x.size(0), T = x.size(1);
  // Every sequence of length T: the steps one after another, all B rows at each.
  const Tensor steps = reshape(transpose(x, 0, 1).contiguous(), {-1, signed_size(inputs)});
  PackedRecurrentOutput packed = run(steps, std::vector<std::size_t>(T, B), h0, c0, layer.c_str());
  const auto width = signed_size(packed.output.data.size(1));
  return {transpose(reshape(packed.output.data, {signed_size(T), signed_size(B), width}), 0, 1),
          packed.h, packed.c};
}

PackedRecurrentOutput Recurrent::forward(const utils::rnn::PackedSequence& x, const Tensor& h0,
                                         const Tensor& c0) {
  const std::string layer = name();
  const std::size_t inputs = options_.input_size();
  if (!x.data.defined() || x.data.dim() != 2 || x.data.size(1) != inputs ||
      !x.batch_sizes.defined())
    throw ShapeError(layer + ": needs packed data (N, " + std::to_string(inputs) + "), got " +
                     (x.data.defined() ? shape_str(x.data.shape()) : std::string("none")));
  const std::vector<std::size_t> batch_sizes = sizes_of(x.batch_sizes);
  // Initial states in the packed (sorted) order; the final ones back in the batch's order.
  const auto sorted = [&](const Tensor& s) {
    return s.defined() && x.sorted_indices.defined() ? index_select(s, 1, x.sorted_indices) : s;
  };
  const auto unsorted = [&](const Tensor& s) {
    return s.defined() && x.unsorted_indices.defined() ? index_select(s, 1, x.unsorted_indices) : s;
  };
  PackedRecurrentOutput out = run(x.data, batch_sizes, sorted(h0), sorted(c0), layer.c_str());
  out.output.batch_sizes = x.batch_sizes;
  out.output.sorted_indices = x.sorted_indices;
  out.output.unsorted_indices = x.unsorted_indices;
  out.h = unsorted(out.h);
  out.c = unsorted(out.c);
  return out;
}

// ---- packing ----------------------------------------------------------------------------------

namespace utils::rnn {

PackedSequence pack_padded_sequence(const Tensor& x, const Tensor& lengths, bool batch_first,
                                    bool enforce_sorted) {
  const char* op = "pack_padded_sequence";
  if (!x.defined() || x.dim() < 2)
    throw ShapeError(std::string(op) + ": needs sequences (B, T, ...) or (T, B, ...), got " +
                     (x.defined() ? shape_str(x.shape()) : std::string("none")));
  const std::size_t B = x.size(batch_first ? 0 : 1), T = x.size(batch_first ? 1 : 0);
  if (!lengths.defined() || lengths.dtype() != Dtype::int64 || lengths.dim() != 1 ||
      lengths.size(0) != B)
    throw ShapeError(std::string(op) + ": needs one int64 length per sequence (" +
                     std::to_string(B) + "), got " +
                     (lengths.defined() ? shape_str(lengths.shape()) + " " +
                                              std::string(dtype_name(lengths.dtype()))
                                        : std::string("none")));
  const std::vector<std::int64_t> len = [&] {
    std::vector<std::int64_t> v;
    for (std::int64_t n : lengths.value<std::int64_t>()) v.push_back(n);
    return v;
  }();
  for (std::size_t i = 0; i < B; ++i)
    if (len[i] < 1 || static_cast<std::size_t>(len[i]) > T)
      throw ValueError(std::string(op) + ": sequence " + std::to_string(i) + " has length " +
                       std::to_string(len[i]) + "; expected 1 to T = " + std::to_string(T));
  std::vector<std::int64_t> order(B);
  std::iota(order.begin(), order.end(), 0);
  if (enforce_sorted) {
    for (std::size_t i = 1; i < B; ++i)
      if (len[i] > len[i - 1])
        throw ValueError(std::string(op) + ": the lengths must decrease (sequence " +
                         std::to_string(i) + " has " + std::to_string(len[i]) + " after " +
                         std::to_string(len[i - 1]) +
                         "); sort the batch, or pass enforce_sorted = false");
  } else {
    // Longest first, ties in batch order (std::sort with the row as the second key: libstdc++
    // 12's stable_sort trips ASan's alloc-dealloc check).
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return len[a] != len[b] ? len[a] > len[b] : a < b;
    });
  }
  const auto longest = static_cast<std::size_t>(len[order[0]]);
  std::vector<std::int64_t> batch_sizes, positions;
  for (std::size_t t = 0; t < longest; ++t) {
    std::int64_t n = 0;
    for (std::int64_t row : order)
      if (static_cast<std::size_t>(len[row]) > t) {
        positions.push_back(batch_first ? row * static_cast<std::int64_t>(T) + signed_size(t)
                                        : signed_size(t) * static_cast<std::int64_t>(B) + row);
        ++n;
      }
    batch_sizes.push_back(n);
  }
  std::vector<std::ptrdiff_t> flat = {signed_size(B * T)};
  for (std::size_t a = 2; a < x.dim(); ++a) flat.push_back(signed_size(x.size(a)));
  PackedSequence out;
  out.data = index_select(reshape(x, flat), 0, positions);
  out.batch_sizes = from_vector(batch_sizes, {batch_sizes.size()});
  std::vector<std::int64_t> inverse(B);
  for (std::size_t k = 0; k < B; ++k) inverse[static_cast<std::size_t>(order[k])] = signed_size(k);
  out.sorted_indices = from_vector(order, {B});
  out.unsorted_indices = from_vector(inverse, {B});
  return out;
}

std::tuple<Tensor, Tensor> pad_packed_sequence(const PackedSequence& p, bool batch_first,
                                               double padding_value,
                                               std::optional<std::size_t> total_length) {
  const char* op = "pad_packed_sequence";
  if (!p.data.defined() || p.data.dim() < 1 || !p.batch_sizes.defined())
    throw ValueError(std::string(op) + ": not a packed sequence (no data or batch_sizes)");
  const std::vector<std::size_t> sizes = sizes_of(p.batch_sizes);
  const std::size_t T = sizes.size(), B = T ? sizes[0] : 0;
  const std::size_t steps = total_length.value_or(T);
  if (steps < T)
    throw ValueError(std::string(op) + ": total_length " + std::to_string(steps) +
                     " is shorter than the longest sequence (" + std::to_string(T) + ")");
  // Rank k (longest first) of batch row b, and each rank's length.
  std::vector<std::int64_t> rank(B);
  std::iota(rank.begin(), rank.end(), 0);
  if (p.unsorted_indices.defined())
    rank = std::vector<std::int64_t>(p.unsorted_indices.value<std::int64_t>().begin(),
                                     p.unsorted_indices.value<std::int64_t>().end());
  std::vector<std::size_t> offset(T, 0), length(B, 0);
  for (std::size_t t = 0; t < T; ++t) {
    if (t > 0) offset[t] = offset[t - 1] + sizes[t - 1];
    for (std::size_t k = 0; k < sizes[t]; ++k) ++length[k];
  }
  // Row (b, t) of the result: the packed row, or the padding row appended after the data.
  const auto pad_row = static_cast<std::int64_t>(p.data.size(0));
  std::vector<std::int64_t> positions;
  for (std::size_t i = 0; i < B * steps; ++i) {
    const std::size_t b = batch_first ? i / steps : i % B, t = batch_first ? i % steps : i / B;
    const auto k = static_cast<std::size_t>(rank[b]);
    positions.push_back(t < length[k] ? signed_size(offset[t] + k) : pad_row);
  }
  Shape row = p.data.shape();
  row[0] = 1;
  const Tensor with_padding =
      concat({p.data, full(row, padding_value, {.dtype = p.data.dtype()})}, 0);
  std::vector<std::ptrdiff_t> shape = {signed_size(batch_first ? B : steps),
                                       signed_size(batch_first ? steps : B)};
  for (std::size_t a = 1; a < p.data.dim(); ++a) shape.push_back(signed_size(p.data.size(a)));
  std::vector<std::int64_t> lengths(B);
  for (std::size_t b = 0; b < B; ++b)
    lengths[b] = signed_size(length[static_cast<std::size_t>(rank[b])]);
  return {reshape(index_select(with_padding, 0, positions), shape), from_vector(lengths, {B})};
}

}  // namespace utils::rnn

std::string Recurrent::extra_repr() const {
  std::string s =
      std::to_string(options_.input_size()) + ", " + std::to_string(options_.hidden_size());
  if (options_.num_layers() != 1) s += ", num_layers=" + std::to_string(options_.num_layers());
  if (!options_.bias()) s += ", bias=false";
  if (options_.dropout() > 0) s += ", dropout=" + number_str(options_.dropout());
  if (options_.bidirectional()) s += ", bidirectional=true";
  return s + ", batch_first=true";
}

}  // namespace xgrad::nn
