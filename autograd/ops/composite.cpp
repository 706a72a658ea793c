// Composite ops: built from the primitives, so their gradients (and gradients of gradients) come
// from the primitives' backward functions and need no code here.
#include <cmath>
#include <limits>
#include <numbers>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {

using detail::scalar_like;

namespace {
Axes all_axes(const Tensor& x) {
  Axes axes(x.dim());
  for (std::size_t d = 0; d < x.dim(); ++d) axes[d] = static_cast<std::ptrdiff_t>(d);
  return axes;
}
}  // namespace

// ---- elementwise ------------------------------------------------------------------------------

Tensor pow(const Tensor& base, double exponent) { return pow(base, scalar_like(base, exponent)); }

Tensor clamp(const Tensor& x, double min, double max) {
  const CompositeScope composite("clamp");
  if (!(min <= max))
    throw ValueError("clamp: needs min <= max, got min=" + std::to_string(min) +
                     " max=" + std::to_string(max));
  const Tensor inside = logical_and(ge(x, min), le(x, max));
  const Tensor bounded = detail::map(x, [min, max](auto v) {
    using T = decltype(v);
    return v < T(min) ? T(min) : (v > T(max) ? T(max) : v);
  });
  return where(inside, x, bounded);
}

// ---- activations ------------------------------------------------------------------------------

Tensor elu(const Tensor& x, double alpha) {
  const CompositeScope composite("elu");
  // exp of x where x <= 0 and of 0 elsewhere: the branch not taken must stay finite, or its zero
  // gradient times inf is NaN. At x = 0 both derivatives come from the negative branch (alpha), as
  // PyTorch's (x <= 0); a NaN takes the negative branch and stays NaN.
  const Tensor positive = x > 0.0;
  const Tensor negative = mul(add(exp(where(positive, 0.0, x)), -1.0), alpha);
  return where(positive, x, negative);
}

Tensor silu(const Tensor& x) {
  const CompositeScope composite("silu");
  return mul(x, sigmoid(x));
}

Tensor mish(const Tensor& x) {
  const CompositeScope composite("mish");
  return mul(x, tanh(softplus(x)));
}

Tensor prelu(const Tensor& x, const Tensor& weight) {
  const CompositeScope composite("prelu");
  const std::size_t channels = x.dim() >= 2 ? x.size(1) : 1;
  if (!weight.defined() || weight.dim() > 1 || (weight.numel() != 1 && weight.numel() != channels))
    throw ShapeError("prelu: needs one slope or one per channel (" + std::to_string(channels) +
                     " for input " + shape_str(x.shape()) + "), got weight " +
                     (weight.defined() ? shape_str(weight.shape()) : std::string("undefined")));
  Tensor slope = weight;
  if (weight.numel() > 1) {  // along axis 1
    std::vector<std::ptrdiff_t> shape(x.dim(), 1);
    shape[1] = static_cast<std::ptrdiff_t>(channels);
    slope = reshape(weight, shape);
  } else {
    slope = reshape(weight, {});
  }
  return where(x > 0.0, x, mul(x, slope));
}

// ---- linear algebra ---------------------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b) {
  const std::size_t ra = a.dim(), rb = b.dim();
  const auto n = [](const Tensor& t, std::ptrdiff_t axis) {
    return static_cast<std::ptrdiff_t>(t.size(axis));
  };
  if (ra == 0 || rb == 0)
    throw ShapeError("matmul: needs operands of at least 1 axis, got shapes " +
                     shape_str(a.shape()) + " and " + shape_str(b.shape()));
  if (ra == 1 && rb == 1) return reshape(mm(reshape(a, {1, -1}), reshape(b, {-1, 1})), {});
  if (ra == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);  // a row, dropped after
  if (rb == 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);  // a column, likewise
  if (ra == 2 && rb == 2) return mm(a, b);
  if (a.size(-1) != b.size(-2))
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " do not chain (" + std::to_string(a.size(-1)) + " columns against " +
                     std::to_string(b.size(-2)) + " rows)");
  if (rb == 2) {  // a batch of rows times one matrix: one gemm
    std::vector<std::ptrdiff_t> shape = detail::spec(a.shape());
    shape.back() = n(b, 1);
    return reshape(mm(reshape(a, {detail::leading_count(a.shape(), 1), n(a, -1)}), b), shape);
  }
  // Leading (batch) axes broadcast as NumPy's; then one batched product over them.
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  const Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = detail::broadcast_shapes("matmul", batch_a, batch_b);
  const auto batched = [&](const Tensor& t) {
    Shape full = batch;
    full.push_back(t.size(-2));
    full.push_back(t.size(-1));
    const Tensor wide = t.shape() == full ? t : broadcast_to(t, full);
    return reshape(wide, {detail::leading_count(wide.shape(), 2), n(t, -2), n(t, -1)});
  };
  std::vector<std::ptrdiff_t> shape = detail::spec(batch);
  shape.push_back(n(a, -2));
  shape.push_back(n(b, -1));
  return reshape(mm(batched(a), batched(b)), shape);
}

