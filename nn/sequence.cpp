#include "nn/sequence.hpp"

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

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& mask, bool is_causal) {
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
  AttentionOptions attend{.mask = mask, .is_causal = is_causal, .generator = gen_};
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

Tensor TransformerBlock::forward(const Tensor& x) {
  const bool drop = is_training() && dropout_ > 0;
  Tensor a = attn->forward(ln1->forward(x));
  if (drop) a = dropout(a, dropout_, true, *gen_);
  const Tensor h = add(x, a);
  Tensor m = fc2->forward(gelu(fc1->forward(ln2->forward(h))));
  if (drop) m = dropout(m, dropout_, true, *gen_);
  return add(h, m);
}

// ---- recurrence -------------------------------------------------------------------------------

Tensor gru_step(const Tensor& xp, const Tensor& h, const Tensor& weight_hh, const Tensor& bias_hh) {
  return gru_cell(xp, linear(h, weight_hh, bias_hh), h);
}

LSTMState lstm_step(const Tensor& xp, const LSTMState& state, const Tensor& weight_hh,
                    const Tensor& bias_hh) {
  const std::vector<Tensor> g4 = chunk(add(xp, linear(state.h, weight_hh, bias_hh)), 4, -1);
  const Tensor i = sigmoid(g4[0]), f = sigmoid(g4[1]), g = tanh(g4[2]), o = sigmoid(g4[3]);
  const Tensor c = add(mul(f, state.c), mul(i, g));
  return {mul(o, tanh(c)), c};
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
  for (std::size_t l = 0; l < options.num_layers(); ++l) {
    const std::string k = std::to_string(l);
    const std::size_t in = l == 0 ? input_size : hidden_size;
    weight_ih_.push_back(register_parameter("weight_ih_l" + k,
                                            recurrent_weight({rows, in}, hidden_size, dtype, gen)));
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

RecurrentOutput Recurrent::forward(const Tensor& x, const Tensor& h0, const Tensor& c0) {
  const std::string layer = name();
  const std::size_t inputs = options_.input_size(), hidden = options_.hidden_size();
  if (x.dim() != 3 || x.size(2) != inputs)
    throw ShapeError(layer + ": needs input (B, T, " + std::to_string(inputs) + "), got " +
                     shape_str(x.shape()));
  const std::size_t B = x.size(0), T = x.size(1), L = options_.num_layers();
  const Shape state_shape = {L, B, hidden};
  for (const Tensor* s : {&h0, &c0})
    if (s->defined() && s->shape() != state_shape)
      throw ShapeError(layer + ": an initial state of shape " + shape_str(s->shape()) +
                       "; expected (num_layers, B, hidden) = " + shape_str(state_shape));
  if (c0.defined() && !lstm_) throw ValueError("GRU: takes no initial cell state");
  const Tensor zero = zeros({B, hidden}, {.dtype = x.dtype()});
  Tensor input = x;
  std::vector<Tensor> last_h, last_c;
  for (std::size_t l = 0; l < L; ++l) {
    LSTMState state{h0.defined() ? select(h0, 0, signed_size(l)) : zero,
                    c0.defined() ? select(c0, 0, signed_size(l)) : zero};
    std::vector<Tensor> outputs;
    outputs.reserve(T);
    for (std::size_t t = 0; t < T; ++t) {
      // Each step projects its own input: a slice of the projected sequence would cost a
      // gradient the size of the whole sequence at every step.
      const Tensor step = linear(select(input, 1, signed_size(t)), weight_ih_[l], bias_ih_[l]);
      if (lstm_)
        state = lstm_step(step, state, weight_hh_[l], bias_hh_[l]);
      else
        state.h = gru_step(step, state.h, weight_hh_[l], bias_hh_[l]);
      outputs.push_back(state.h);
    }
    input = stack(outputs, 1);
    if (l + 1 < L && is_training() && options_.dropout() > 0)
      input = dropout(input, options_.dropout(), true, *gen_);
    last_h.push_back(state.h);
    last_c.push_back(state.c);
  }
  RecurrentOutput out{input, stack(last_h, 0), Tensor()};
  if (lstm_) out.c = stack(last_c, 0);
  return out;
}

std::string Recurrent::extra_repr() const {
  std::string s =
      std::to_string(options_.input_size()) + ", " + std::to_string(options_.hidden_size());
  if (options_.num_layers() != 1) s += ", num_layers=" + std::to_string(options_.num_layers());
  if (!options_.bias()) s += ", bias=false";
  if (options_.dropout() > 0) s += ", dropout=" + number_str(options_.dropout());
  return s + ", batch_first=true";
}

}  // namespace xgrad::nn
