#pragma once
/// \file
/// Every differentiable op of xgrad. Each is either a primitive, with its node and derivative in
/// autograd/ops/NAME.cpp, or composed from primitives (autograd/ops/composite.cpp), and so needs
/// no derivative code. docs/ops.md lists the formulas. Binary elementwise ops broadcast as NumPy
/// does; an axis may be negative (counted from the end).
///
/// Every `Tensor name(...)` declared here must have a line in the gradient-check table of
/// tests/autograd/test_ops.cpp; the test fails otherwise.

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/autograd/indexing.hpp"
#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

// ---- elementwise arithmetic -------------------------------------------------------------------
// Operands of different dtypes are promoted (tensor.hpp's Dtype): an integer or bool with a
// float gives the float, bool arithmetic gives int64, float32 with float64 is a DtypeError.
// Integer results wrap around on overflow and are constants (never recorded). With a number
// (a Scalar) no tensor is made for it.
Tensor add(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, Scalar b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, Scalar b);
Tensor sub(Scalar a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, Scalar b);
/// True division: integer and bool operands give float32, as torch.div.
Tensor div(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, Scalar b);
Tensor div(Scalar a, const Tensor& b);
/// Division rounded "trunc" (toward zero) or "floor" (toward -inf), in the promoted dtype:
/// integers stay integers (division by zero: ValueError). Piecewise constant, so a constant:
/// not recorded (PyTorch's gradient of it is 0 everywhere).
Tensor div(const Tensor& a, const Tensor& b, const std::string& rounding_mode);
Tensor floor_divide(const Tensor& a, const Tensor& b);  ///< div(a, b, "floor")
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor pow(const Tensor& base, double exponent);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor erf(const Tensor& x);
/// 1 - erf(x), without its cancellation: relative digits kept for large x until it underflows.
Tensor erfc(const Tensor& x);
/// Gradient to a where a > b, to b where b > a, half to each on ties (as PyTorch); NaN propagates.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);  ///< likewise
/// Gradient 1 inside [min, max] (bounds included), 0 outside.
Tensor clamp(const Tensor& x, double min, double max);
/// a where condition is true (a bool tensor; another dtype counts non-zero as true), else b; a
/// and b promoted to one dtype, either may be a number. The condition gets no gradient.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& condition, const Tensor& a, Scalar b);
Tensor where(const Tensor& condition, Scalar a, const Tensor& b);
Tensor where(const Tensor& condition, Scalar a, Scalar b);  ///< int64, or float32 for a float
/// Converts to another dtype (to bool: non-zero is true; a float to an integer truncates toward
/// zero and saturates, NaN giving 0). Between floating dtypes the gradient is converted back; an
/// integer or bool result is a constant.
Tensor cast(const Tensor& x, Dtype dtype);

// ---- comparisons, logic and sign: constants, never requiring grad ----------------------------
/// Bool tensors: true where the relation holds (promoted operands, broadcasting; a number on
/// either side with the operators). NaN compares false, and unequal (ne) to everything.
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, Scalar b);
Tensor ge(const Tensor& a, Scalar b);
Tensor lt(const Tensor& a, Scalar b);
Tensor le(const Tensor& a, Scalar b);
Tensor eq(const Tensor& a, Scalar b);
Tensor ne(const Tensor& a, Scalar b);
/// Bool tensors of truth values: any dtype, non-zero is true.
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
/// Bitwise, on bool and integer tensors (promoted); DtypeError for floats. On bool tensors they
/// are the logical ones (~ is not).
Tensor bitwise_and(const Tensor& a, const Tensor& b);
Tensor bitwise_or(const Tensor& a, const Tensor& b);
Tensor bitwise_xor(const Tensor& a, const Tensor& b);
Tensor bitwise_not(const Tensor& x);
/// Whether any / every entry is non-zero (true for all() of an empty tensor): a bool scalar, or a
/// bool tensor without `axis` (kept with length 1 when keepdims).
Tensor any(const Tensor& x);
Tensor any(const Tensor& x, std::ptrdiff_t axis, bool keepdims = false);
Tensor all(const Tensor& x);
Tensor all(const Tensor& x, std::ptrdiff_t axis, bool keepdims = false);
/// How many entries are non-zero: an int64 scalar, or int64 per line along axis.
Tensor count_nonzero(const Tensor& x);
Tensor count_nonzero(const Tensor& x, std::ptrdiff_t axis);
/// The positions of the non-zero entries, (count, rank) int64 in row-major order (torch.nonzero).
Tensor nonzero(const Tensor& x);
Tensor sign(const Tensor& x);  ///< -1, 0 or 1

