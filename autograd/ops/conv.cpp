// Convolution and pooling: composites of unfold (im2col) and matrix products, so that their
// gradients of every order come from the primitives' (unfold's derivative is fold, fold's is
// unfold). pad and dropout are composites too.
//
// conv2d: cols = unfold(x) (N, C kh kw, L); per group, out = W_g (O/G, C/G kh kw) @ cols_g; the
// batch is folded into the columns so that each group is one product.
// NOTE: the whole batch's columns are built at once; a tiled im2col (and a measured choice
// against oneDNN's convolution) is the next step of issue 11.
#include <cmath>
#include <limits>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {
Window2d pool_window(const std::array<std::size_t, 2>& kernel, std::array<std::size_t, 2> stride,
                     const std::array<std::size_t, 2>& padding) {
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  return {kernel, stride, padding, {1, 1}};
}

void check_pool(const char* op, const Tensor& x, const Window2d& w) {
  if (x.dim() != 4)
    throw ShapeError(std::string(op) + ": needs a 4-D input (N, C, H, W), got " +
                     shape_str(x.shape()));
  if (2 * w.padding[0] > w.kernel[0] || 2 * w.padding[1] > w.kernel[1])
    throw ValueError(std::string(op) + ": padding " + shape_str(w.padding) +
                     " must be at most half the kernel " + shape_str(w.kernel) + ", as in PyTorch");
}

// The windows of x as (N, C, kh kw, oh, ow) (no dilation: the pools').
Tensor windows(const Tensor& x, const Window2d& w) {
  const Tensor cols = unfold(x, w);  // (N, C kh kw, L)
  const std::size_t kh = w.kernel[0], kw = w.kernel[1];
  const std::size_t oh = (x.size(2) + 2 * w.padding[0] - kh) / w.stride[0] + 1;
  const auto d = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
  return reshape(cols, {d(x.size(0)), d(x.size(1)), d(kh * kw), d(oh), d(cols.size(2) / oh)});
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  const CompositeScope composite("conv2d");
  const char* op = "conv2d";
  detail::check_same_dtype(op, x, weight);
  if (bias.defined()) detail::check_same_dtype(op, x, bias);
  if (x.dim() != 4 || weight.dim() != 4)
    throw ShapeError(std::string(op) +
                     ": needs input (N, C, H, W) and weight (O, C / groups, kh, "
                     "kw), got input " +
                     shape_str(x.shape()) + " and weight " + shape_str(weight.shape()));
  const std::size_t G = o.groups, C = x.size(1), O = weight.size(0);
  if (G == 0 || C % G != 0 || O % G != 0)
    throw ValueError(std::string(op) + ": groups " + std::to_string(G) +
                     " must divide the input channels " + std::to_string(C) +
                     " and the output channels " + std::to_string(O));
  if (weight.size(1) * G != C)
    throw ShapeError(std::string(op) + ": weight " + shape_str(weight.shape()) + " expects " +
                     std::to_string(weight.size(1) * G) + " input channels (groups " +
                     std::to_string(G) + "), the input " + shape_str(x.shape()) + " has " +
                     std::to_string(C));
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != O))
    throw ShapeError(std::string(op) + ": bias " + shape_str(bias.shape()) + " for " +
                     std::to_string(O) + " output channels; expected [" + std::to_string(O) + "]");
  const std::size_t kh = weight.size(2), kw = weight.size(3);
  const Window2d win{{kh, kw}, o.stride, o.padding, o.dilation};
  const Tensor cols = unfold(x, win);  // (N, C kh kw, L); checks stride, dilation, sizes
  const std::size_t N = x.size(0), L = cols.size(2), K = C / G * kh * kw;
  const std::size_t oh =
      (x.size(2) + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  const std::size_t ow = L / oh;
  const auto d = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
  // (N, G, K, L) -> (G, K, N L): each group's columns side by side for the whole batch.
  const Tensor grouped = reshape(permute(reshape(cols, {d(N), d(G), d(K), d(L)}), {1, 2, 0, 3}),
                                 {d(G), d(K), d(N * L)});
  const Tensor w = reshape(weight, {d(G), d(O / G), d(K)});
  const Tensor y = mm(w, grouped);  // (G, O/G, N L)
  Tensor out = permute(reshape(y, {d(O), d(N), d(oh), d(ow)}), {1, 0, 2, 3});
  if (bias.defined()) out = add(out, reshape(bias, {1, d(O), 1, 1}));
  return out;
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv1dOptions& o) {
  const CompositeScope composite("conv1d");
  if (x.dim() != 3 || weight.dim() != 3)
    throw ShapeError("conv1d: needs input (N, C, L) and weight (O, C / groups, k), got input " +
                     shape_str(x.shape()) + " and weight " + shape_str(weight.shape()));
  const Tensor y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias,
                          {.stride = {1, o.stride},
                           .padding = {0, o.padding},
                           .dilation = {1, o.dilation},
                           .groups = o.groups});
  return squeeze(y, 2);
}

