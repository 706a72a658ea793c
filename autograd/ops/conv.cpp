// Composites over the convolution primitives: conv1d (conv2d over a height of 1) and the average
// pools (windows from unfold, then their mean), so that their gradients of every order come from
// the primitives' (unfold's derivative is fold, fold's is unfold). pad and dropout are composites
// too. conv2d and max_pool2d are primitives (conv2d.cpp, max_pool2d.cpp).
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace detail {
Window2d pool_window(const char* op, const Tensor& x, const std::array<std::size_t, 2>& kernel,
                     std::array<std::size_t, 2> stride, const std::array<std::size_t, 2>& padding) {
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  if (x.dim() != 4)
    throw ShapeError(std::string(op) + ": needs a 4-D input (N, C, H, W), got " +
                     shape_str(x.shape()));
  if (size_mul(op, 2, padding[0]) > kernel[0] || size_mul(op, 2, padding[1]) > kernel[1])
    throw ValueError(std::string(op) + ": padding " + shape_str(padding) +
                     " must be at most half the kernel " + shape_str(kernel) + ", as in PyTorch");
  return {kernel, stride, padding, {1, 1}};
}
}  // namespace detail

namespace {
// The windows of x as (N, C, kh kw, oh, ow) (no dilation: the pools').
Tensor windows(const Tensor& x, const Window2d& w) {
  const Tensor cols = unfold(x, w);  // (N, C kh kw, L)
  const std::size_t kh = w.kernel[0], kw = w.kernel[1];
  const std::size_t oh = (x.size(2) + 2 * w.padding[0] - kh) / w.stride[0] + 1;
  const auto d = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
  return reshape(cols, {d(x.size(0)), d(x.size(1)), d(kh * kw), d(oh), d(cols.size(2) / oh)});
}
}  // namespace

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv1dFuncOptions& o) {
  const CompositeScope composite("conv1d");
  if (x.dim() != 3 || weight.dim() != 3)
    throw ShapeError("conv1d: needs input (N, C, L) and weight (O, C / groups, k), got input " +
                     shape_str(x.shape()) + " and weight " + shape_str(weight.shape()));
  const Tensor y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias,
                          Conv2dFuncOptions()
                              .stride({1, o.stride()})
                              .padding({0, o.padding()})
                              .dilation({1, o.dilation()})
                              .groups(o.groups()));
  return squeeze(y, 2);
}

Tensor avg_pool2d(const Tensor& x, ExpandingArray<2> kernel, ExpandingArray<2> stride,
                  ExpandingArray<2> padding) {
  const CompositeScope composite("avg_pool2d");
  const Window2d w = detail::pool_window("avg_pool2d", x, kernel, stride, padding);
  return mean(windows(x, w), {2});  // zeros of the padding counted, as PyTorch's default
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const ConvTranspose2dFuncOptions& o) {
  const CompositeScope composite("conv_transpose2d");
  const char* op = "conv_transpose2d";
  const std::size_t groups = o.groups();
  if (x.dim() != 4 || weight.dim() != 4 || groups == 0 || x.size(1) != weight.size(0) ||
      weight.size(0) % groups != 0)
    throw ShapeError(std::string(op) +
                     ": needs x (N, C, H, W) and weight (C, O / groups, kh, kw) "
                     "with C divisible by groups (" +
                     std::to_string(groups) + "), got " + shape_str(x.shape()) + " and " +
                     shape_str(weight.shape()));
  const std::size_t in = x.size(1), out = weight.size(1) * groups;
  if (bias.defined() && bias.shape() != Shape{out})
    throw ShapeError(std::string(op) + ": bias must have shape [" + std::to_string(out) +
                     "], got " + shape_str(bias.shape()));
  std::array<std::size_t, 2> size{};
  for (std::size_t a = 0; a < 2; ++a) {
    const std::size_t s = o.stride()[a], p = o.padding()[a], d = o.dilation()[a],
                      k = weight.size(2 + a), extra = o.output_padding()[a];
    if (s == 0 || d == 0 || (extra >= s && extra >= d))
      throw ValueError(std::string(op) +
                       ": needs stride and dilation > 0 and output_padding "
                       "smaller than the stride or the dilation, got stride " +
                       std::to_string(s) + ", dilation " + std::to_string(d) + ", output_padding " +
                       std::to_string(extra));
    const std::size_t full = (x.size(2 + a) - 1) * s + d * (k - 1) + extra + 1;
    if (full <= 2 * p)
      throw ShapeError(std::string(op) + ": padding " + std::to_string(p) +
                       " leaves no output for input " + shape_str(x.shape()));
    size[a] = full - 2 * p;
  }
  const Window2d window{{weight.size(2), weight.size(3)}, o.stride(), o.padding(), o.dilation()};
  const auto n = static_cast<std::ptrdiff_t>(x.size(0));
  const std::size_t per_in = in / groups;
  std::vector<Tensor> parts;
  for (std::size_t g = 0; g < groups; ++g) {
    // Each input position spreads its C values through W^T onto a window of the output: the
    // columns fold sums.
    const Tensor xg = reshape(groups == 1 ? x : narrow(x, 1, std::ptrdiff_t(g * per_in), per_in),
                              {n, std::ptrdiff_t(per_in), -1});
    const Tensor wg =
        reshape(groups == 1 ? weight : narrow(weight, 0, std::ptrdiff_t(g * per_in), per_in),
                {std::ptrdiff_t(per_in), -1});
    parts.push_back(fold(matmul(transpose(wg, 0, 1), xg), size, window));
  }
  Tensor y = groups == 1 ? parts[0] : concat(parts, 1);
  if (bias.defined()) y = add(y, reshape(bias, {1, std::ptrdiff_t(out), 1, 1}));
  return y;
}

