// The ops of sequence models, composed from primitives (no derivative code here):
// embedding, masked_fill, tril / triu, scaled dot-product attention, split / chunk; and the
// constants one_hot and multinomial, which take no gradient.
#include <cmath>
#include <limits>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {

std::string count_str(std::size_t n, const char* what) { return std::to_string(n) + " " + what; }

// true where (row i, column j) of the last two axes keeps its value: j - i <= k (tril) or >= k.
Tensor triangle_mask(const Tensor& x, std::ptrdiff_t k, bool lower, const char* op) {
  if (x.dim() < 2)
    throw ShapeError(std::string(op) + ": needs at least 2 axes, got " + shape_str(x.shape()));
  const std::size_t rows = x.size(-2), cols = x.size(-1);
  xt::xarray<bool> mask = detail::empty<bool>({rows, cols});
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const auto d = static_cast<std::ptrdiff_t>(j) - static_cast<std::ptrdiff_t>(i);
      mask.data()[i * cols + j] = lower ? d <= k : d >= k;
    }
  return Tensor(std::move(mask));
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& index_tensor,
                 std::optional<std::int64_t> padding_idx) {
  const CompositeScope composite("embedding");
  const xt::xarray<std::int64_t>& indices = detail::indices("embedding", index_tensor);
  if (weight.dim() != 2)
    throw ShapeError("embedding: weight must be 2-D (num_embeddings, embedding_dim), got " +
                     shape_str(weight.shape()));
  const std::size_t vocab = weight.size(0);
  std::vector<std::int64_t> flat(indices.begin(), indices.end());
  for (std::size_t i = 0; i < flat.size(); ++i)
    if (flat[i] < 0 || static_cast<std::size_t>(flat[i]) >= vocab)
      throw IndexError("embedding: index " + std::to_string(flat[i]) + " (position " +
                       std::to_string(i) + ") is out of range for a vocabulary of " +
                       count_str(vocab, "entries") + " (expected 0 <= index < " +
                       std::to_string(vocab) + ")");
  if (padding_idx && (*padding_idx < 0 || static_cast<std::size_t>(*padding_idx) >= vocab))
    throw IndexError("embedding: padding_idx " + std::to_string(*padding_idx) +
                     " is out of range for a vocabulary of " + count_str(vocab, "entries"));
  std::vector<std::ptrdiff_t> shape(indices.shape().begin(), indices.shape().end());
  shape.push_back(static_cast<std::ptrdiff_t>(weight.size(1)));
  Tensor rows = reshape(index_select(weight, 0, flat), shape);
  if (!padding_idx) return rows;
  // The padding rows keep their values but send no gradient: they come from a detached copy.
  shape.back() = 1;
  xt::xarray<bool> keep = detail::empty<bool>(Shape(shape.begin(), shape.end()));
  for (std::size_t i = 0; i < flat.size(); ++i) keep.data()[i] = flat[i] != *padding_idx;
  return where(Tensor(std::move(keep)), rows, rows.detach());
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value) {
  const CompositeScope composite("masked_fill");
  if (mask.dtype() != Dtype::bool_)
    throw DtypeError("masked_fill: the mask must be a bool tensor, got " +
                     std::string(dtype_name(mask.dtype())) + " (make one with a comparison, "
                     "x > 0, or to(kBool))");
  return where(mask, value, x);
}

Tensor tril(const Tensor& x, std::ptrdiff_t k) {
  const CompositeScope composite("tril");
  return where(triangle_mask(x, k, true, "tril"), x, 0.0);
}

Tensor triu(const Tensor& x, std::ptrdiff_t k) {
  const CompositeScope composite("triu");
  return where(triangle_mask(x, k, false, "triu"), x, 0.0);
}

Tensor one_hot(const Tensor& index_tensor, std::size_t num_classes, Dtype dtype) {
  if (num_classes == 0) throw ValueError("one_hot: num_classes must be positive");
  const xt::xarray<std::int64_t>& indices = detail::indices("one_hot", index_tensor);
  Shape shape(indices.shape().begin(), indices.shape().end());
  shape.push_back(num_classes);
  std::vector<double> values(detail::size_mul("one_hot", indices.size(), num_classes), 0.0);
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const std::int64_t c = indices.data()[i];
    if (c < 0 || static_cast<std::size_t>(c) >= num_classes)
      throw IndexError("one_hot: index " + std::to_string(c) + " is out of range for " +
                       count_str(num_classes, "classes"));
    values[i * num_classes + static_cast<std::size_t>(c)] = 1.0;
  }
  return from_vector(values, shape, {.dtype = dtype});
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::size_t>& sizes,
                          std::ptrdiff_t axis) {
  const std::size_t ax = detail::normalize_axis("split", axis, x.dim());
  std::size_t total = 0;
  for (std::size_t s : sizes) total = detail::size_add("split", total, s);
  if (total != x.size(ax))
    throw ShapeError("split: sizes adding up to " + std::to_string(total) + " for axis " +
                     std::to_string(ax) + " of length " + std::to_string(x.size(ax)) + " (input " +
                     shape_str(x.shape()) + ")");
  std::vector<Tensor> parts;
  std::ptrdiff_t at = 0;
  for (std::size_t s : sizes) {
    const auto next = at + static_cast<std::ptrdiff_t>(s);
    parts.push_back(slice(x, static_cast<std::ptrdiff_t>(ax), at, next));
    at = next;
  }
  return parts;
}