// ---- activations ------------------------------------------------------------------------------
Tensor relu(const Tensor& x);  ///< gradient 0 at x = 0
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor gelu(const Tensor& x);      ///< exact: x * Phi(x)
Tensor softplus(const Tensor& x);  ///< log(1 + exp(x)), stable for large |x|
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor silu(const Tensor& x);  ///< x * sigmoid(x)
Tensor mish(const Tensor& x);  ///< x * tanh(softplus(x))
/// As torch's prelu: x where x > 0, weight x elsewhere (0 included); weight holds one slope, or
/// one per channel (axis 1 of x).
Tensor prelu(const Tensor& x, const Tensor& weight);

// ---- linear algebra (BLAS) --------------------------------------------------------------------
/// As NumPy's matmul: 1-D operands are a row (left) or a column (right), dropped after; the axes
/// before the last two are batch axes and broadcast, (B, H, T, D) @ (B, H, D, S) or
/// (B, H, T, D) @ (D, S); each batch is one matrix product.
Tensor matmul(const Tensor& a, const Tensor& b);
/// op(a) @ op(b), op transposing the last two axes when asked, without copying: BLAS reads the
/// operand transposed. 2-D, or 3-D with equal batch sizes.
Tensor mm(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

/// x W^T + b, as torch.nn.functional.linear: x of shape (batch, in) or (in), or (..., in) taken as
/// rows; weight (out, in), bias (out) or undefined for none. One gemm onto the broadcast bias.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

/// The activation a fused linear or batch_norm applies to its output.
enum class Epilogue { none, relu, tanh, sigmoid };
/// "none", "relu", "tanh", "sigmoid"; and back (ValueError naming the choices).
const char* epilogue_name(Epilogue epilogue);
Epilogue epilogue_from_name(const std::string& name);
/// act(x W^T + b) as one op, asked for explicitly: one gemm onto the bias, then the activation in
/// place over the output while it is in cache. The pre-activation is never stored: the backward
/// works from the output (relu: [y > 0], tanh: 1 - y^2, sigmoid: y (1 - y)); under create_graph
/// it is written in differentiable ops. The same arithmetic as the activation op after linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Epilogue activation);

// ---- convolution and pooling (NCHW) --------------------------------------------------------------
/// A sliding window over the last two axes of (N, C, H, W): its size, step, zero padding on each
/// side and dilation, as (rows, columns).
struct Window2d {
  std::array<std::size_t, 2> kernel{1, 1};
  std::array<std::size_t, 2> stride{1, 1};
  std::array<std::size_t, 2> padding{0, 0};
  std::array<std::size_t, 2> dilation{1, 1};
};
/// im2col, as torch's F.unfold: (N, C, H, W) -> (N, C kh kw, L), one column per window position
/// (L of them, row-major), each the window's entries channel by channel (0 in the padding).
/// Its derivative is fold, and fold's is unfold.
Tensor unfold(const Tensor& x, const Window2d& window);
/// col2im, as torch's F.fold: the adjoint of unfold, summing the entries that overlap into an
/// (N, C, H, W) image of the given (H, W).
Tensor fold(const Tensor& cols, const std::array<std::size_t, 2>& output_size,
            const Window2d& window);

/// A size per spatial axis, as LibTorch's ExpandingArray: one number for every axis (3 is
/// (3, 3)) or one each ({3, 5}, or a std::array). ValueError for a negative number or a list of
/// another length.
template <std::size_t D>
class ExpandingArray {
 public:
  ExpandingArray(std::size_t value) { values_.fill(value); }   // NOLINT: implicit, as LibTorch's
  ExpandingArray(int value) { values_.fill(checked(value)); }  // NOLINT
  ExpandingArray(std::array<std::size_t, D> values) : values_(values) {}  // NOLINT
  ExpandingArray(std::initializer_list<std::size_t> values) {             // NOLINT
    if (values.size() != D)
      throw ValueError("expected " + std::to_string(D) +
                       " sizes (one per spatial axis) or one, got " +
                       std::to_string(values.size()));
    std::copy(values.begin(), values.end(), values_.begin());
  }
  operator const std::array<std::size_t, D>&() const { return values_; }  // NOLINT
  const std::array<std::size_t, D>& value() const { return values_; }
  std::size_t operator[](std::size_t i) const { return values_.at(i); }

 private:
  static std::size_t checked(int value) {
    if (value < 0) throw ValueError("a size must be >= 0, got " + std::to_string(value));
    return static_cast<std::size_t>(value);
  }
  std::array<std::size_t, D> values_{};
};

/// conv2d's options, as LibTorch's F::Conv2dFuncOptions: Conv2dFuncOptions().stride(2).padding(1),
/// each a number for both axes or one per axis.
class Conv2dFuncOptions {
 public:
  Conv2dFuncOptions& stride(ExpandingArray<2> v) { return set(stride_, v); }
  Conv2dFuncOptions& padding(ExpandingArray<2> v) { return set(padding_, v); }
  Conv2dFuncOptions& dilation(ExpandingArray<2> v) { return set(dilation_, v); }
  Conv2dFuncOptions& groups(std::size_t v) {
    groups_ = v;
    return *this;
  }
  const std::array<std::size_t, 2>& stride() const { return stride_; }
  const std::array<std::size_t, 2>& padding() const { return padding_; }
  const std::array<std::size_t, 2>& dilation() const { return dilation_; }
  std::size_t groups() const { return groups_; }

 private:
  Conv2dFuncOptions& set(std::array<std::size_t, 2>& field, const ExpandingArray<2>& v) {
    field = v.value();
    return *this;
  }
  std::array<std::size_t, 2> stride_{1, 1}, padding_{0, 0}, dilation_{1, 1};
  std::size_t groups_ = 1;
};
/// As torch's conv2d: x (N, C, H, W), weight (O, C / groups, kh, kw), bias (O) or undefined ->
/// (N, O, oh, ow), oh = (H + 2 ph - dh (kh - 1) - 1) / sh + 1. Written with unfold and matrix
/// products, so its gradients of every order come from theirs.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dFuncOptions& options = {});
/// conv_transpose2d's options, as LibTorch's F::ConvTranspose2dFuncOptions:
/// ConvTranspose2dFuncOptions().stride(2).padding(1).output_padding(1).
class ConvTranspose2dFuncOptions {
 public:
  ConvTranspose2dFuncOptions& stride(ExpandingArray<2> v) { return set(stride_, v); }
  ConvTranspose2dFuncOptions& padding(ExpandingArray<2> v) { return set(padding_, v); }
  ConvTranspose2dFuncOptions& output_padding(ExpandingArray<2> v) {
    return set(output_padding_, v);
  }
  ConvTranspose2dFuncOptions& dilation(ExpandingArray<2> v) { return set(dilation_, v); }
  ConvTranspose2dFuncOptions& groups(std::size_t v) {
    groups_ = v;
    return *this;
  }
  const std::array<std::size_t, 2>& stride() const { return stride_; }
  const std::array<std::size_t, 2>& padding() const { return padding_; }
  const std::array<std::size_t, 2>& output_padding() const { return output_padding_; }
  const std::array<std::size_t, 2>& dilation() const { return dilation_; }
  std::size_t groups() const { return groups_; }

 private:
  ConvTranspose2dFuncOptions& set(std::array<std::size_t, 2>& field, const ExpandingArray<2>& v) {
    field = v.value();
    return *this;
  }
  std::array<std::size_t, 2> stride_{1, 1}, padding_{0, 0}, output_padding_{0, 0}, dilation_{1, 1};
  std::size_t groups_ = 1;
};
/// As torch's conv_transpose2d, conv2d's adjoint with respect to its input: x (N, C, H, W),
/// weight (C, O / groups, kh, kw), bias (O) or undefined -> (N, O, oh, ow),
/// oh = (H - 1) sh - 2 ph + dh (kh - 1) + output_padding + 1. Written with matrix products and
/// fold, so its gradients of every order come from theirs.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const ConvTranspose2dFuncOptions& options = {});
/// conv1d's options, as LibTorch's F::Conv1dFuncOptions.
class Conv1dFuncOptions {
 public:
  Conv1dFuncOptions& stride(std::size_t v) { return set(stride_, v); }
  Conv1dFuncOptions& padding(std::size_t v) { return set(padding_, v); }
  Conv1dFuncOptions& dilation(std::size_t v) { return set(dilation_, v); }
  Conv1dFuncOptions& groups(std::size_t v) { return set(groups_, v); }
  std::size_t stride() const { return stride_; }
  std::size_t padding() const { return padding_; }
  std::size_t dilation() const { return dilation_; }
  std::size_t groups() const { return groups_; }

 private:
  Conv1dFuncOptions& set(std::size_t& field, std::size_t v) {
    field = v;
    return *this;
  }
  std::size_t stride_ = 1, padding_ = 0, dilation_ = 1, groups_ = 1;
};
/// As torch's conv1d: x (N, C, L), weight (O, C / groups, k), bias (O) or undefined ->
/// (N, O, out), the same machinery as conv2d over a height of 1.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv1dFuncOptions& options = {});
/// The largest entry of each window (padding counts as -inf), as torch's max_pool2d:
/// max_pool2d(x, 2), max_pool2d(x, {3, 2}, 1, 1); stride 0 (the default) means the kernel's.
/// The gradient goes to the first largest entry of each window in row-major order (a NaN counts
/// as the largest).
Tensor max_pool2d(const Tensor& x, ExpandingArray<2> kernel, ExpandingArray<2> stride = 0,
                  ExpandingArray<2> padding = 0);
/// The mean of each window, padding counted as zeros (PyTorch's count_include_pad default).
Tensor avg_pool2d(const Tensor& x, ExpandingArray<2> kernel, ExpandingArray<2> stride = 0,
                  ExpandingArray<2> padding = 0);
/// As torch's batch_norm, per channel (axis 1) over every other axis of x (N, C) or (N, C, ...):
/// in training, normalized with the batch's mean and biased variance, and running_mean and
/// running_var (when given) updated in place, r = (1 - momentum) r + momentum s, with the
/// unbiased variance; in evaluation, normalized with the running statistics. Then times weight
/// plus bias (each (C) or undefined). The statistics get no gradient.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training,
                  double momentum = 0.1, double eps = 1e-5);