// ---- shape ------------------------------------------------------------------------------------

Tensor flatten(const Tensor& x, std::ptrdiff_t start_axis, std::ptrdiff_t end_axis) {
  if (x.dim() == 0) return reshape(x, {1});
  const std::size_t s = detail::normalize_axis("flatten", start_axis, x.dim());
  const std::size_t e = detail::normalize_axis("flatten", end_axis, x.dim());
  if (s > e)
    throw IndexError("flatten: start axis " + std::to_string(s) + " is after end axis " +
                     std::to_string(e));
  std::vector<std::ptrdiff_t> shape;
  for (std::size_t d = 0; d < x.dim(); ++d) {
    if (d <= s || d > e) shape.push_back(static_cast<std::ptrdiff_t>(x.size(d)));
    if (d > s && d <= e) shape.back() *= static_cast<std::ptrdiff_t>(x.size(d));
  }
  return reshape(x, shape);
}

Tensor transpose(const Tensor& x, std::ptrdiff_t axis0, std::ptrdiff_t axis1) {
  const std::size_t a = detail::normalize_axis("transpose", axis0, x.dim());
  const std::size_t b = detail::normalize_axis("transpose", axis1, x.dim());
  Axes axes = all_axes(x);
  std::swap(axes[a], axes[b]);
  return permute(x, axes);
}

Tensor squeeze(const Tensor& x) {
  Shape shape;
  for (std::size_t d : x.shape())
    if (d != 1) shape.push_back(d);
  return reshape(x, detail::spec(shape));
}

Tensor squeeze(const Tensor& x, std::ptrdiff_t axis) {
  const std::size_t a = detail::normalize_axis("squeeze", axis, x.dim());
  if (x.size(a) != 1) return x;  // as in PyTorch: an axis longer than 1 stays
  Shape shape = x.shape();
  shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(a));
  return reshape(x, detail::spec(shape));
}

Tensor unsqueeze(const Tensor& x, std::ptrdiff_t axis) {
  const std::size_t a = detail::normalize_axis("unsqueeze", axis, x.dim() + 1);
  // On the spec (a std::vector): xtensor's svector::insert draws a false -Warray-bounds.
  std::vector<std::ptrdiff_t> shape = detail::spec(x.shape());
  shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(a), 1);
  return reshape(x, shape);
}

Tensor select(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t index) {
  const std::size_t a = detail::normalize_axis("select", axis, x.dim());
  const auto length = static_cast<std::ptrdiff_t>(x.size(a));
  if (index < -length || index >= length)
    throw IndexError("select: index " + std::to_string(index) + " is out of range for axis " +
                     std::to_string(a) + " of length " + std::to_string(length));
  const std::ptrdiff_t i = index < 0 ? index + length : index;
  return squeeze(slice(x, static_cast<std::ptrdiff_t>(a), i, i + 1),
                 static_cast<std::ptrdiff_t>(a));
}

Tensor stack(const std::vector<Tensor>& tensors, std::ptrdiff_t axis) {
  if (tensors.empty()) throw ValueError("stack: needs at least one tensor");
  const std::size_t a = detail::normalize_axis("stack", axis, tensors[0].dim() + 1);
  std::vector<Tensor> parts;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].shape() != tensors[0].shape())
      throw ShapeError("stack: tensor " + std::to_string(i) + " has shape " +
                       shape_str(tensors[i].shape()) + ", tensor 0 has " +
                       shape_str(tensors[0].shape()) + "; all must have the same shape");
    parts.push_back(unsqueeze(tensors[i], static_cast<std::ptrdiff_t>(a)));
  }
  return concat(parts, static_cast<std::ptrdiff_t>(a));
}

// ---- reductions -------------------------------------------------------------------------------

Tensor sum(const Tensor& x) { return sum_to(x, {}); }