std::vector<Tensor> split(const Tensor& x, std::size_t size, std::ptrdiff_t axis) {
  const std::size_t ax = detail::normalize_axis("split", axis, x.dim());
  if (size == 0) throw ValueError("split: the size of a part must be positive");
  std::vector<std::size_t> sizes;
  for (std::size_t left = x.size(ax); left > 0; left -= std::min(left, size))
    sizes.push_back(std::min(left, size));
  return split(x, sizes, axis);
}

std::vector<Tensor> chunk(const Tensor& x, std::size_t chunks, std::ptrdiff_t axis) {
  const std::size_t ax = detail::normalize_axis("chunk", axis, x.dim());
  if (chunks == 0) throw ValueError("chunk: the number of chunks must be positive");
  const std::size_t n = x.size(ax);
  return split(x, std::max<std::size_t>(1, (n + chunks - 1) / chunks), axis);
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  const CompositeScope composite("scaled_dot_product_attention");
  const char* op = "scaled_dot_product_attention";
  const auto fail = [&](const std::string& why) {
    throw ShapeError(std::string(op) + ": " + why + " (query " + shape_str(q.shape()) + ", key " +
                     shape_str(k.shape()) + ", value " + shape_str(v.shape()) + ")");
  };
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim())
    fail("query, key and value need the same rank, at least 2");
  if (q.size(-1) != k.size(-1)) fail("query and key need the same last axis");
  if (k.size(-2) != v.size(-2)) fail("key and value need the same sequence length");
  if (!(options.dropout_p >= 0 && options.dropout_p < 1))
    throw ValueError(std::string(op) + ": dropout_p must be in [0, 1), got " +
                     number_str(options.dropout_p));
  const double scale = detail::attention_scale(op, options.scale, q.size(-1));
  // (..., T, D) @ (..., S, D)^T: when the leading axes agree, one batched product that reads k
  // transposed; otherwise matmul broadcasts them.
  Tensor scores;
  if (std::equal(q.shape().begin(), q.shape().end() - 2, k.shape().begin())) {
    const auto n = [](const Tensor& t, std::ptrdiff_t a) { return std::ptrdiff_t(t.size(a)); };
    const std::ptrdiff_t batch = detail::leading_count(q.shape(), 2);
    scores = mm(reshape(q, {batch, n(q, -2), n(q, -1)}), reshape(k, {batch, n(k, -2), n(k, -1)}),
                false, true);
    std::vector<std::ptrdiff_t> shape = detail::spec(q.shape());
    shape.back() = n(k, -2);
    scores = reshape(scores, shape);
  } else {
    scores = matmul(q, transpose(k));
  }
  scores = mul(scores, scale);
  const double minus_inf = -std::numeric_limits<double>::infinity();
  if (options.is_causal)  // position i attends to positions j <= i
    scores = masked_fill(scores, logical_not(triangle_mask(scores, 0, true, op)), minus_inf);
  if (options.mask.defined()) scores = masked_fill(scores, eq(options.mask, 0), minus_inf);
  Tensor weights = softmax(scores, -1);
  if (options.dropout_p > 0)
    weights = dropout(weights, options.dropout_p, true,
                      options.generator ? *options.generator : default_generator());
  return matmul(weights, v);
}

Tensor multinomial(const Tensor& probs, std::size_t num_samples, bool replacement,
                   Generator& gen) {
  const char* op = "multinomial";
  if (probs.dim() != 1 && probs.dim() != 2)
    throw ShapeError(std::string(op) + ": probabilities must be 1-D or 2-D, got " +
                     shape_str(probs.shape()));
  const std::size_t rows = probs.dim() == 2 ? probs.size(0) : 1, classes = probs.size(-1);
  if (!replacement && num_samples > classes)
    throw ValueError(std::string(op) + ": " + std::to_string(num_samples) +
                     " samples without replacement from " + count_str(classes, "categories"));
  const Tensor p = cast(probs.detach(), kFloat64);
  const double* pp = detail::values<double>(p).data();
  xt::xarray<std::int64_t> out = detail::empty<std::int64_t>(
      probs.dim() == 2 ? Shape{rows, num_samples} : Shape{num_samples});
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> w(classes);
  for (std::size_t r = 0; r < rows; ++r) {
    double total = 0;
    for (std::size_t c = 0; c < classes; ++c) {
      w[c] = pp[r * classes + c];
      if (!(w[c] >= 0) || std::isinf(w[c]))
        throw ValueError(std::string(op) + ": probability " + number_str(w[c]) + " (row " +
                         std::to_string(r) + ", category " + std::to_string(c) +
                         "); expected finite and non-negative");
      total += w[c];
    }
    for (std::size_t s = 0; s < num_samples; ++s) {
      if (!(total > 0))
        throw ValueError(std::string(op) + ": row " + std::to_string(r) +
                         " has no probability left to draw from");
      const double u = uniform(gen.engine()) * total;
      std::size_t c = 0;
      for (double acc = w[0]; acc <= u && c + 1 < classes;) acc += w[++c];
      while (w[c] == 0 && c > 0) --c;  // rounding at the end: back to the last drawable one
      out.data()[r * num_samples + s] = static_cast<std::int64_t>(c);
      if (!replacement) {
        total -= w[c];
        w[c] = 0;
      }
    }
  }
  return Tensor(std::move(out));
}

}  // namespace xgrad