/// batch_norm, then an activation (Epilogue: relu, tanh or sigmoid) as one op, asked for
/// explicitly (as linear's, and BatchNorm2d's epilogue): each row of the output activated while it
/// is in cache, and in the backward's two passes the gradient at the pre-activation made a row at
/// a time (relu's mask again from x). The same values and gradients as the activation op after
/// batch_norm, to the last bit; under create_graph written in differentiable ops.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, Epilogue activation);
/// max_pool2d, avg_pool2d and adaptive_avg_pool2d over one axis, as torch's max_pool1d,
/// avg_pool1d and adaptive_avg_pool1d: x (N, C, L) or (C, L); stride 0 means the kernel's.
Tensor max_pool1d(const Tensor& x, std::size_t kernel, std::size_t stride = 0,
                  std::size_t padding = 0);
Tensor avg_pool1d(const Tensor& x, std::size_t kernel, std::size_t stride = 0,
                  std::size_t padding = 0);
Tensor adaptive_avg_pool1d(const Tensor& x, std::size_t output_size);
/// interpolate's options, as LibTorch's F::InterpolateFuncOptions: a size or a scale factor per
/// spatial axis (one value for all), the mode, and align_corners for the linear modes.
enum class InterpolateMode { nearest, bilinear };
class InterpolateFuncOptions {
 public:
  InterpolateFuncOptions& size(std::vector<std::size_t> v) {
    size_ = std::move(v);
    return *this;
  }
  InterpolateFuncOptions& scale_factor(std::vector<double> v) {
    scale_factor_ = std::move(v);
    return *this;
  }
  InterpolateFuncOptions& mode(InterpolateMode v) {
    mode_ = v;
    return *this;
  }
  InterpolateFuncOptions& align_corners(bool v) {
    align_corners_ = v;
    return *this;
  }
  const std::vector<std::size_t>& size() const { return size_; }
  const std::vector<double>& scale_factor() const { return scale_factor_; }
  InterpolateMode mode() const { return mode_; }
  const std::optional<bool>& align_corners() const { return align_corners_; }