namespace {

// One spatial axis resampled to `out` entries: index_select of the neighbours and, for the linear
// mode, their weights along the axis.
Tensor resample_axis(const Tensor& x, std::size_t axis, std::size_t out, double scale,
                     InterpolateMode mode, bool align_corners) {
  const std::size_t in = x.size(axis);
  if (mode == InterpolateMode::nearest) {
    std::vector<std::int64_t> source(out);
    for (std::size_t i = 0; i < out; ++i)
      source[i] = std::min<std::int64_t>(
          static_cast<std::int64_t>(std::floor(static_cast<double>(i) * scale)),
          static_cast<std::int64_t>(in) - 1);
    return index_select(x, static_cast<std::ptrdiff_t>(axis), source);
  }
  std::vector<std::int64_t> low(out), high(out);
  std::vector<double> t(out);
  for (std::size_t i = 0; i < out; ++i) {
    double src = align_corners ? (out > 1 ? static_cast<double>(i) * static_cast<double>(in - 1) /
                                                static_cast<double>(out - 1)
                                          : 0.0)
                               : std::max((static_cast<double>(i) + 0.5) * scale - 0.5, 0.0);
    const auto i0 =
        std::min(static_cast<std::int64_t>(std::floor(src)), static_cast<std::int64_t>(in) - 1);
    low[i] = i0;
    high[i] = std::min<std::int64_t>(i0 + 1, static_cast<std::int64_t>(in) - 1);
    t[i] = src - static_cast<double>(i0);
  }
  Shape along(x.dim(), 1);
  along[axis] = out;
  const Tensor w = from_vector(t, along, {.dtype = x.dtype()});
  const auto a = static_cast<std::ptrdiff_t>(axis);
  return add(mul(index_select(x, a, low), sub(detail::scalar_like(w, 1.0), w)),
             mul(index_select(x, a, high), w));
}

}  // namespace

Tensor interpolate(const Tensor& x, const InterpolateFuncOptions& o) {
  const CompositeScope composite("interpolate");
  const char* op = "interpolate";
  if (x.dim() != 4 || !is_floating_point(x.dtype()))
    throw ShapeError(std::string(op) + ": needs floating images (N, C, H, W), got " +
                     shape_str(x.shape()) + " " + std::string(dtype_name(x.dtype())));
  if (o.size().empty() == o.scale_factor().empty())
    throw ValueError(std::string(op) + ": give either size or scale_factor, not both or neither");
  if (o.align_corners() && o.mode() == InterpolateMode::nearest)
    throw ValueError(std::string(op) + ": align_corners is for the linear modes, not nearest");
  const auto value = [](const auto& v, std::size_t a) { return v.size() == 1 ? v[0] : v.at(a); };
  if ((!o.size().empty() && o.size().size() != 1 && o.size().size() != 2) ||
      (!o.scale_factor().empty() && o.scale_factor().size() != 1 && o.scale_factor().size() != 2))
    throw ValueError(std::string(op) +
                     ": size and scale_factor take one value or one per axis (2)");
  Tensor y = x;
  for (std::size_t a = 0; a < 2; ++a) {
    const std::size_t in = x.size(2 + a);
    std::size_t out = 0;
    double scale = 0;
    if (!o.size().empty()) {
      out = value(o.size(), a);
      scale = static_cast<double>(in) / static_cast<double>(out);
    } else {
      const double f = value(o.scale_factor(), a);
      if (!(f > 0) || !std::isfinite(f))
        throw ValueError(std::string(op) + ": scale_factor must be finite and > 0, got " +
                         std::to_string(f));
      out = static_cast<std::size_t>(std::floor(static_cast<double>(in) * f));
      scale = 1 / f;
    }
    if (out == 0)
      throw ValueError(std::string(op) + ": an output of 0 pixels along axis " +
                       std::to_string(2 + a) + " of " + shape_str(x.shape()));
    y = resample_axis(y, 2 + a, out, scale, o.mode(), o.align_corners().value_or(false));
  }
  return y;
}

namespace {
// A 2-d pool over x (N, C, L) or (C, L) seen as images of one row (N, C, 1, L).
template <class Pool>
Tensor over_rows(const char* op, const Tensor& x, Pool pool2d) {
  if (x.dim() != 2 && x.dim() != 3)
    throw ShapeError(std::string(op) + ": needs x (N, C, L) or (C, L), got " +
                     shape_str(x.shape()));
  const bool batched = x.dim() == 3;
  const Tensor y = squeeze(pool2d(unsqueeze(batched ? x : unsqueeze(x, 0), -2)), -2);
  return batched ? y : squeeze(y, 0);
}
}  // namespace

Tensor max_pool1d(const Tensor& x, std::size_t kernel, std::size_t stride, std::size_t padding) {
  const CompositeScope composite("max_pool1d");
  return over_rows("max_pool1d", x, [&](const Tensor& image) {
    return max_pool2d(image, {1, kernel}, {1, stride == 0 ? kernel : stride}, {0, padding});
  });
}

Tensor avg_pool1d(const Tensor& x, std::size_t kernel, std::size_t stride, std::size_t padding) {
  const CompositeScope composite("avg_pool1d");
  return over_rows("avg_pool1d", x, [&](const Tensor& image) {
    return avg_pool2d(image, {1, kernel}, {1, stride == 0 ? kernel : stride}, {0, padding});
  });
}

Tensor adaptive_avg_pool1d(const Tensor& x, std::size_t output_size) {
  const CompositeScope composite("adaptive_avg_pool1d");
  return over_rows("adaptive_avg_pool1d", x, [&](const Tensor& image) {
    return adaptive_avg_pool2d(image, {1, output_size});
  });
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