Tensor sum(const Tensor& x, const Axes& axes, bool keepdims) {
  const std::vector<std::size_t> reduced = detail::normalize_axes("sum", axes, x.dim());
  const Tensor kept = sum_to(x, detail::reduced_shape(x.shape(), reduced, true));
  if (keepdims) return kept;
  return reshape(kept, detail::spec(detail::reduced_shape(x.shape(), reduced, false)));
}

namespace {
// Number of elements that each result of a reduction over `axes` summarizes.
double reduced_count(const Tensor& x, const Axes& axes) {
  double n = 1;
  for (std::size_t a : detail::normalize_axes("mean", axes, x.dim()))
    n *= static_cast<double>(x.size(a));
  return n;
}
}  // namespace

Tensor mean(const Tensor& x) {
  const CompositeScope composite("mean");
  detail::check_floating("mean", x);
  detail::check_not_empty("mean", x);
  return div(sum(x), scalar_like(x, static_cast<double>(x.numel())));
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  const CompositeScope composite("mean");
  detail::check_floating("mean", x);
  detail::check_reduced_not_empty("mean", x, detail::normalize_axes("mean", axes, x.dim()));
  return div(sum(x, axes, keepdims), scalar_like(x, reduced_count(x, axes)));
}

Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const CompositeScope composite("group_norm");
  if (x.dim() < 2 || num_groups == 0 || x.size(1) % num_groups != 0 || x.numel() == 0)
    throw ShapeError("group_norm: needs x (N, C, ...) with C divisible by num_groups, got " +
                     shape_str(x.shape()) + " and " + std::to_string(num_groups) + " groups");
  const std::size_t channels = x.size(1);
  for (const Tensor* t : {&weight, &bias})
    if (t->defined() && t->shape() != Shape{channels})
      throw ShapeError("group_norm: weight and bias must have shape [" + std::to_string(channels) +
                       "], got " + shape_str(t->shape()));
  // Each (sample, group) is one row of layer norm's.
  const auto groups = static_cast<std::ptrdiff_t>(num_groups);
  const Tensor rows = reshape(x, {static_cast<std::ptrdiff_t>(x.size(0)), groups, -1});
  Tensor y = reshape(layer_norm(rows, {rows.size(2)}, Tensor(), Tensor(), eps),
                     std::vector<std::ptrdiff_t>(x.shape().begin(), x.shape().end()));
  std::vector<std::ptrdiff_t> per_channel(x.dim(), 1);
  per_channel[1] = static_cast<std::ptrdiff_t>(channels);
  if (weight.defined()) y = mul(y, reshape(weight, per_channel));
  if (bias.defined()) y = add(y, reshape(bias, per_channel));
  return y;
}

Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims) {
  const CompositeScope composite("logsumexp");
  detail::check_reduced_not_empty("logsumexp", x,
                                  detail::normalize_axes("logsumexp", axes, x.dim()));
  // The shift m is a constant: the result does not depend on it, so neither does its gradient.
  // An infinite maximum (a line of -inf) is replaced by 0 so that x - m stays defined.
  Tensor m;
  {
    NoGradGuard no_grad;
    m = detail::map(max(x, axes, true),
                    [](auto v) { return std::isfinite(v) ? v : decltype(v){0}; });
  }
  const Tensor kept = add(log(sum(exp(sub(x, m)), axes, true)), m);
  if (keepdims) return kept;
  const std::vector<std::size_t> reduced = detail::normalize_axes("logsumexp", axes, x.dim());
  return reshape(kept, detail::spec(detail::reduced_shape(x.shape(), reduced, false)));
}

Tensor logsumexp(const Tensor& x) { return logsumexp(x, all_axes(x)); }
Tensor var(const Tensor& x, double correction) { return var(x, all_axes(x), false, correction); }

Tensor var(const Tensor& x, const Axes& axes, bool keepdims, double correction) {
  const CompositeScope composite("var");
  const double n = reduced_count(x, axes);
  if (n - correction <= 0)
    throw ValueError("var: " + std::to_string(static_cast<std::size_t>(n)) +
                     " elements per result, not more than the correction " +
                     std::to_string(correction));
  const Tensor centered = sub(x, mean(x, axes, true));
  return div(sum(mul(centered, centered), axes, keepdims), scalar_like(x, n - correction));
}

// ---- operators --------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }  // true division
Tensor operator+(Scalar a, const Tensor& b) { return add(b, a); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(a, b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator/(Scalar a, const Tensor& b) { return div(a, b); }


}  // namespace xgrad