 private:
  std::vector<std::size_t> size_;
  std::vector<double> scale_factor_;
  InterpolateMode mode_ = InterpolateMode::nearest;
  std::optional<bool> align_corners_;
};
/// As torch's interpolate over images (N, C, H, W): nearest (output pixel i takes input
/// floor(i scale), scale = in / out, or 1 / scale_factor when given) or bilinear (the corners'
/// centres aligned with align_corners, else the pixels' edges, as PyTorch's). From index_select
/// and products, so gradients of every order come from theirs.
Tensor interpolate(const Tensor& x, const InterpolateFuncOptions& options);
/// As torch's group_norm: the channels (axis 1) of each sample of x (N, C, ...) in num_groups
/// groups of C / num_groups, each group normalized by its own mean and biased variance, then times
/// weight plus bias (each (C) or undefined). num_groups = C is instance norm.
Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// The mean of each of an output grid's cells, as torch's adaptive_avg_pool2d: cell (i, j) of
/// an (oh, ow) grid averages rows floor(i H / oh) to ceil((i + 1) H / oh) - 1, and columns
/// likewise. (1, 1) is global average pooling.
Tensor adaptive_avg_pool2d(const Tensor& x, ExpandingArray<2> output_size);
/// Constant padding of the trailing axes, as torch's F.pad: pads = {before, after} of the last
/// axis, then of the one before it, ... (an even count, at most two per axis).
Tensor pad(const Tensor& x, const std::vector<std::size_t>& pads, double value = 0.0);
/// Inverted dropout: in training, each entry is zeroed with probability p and the others scaled
/// by 1 / (1 - p), the mask drawn from `gen` (the same seed, the same mask); the identity
/// otherwise. p in [0, 1].
Tensor dropout(const Tensor& x, double p, bool training = true,
               Generator& gen = default_generator());

