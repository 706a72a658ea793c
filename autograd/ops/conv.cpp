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