Tensor max_pool2d(const Tensor& x, std::array<std::size_t, 2> kernel,
                  std::array<std::size_t, 2> stride, std::array<std::size_t, 2> padding) {
  const CompositeScope composite("max_pool2d");
  const Window2d w = pool_window(kernel, stride, padding);
  check_pool("max_pool2d", x, w);
  // Padding is -inf, never the maximum: pad first, then windows without padding.
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor padded =
      padding[0] || padding[1] ? pad(x, {padding[1], padding[1], padding[0], padding[0]}, -inf) : x;
  return max(windows(padded, {w.kernel, w.stride, {0, 0}, {1, 1}}), {2});
}

Tensor avg_pool2d(const Tensor& x, std::array<std::size_t, 2> kernel,
                  std::array<std::size_t, 2> stride, std::array<std::size_t, 2> padding) {
  const CompositeScope composite("avg_pool2d");
  const Window2d w = pool_window(kernel, stride, padding);
  check_pool("avg_pool2d", x, w);
  return mean(windows(x, w), {2});  // zeros of the padding counted, as PyTorch's default
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<std::size_t, 2> output_size) {
  const CompositeScope composite("adaptive_avg_pool2d");
  if (x.dim() != 4)
    throw ShapeError("adaptive_avg_pool2d: needs a 4-D input (N, C, H, W), got " +
                     shape_str(x.shape()));
  const std::size_t H = x.size(2), W = x.size(3), oh = output_size[0], ow = output_size[1];
  if (oh == 0 || ow == 0 || H == 0 || W == 0)
    throw ValueError("adaptive_avg_pool2d: output size " + shape_str(output_size) + " and input " +
                     shape_str(x.shape()) + " must have no empty axis");
  if (H % oh == 0 && W % ow == 0)  // equal cells: one pooling
    return avg_pool2d(x, {H / oh, W / ow});
  // Cells of unequal sizes: each one's mean, then the grid put together.
  std::vector<Tensor> rows;
  for (std::size_t i = 0; i < oh; ++i) {
    const auto r0 = static_cast<std::ptrdiff_t>(i * H / oh);
    const auto r1 = static_cast<std::ptrdiff_t>(((i + 1) * H + oh - 1) / oh);
    std::vector<Tensor> cells;
    for (std::size_t j = 0; j < ow; ++j) {
      const auto c0 = static_cast<std::ptrdiff_t>(j * W / ow);
      const auto c1 = static_cast<std::ptrdiff_t>(((j + 1) * W + ow - 1) / ow);
      cells.push_back(mean(slice(slice(x, 2, r0, r1), 3, c0, c1), {2, 3}, true));
    }
    rows.push_back(concat(cells, 3));
  }
  return concat(rows, 2);
}

Tensor pad(const Tensor& x, const std::vector<std::size_t>& pads, double value) {
  const CompositeScope composite("pad");
  if (pads.size() % 2 != 0 || pads.size() / 2 > x.dim())
    throw ValueError("pad: " + std::to_string(pads.size()) + " pads for a tensor of shape " +
                     shape_str(x.shape()) +
                     "; expected two per axis (before, after), last axis first, at most " +
                     std::to_string(2 * x.dim()));
  Tensor out = x;
  for (std::size_t k = 0; k < pads.size() / 2; ++k) {
    const std::size_t axis = x.dim() - 1 - k, before = pads[2 * k], after = pads[2 * k + 1];
    const auto block = [&](std::size_t length) {
      Shape shape = out.shape();
      shape[axis] = length;
      return full(shape, value, {.dtype = x.dtype()});
    };
    std::vector<Tensor> parts;
    if (before) parts.push_back(block(before));
    parts.push_back(out);
    if (after) parts.push_back(block(after));
    if (parts.size() > 1) out = concat(parts, static_cast<std::ptrdiff_t>(axis));
  }
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  const CompositeScope composite("dropout");
  if (!(p >= 0 && p <= 1)) throw ValueError("dropout: p must be in [0, 1], got " + number_str(p));
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, 0.0);
  // The mask: 1 / (1 - p) where a uniform draw is >= p, else 0. A constant: it gets no gradient.
  const Tensor u = rand(x.shape(), {.dtype = x.dtype()}, gen);
  const double keep = 1 / (1 - p);
  const Tensor mask = detail::map(u, [p, keep](auto v) {
    using T = decltype(v);
    return v >= T(p) ? T(keep) : T{0};
  });
  return mul(x, mask);
}

}  // namespace xgrad