// ---- shape: views (tensor.hpp) -----------------------------------------------------------------
// These return views: tensors over their input's storage, nothing copied (O(1) whatever the
// size), each with its node, so gradients flow back. reshape copies only when no view can show
// the input so (a transposed tensor flattened), as PyTorch's. Any dtype.
/// One entry may be -1.
Tensor reshape(const Tensor& x, const std::vector<std::ptrdiff_t>& shape);
/// As reshape, but never a copy: ShapeError when the input's strides do not allow the shape.
Tensor view(const Tensor& x, const std::vector<std::ptrdiff_t>& shape);
Tensor flatten(const Tensor& x, std::ptrdiff_t start_axis = 0, std::ptrdiff_t end_axis = -1);
Tensor permute(const Tensor& x, const Axes& axes);
Tensor transpose(const Tensor& x, std::ptrdiff_t axis0 = -2, std::ptrdiff_t axis1 = -1);
Tensor squeeze(const Tensor& x);  ///< drops every axis of length 1
Tensor squeeze(const Tensor& x, std::ptrdiff_t axis);
Tensor unsqueeze(const Tensor& x, std::ptrdiff_t axis);
/// Axes of length 1 repeated to `sizes` (-1 keeps an axis; new leading axes may be added) with
/// stride 0: no copy. Its gradient is summed back.
Tensor expand(const Tensor& x, const std::vector<std::ptrdiff_t>& sizes);
/// length entries of axis from start (IndexError past its end).
Tensor narrow(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t start, std::size_t length);
/// The entries (i, i + offset) of axes axis1 and axis2, as the last axis.
Tensor diagonal(const Tensor& x, std::ptrdiff_t offset = 0, std::ptrdiff_t axis1 = 0,
                std::ptrdiff_t axis2 = 1);
/// Any layout over x's storage: sizes, strides and an offset in elements (x's own offset when
/// none), as torch.as_strided; ValueError past the storage's end.
Tensor as_strided(const Tensor& x, const Shape& size, const Shape& stride,
                  std::optional<std::size_t> storage_offset = std::nullopt);
/// The slices along axis, each without it (select of each).
std::vector<Tensor> unbind(const Tensor& x, std::ptrdiff_t axis = 0);
/// A copy with its own contiguous storage; the gradient flows back (torch's clone).
Tensor clone(const Tensor& x);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// Sums x down to `shape` (which x's shape broadcasts from): the inverse of broadcast_to.
Tensor sum_to(const Tensor& x, const Shape& shape);
/// Elements start, start + step, ... before stop along axis (negative start/stop count from the
/// end; both are clamped to the axis, as Python slices).
Tensor slice(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t start, std::ptrdiff_t stop,
             std::ptrdiff_t step = 1);
Tensor select(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t index);  ///< drops the axis
/// Any dtype. The positions as a vector, or as a 1-D int64 tensor (as torch.index_select).
Tensor index_select(const Tensor& x, std::ptrdiff_t axis, const std::vector<std::int64_t>& index);
Tensor index_select(const Tensor& x, std::ptrdiff_t axis, const Tensor& index);
/// x, with source's entries k added at position index[k] along axis (repeats add up).
Tensor index_add(const Tensor& x, std::ptrdiff_t axis, const std::vector<std::int64_t>& index,
                 const Tensor& source);
/// out[i][j] = x[i][index[i][j]] for axis 1 (likewise for any axis); index an int64 tensor of
/// x's rank. Any dtype.
Tensor gather(const Tensor& x, std::ptrdiff_t axis, const Tensor& index);
/// x, with source[i][j] added at x[i][index[i][j]] for axis 1 (the adjoint of gather).
Tensor scatter_add(const Tensor& x, std::ptrdiff_t axis, const Tensor& index, const Tensor& source);
Tensor concat(const std::vector<Tensor>& tensors, std::ptrdiff_t axis = 0);
Tensor stack(const std::vector<Tensor>& tensors, std::ptrdiff_t axis = 0);

// ---- reductions: over all axes, or over `axes` (keepdims keeps them with length 1) -----------
// sum, max, min, argmax and argmin take integer and bool tensors too (sum gives int64); mean,
// var and logsumexp need a floating one.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Axes& axes, bool keepdims = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Axes& axes, bool keepdims = false);
/// The gradient goes to the first position holding the maximum along each reduced axis (axes are
/// reduced one after the other, the last first), as torch.max(x, dim) picks its index.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const Axes& axes, bool keepdims = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, const Axes& axes, bool keepdims = false);
/// log(sum(exp(x))), shifted by the maximum so that it neither overflows nor underflows.
Tensor logsumexp(const Tensor& x);
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims = false);
/// Variance with Bessel's correction by default (divides by n - correction), as torch.var.
Tensor var(const Tensor& x, double correction = 1.0);
Tensor var(const Tensor& x, const Axes& axes, bool keepdims = false, double correction = 1.0);
/// The index of the first maximum along axis: an int64 tensor (a constant).
Tensor argmax(const Tensor& x, std::ptrdiff_t axis);
/// The index of the first minimum along axis: an int64 tensor (a constant).
Tensor argmin(const Tensor& x, std::ptrdiff_t axis);

// ---- order ------------------------------------------------------------------------------------
/// Values (differentiable: each gets the gradient of the entry it came from) and their positions
/// along the axis, as PyTorch's (values, indices) pairs.
struct ValuesIndices {
  Tensor values;
  Tensor indices;  ///< int64
};
/// Each line along axis in order, ascending unless descending. Stable: equal values keep their
/// order; NaN counts as the largest value, as in PyTorch.
ValuesIndices sort(const Tensor& x, std::ptrdiff_t axis = -1, bool descending = false);
/// The k largest (or smallest) of each line along axis, in sorted order, ties to the first.
ValuesIndices topk(const Tensor& x, std::size_t k, std::ptrdiff_t axis = -1, bool largest = true);
/// x with the order of each given axis reversed.
Tensor flip(const Tensor& x, const Axes& axes);

// ---- sequence models ---------------------------------------------------------------------------
/// Rows of weight (num_embeddings, dim) looked up: out[..., :] = weight[indices[...], :], of shape
/// indices' shape + (dim). The gradient is added back into the rows (repeats sum). The rows of
/// padding_idx, when given, get no gradient. indices: int64; one out of range: IndexError.
Tensor embedding(const Tensor& weight, const Tensor& indices,
                 std::optional<std::int64_t> padding_idx = std::nullopt);
/// Over the trailing axes given by normalized_shape, as torch's layer_norm: each row normalized
/// by its mean and biased variance, then times weight plus bias (each of normalized_shape, or
/// undefined). A fused primitive: one pass forward, one backward.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// value where the bool mask (broadcast to x) is true, x elsewhere; the filled entries get no
/// gradient. A mask of another dtype: DtypeError (as PyTorch's).
Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value);
/// The lower (upper) triangle of the last two axes: entries with column - row <= k (>= k) kept,
/// the others 0.
Tensor tril(const Tensor& x, std::ptrdiff_t k = 0);
Tensor triu(const Tensor& x, std::ptrdiff_t k = 0);
/// The running sum along axis; its gradient is the running sum of g from the end.
Tensor cumsum(const Tensor& x, std::ptrdiff_t axis);
/// indices' (int64) shape + (num_classes): 1 at each index, 0 elsewhere. A constant.
Tensor one_hot(const Tensor& indices, std::size_t num_classes, Dtype dtype = kFloat32);
/// Consecutive parts along axis of the given sizes (adding up to its length), or of `size` each
/// (the last one shorter); chunk: n parts of ceil(length / n) each, as torch's.
std::vector<Tensor> split(const Tensor& x, const std::vector<std::size_t>& sizes,
                          std::ptrdiff_t axis = 0);
std::vector<Tensor> split(const Tensor& x, std::size_t size, std::ptrdiff_t axis = 0);
std::vector<Tensor> chunk(const Tensor& x, std::size_t chunks, std::ptrdiff_t axis = 0);

struct AttentionOptions {
  /// Broadcast to (..., T, S): false (0) where a query must not see a key, true (non-zero) where
  /// it may: PyTorch's boolean masks (x > 0 gives one); undefined for none.
  Tensor mask{};
  bool is_causal = false;  ///< query i sees keys j <= i
  double dropout_p = 0.0;  ///< on the attention weights, drawn from generator (the default if null)
  Generator* generator = nullptr;
  /// Multiplies q k^T: any finite value (0 and negative ones too, as PyTorch); none: 1 / sqrt(D).
  /// NaN and inf are refused (ValueError).
  std::optional<double> scale{};
};
/// softmax(q k^T scale, masked entries -inf) v for q (..., T, D), k (..., S, D), v (..., S, Dv),
/// composed from batched products, masked_fill, softmax and dropout. A query whose keys are all
/// masked gets NaN, as in PyTorch.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});
/// Self-attention of H heads from a packed projection qkv (B, T, 3E) (queries in columns 0..E-1,
/// keys in E..2E-1, values in 2E..3E-1; head h takes columns h E/H .. (h+1) E/H - 1 of each), the
/// heads joined: (B, T, E). The same as scaled_dot_product_attention on the heads, fused: each
/// head's products read qkv in place and write the output in place. A mask in the options takes
/// the composite path instead.
Tensor multi_head_attention(const Tensor& qkv, std::size_t num_heads,
                            const AttentionOptions& options = {});
/// One GRU step's gates, fused, as PyTorch defines them: from the input's projection xp and the
/// state's hp (each (B, 3H), blocks r, z, n) and the state h (B, H),
/// r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z), n = tanh(xp_n + r hp_n), h' = (1 - z) n + z h.
Tensor gru_cell(const Tensor& xp, const Tensor& hp, const Tensor& h);
/// A GRU layer's recurrence over T steps as one op: from the input's projections xp (T, B, 3H)
/// (x_t W_ih^T + b_ih at every step), the initial state h0 (B, H), W_hh (3H, H) and b_hh (3H) or
/// undefined, the states of every step (T, B, H): h_t = gru_cell(xp_t, linear(h_{t-1}, W_hh,
/// b_hh), h_{t-1}). The same as that loop, with one node for all the steps: W_hh's gradient is
/// one product over them. The forward direction of unpacked batches in nn::GRU runs on it.
Tensor gru_sequence(const Tensor& xp, const Tensor& h0, const Tensor& weight_hh,
                    const Tensor& bias_hh = Tensor());
/// One LSTM step's gates, fused, as PyTorch defines them: from the input's projection xp and the
/// state's hp (each (B, 4H), blocks i, f, g, o) and the cell state c (B, H), a = xp + hp,
/// i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c' = f c + i g, h' = o tanh(c'). Returns
/// (2, B, H): select(out, 0, 0) is h', select(out, 0, 1) is c'.
Tensor lstm_cell(const Tensor& xp, const Tensor& hp, const Tensor& c);
/// An LSTM layer's recurrence over T steps as one op: from the input's projections xp (T, B, 4H),
/// the initial states h0 and c0 (B, H), W_hh (4H, H) and b_hh (4H) or undefined, (2, T, B, H):
/// every h_t, then every c_t, of (h_t, c_t) = lstm_cell(xp_t, linear(h_{t-1}, W_hh, b_hh),
/// c_{t-1}). The same as that loop, with one node for all the steps, as gru_sequence. The forward
/// direction of unpacked batches in nn::LSTM runs on it.
Tensor lstm_sequence(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& weight_hh,
                     const Tensor& bias_hh = Tensor());
/// num_samples category indices per row of probs (C) or (B, C) (non-negative weights, not
/// necessarily normalized), drawn from gen; without replacement, a category at most once. int64.
Tensor multinomial(const Tensor& probs, std::size_t num_samples, bool replacement = false,
                  Generator& gen = default_generator());

// ---- softmax ----------------------------------------------------------------------------------
/// Stable for large logits and for -inf entries (a row that is all -inf gives NaN, as in PyTorch).
Tensor softmax(const Tensor& x, std::ptrdiff_t axis = -1);
Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis = -1);

// ---- losses -----------------------------------------------------------------------------------
/// How a loss reduces its per-sample values: their mean, their sum, or none (one per sample).
enum class Reduction { mean, sum, none };

struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  /// The target puts 1 - s on the label and s / C on every class (s = 0: the plain one-hot).
  double label_smoothing = 0.0;
  /// Per-class weights (shape (C), the logits' dtype), or undefined for none. As in PyTorch, the
  /// mean divides by the sum of the weights of the samples' labels.
  Tensor weight{};
  /// Samples with this label count for nothing: loss 0, no gradient, not in the mean's divisor
  /// (PyTorch's default -100). For padded positions of sequences of different lengths.
  std::int64_t ignore_index = -100;
};

/// Cross-entropy of softmax(logits) against class labels, fused (torch's cross_entropy): one pass
/// computes a stable log-sum-exp per row, and the gradient of the mean over a batch of B is exactly
/// (softmax(logits) - onehot(labels)) / B. logits: (B, C), rows are samples; labels: B class
/// indices in [0, C) (int64). loss_i = -sum_c w_c q_ic log softmax(logits_i)_c, reduced over the
/// batch.
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels,
                             const CrossEntropyOptions& options = {});

// ---- operators, with a number on either side (no tensor is made for it) -----------------------
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, Scalar b);
Tensor operator-(const Tensor& a, Scalar b);
Tensor operator*(const Tensor& a, Scalar b);
Tensor operator/(const Tensor& a, Scalar b);
Tensor operator+(Scalar a, const Tensor& b);
Tensor operator-(Scalar a, const Tensor& b);
Tensor operator*(Scalar a, const Tensor& b);
Tensor operator/(Scalar a, const Tensor& b);
/// Comparisons give bool tensors: x > 0, 0 < x, a == b.
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, Scalar b);
Tensor operator>=(const Tensor& a, Scalar b);
Tensor operator<(const Tensor& a, Scalar b);
Tensor operator<=(const Tensor& a, Scalar b);
Tensor operator==(const Tensor& a, Scalar b);
Tensor operator!=(const Tensor& a, Scalar b);
Tensor operator>(Scalar a, const Tensor& b);
Tensor operator>=(Scalar a, const Tensor& b);
Tensor operator<(Scalar a, const Tensor& b);
Tensor operator<=(Scalar a, const Tensor& b);
Tensor operator==(Scalar a, const Tensor& b);
Tensor operator!=(Scalar a, const Tensor& b);
/// Bitwise on bool and integer tensors: mask & (x > 0), ~mask.
Tensor operator&(const Tensor& a, const Tensor& b);
Tensor operator|(const Tensor& a, const Tensor& b);
Tensor operator^(const Tensor& a, const Tensor& b);
Tensor operator~(const Tensor& x);

// ---- compound assignment ----------------------------------------------------------------------
/// `a += b` is `a.add_(b)`, in place as in LibTorch (tensor.hpp): every handle and view of a's
/// storage sees the new values; while gradients are recorded, a's history is rebased onto the op.
/// Under NoGradGuard a leaf stays the same leaf, so a module's parameter stays the module's:
/// `p -= lr * p.grad()` is a hand-written SGD step. The result must keep a's shape and dtype.
Tensor& operator+=(Tensor& a, const Tensor& b);
Tensor& operator-=(Tensor& a, const Tensor& b);
Tensor& operator*=(Tensor& a, const Tensor& b);
Tensor& operator/=(Tensor& a, const Tensor& b);
Tensor& operator+=(Tensor& a, Scalar b);
Tensor& operator-=(Tensor& a, Scalar b);
Tensor& operator*=(Tensor& a, Scalar b);
Tensor& operator/=(Tensor& a, Scalar b);

}  // namespace xgrad
