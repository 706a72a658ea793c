// unfold (im2col): x (N, C, H, W) -> z (N, C kh kw, L), L = out_h out_w, as torch's F.unfold:
//   z[n, (c kh + i) kw + j, p ow + q] = x[n, c, p sh - ph + i dh, q sw - pw + j dw] (0 outside x)
//   dz/dx: each patch entry's gradient is added back where it was read: fold(g). Saves nothing.
// fold (col2im): the adjoint, z (N, C kh kw, L) -> (N, C, H, W), overlapping entries summed
//   dz/dx: unfold(g). Saves nothing.
// Each is the other's derivative, so conv2d and the pools, written with them, have gradients of
// every order.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {

struct Geometry {
  std::size_t n, c, h, w, kh, kw, oh, ow;
  Window2d win;
};

std::size_t out_size(const char* op, std::size_t in, std::size_t kernel, std::size_t stride,
                     std::size_t pad, std::size_t dilation, const Shape& shape) {
  const std::size_t span = detail::size_add(op, detail::size_mul(op, dilation, kernel - 1), 1);
  const std::size_t padded = detail::size_add(op, in, detail::size_mul(op, 2, pad));
  if (padded < span)
    throw ShapeError(std::string(op) + ": the kernel spans " + std::to_string(span) +
                     " entries (dilation included), more than the padded input's " +
                     std::to_string(padded) + " (input " + shape_str(shape) + ")");
  return (padded - span) / stride + 1;
}

void check_window(const char* op, const Window2d& win) {
  for (std::size_t v : {win.kernel[0], win.kernel[1], win.stride[0], win.stride[1], win.dilation[0],
                        win.dilation[1]})
    if (v == 0)
      throw ValueError(
          std::string(op) + ": kernel, stride and dilation must be > 0, got kernel (" +
          std::to_string(win.kernel[0]) + ", " + std::to_string(win.kernel[1]) + "), stride (" +
          std::to_string(win.stride[0]) + ", " + std::to_string(win.stride[1]) + "), dilation (" +
          std::to_string(win.dilation[0]) + ", " + std::to_string(win.dilation[1]) + ")");
}

Geometry geometry(const char* op, const Shape& image, const Window2d& win) {
  check_window(op, win);
  if (image.size() != 4)
    throw ShapeError(std::string(op) + ": needs a 4-D input (N, C, H, W), got " + shape_str(image));
  Geometry g{image[0], image[1], image[2], image[3], win.kernel[0], win.kernel[1], 0, 0, win};
  g.oh = out_size(op, g.h, g.kh, win.stride[0], win.padding[0], win.dilation[0], image);
  g.ow = out_size(op, g.w, g.kw, win.stride[1], win.padding[1], win.dilation[1], image);
  // The outputs (N, C, oh, ow) and the columns (N, C kh kw, oh ow) must be sizes a tensor has.
  using detail::size_mul;
  size_mul(op, size_mul(op, size_mul(op, size_mul(op, g.n, g.c), g.kh), g.kw),
           size_mul(op, g.oh, g.ow));
  return g;
}

// Calls f(column entry, image entry) for each patch entry that falls inside the image, in the
// order of the columns; the image entry is a flat offset within sample n.
template <class F>
void for_each_patch_entry(const Geometry& g, F&& f) {
  const std::size_t L = g.oh * g.ow;
  for (std::size_t c = 0; c < g.c; ++c)
    for (std::size_t i = 0; i < g.kh; ++i)
      for (std::size_t j = 0; j < g.kw; ++j) {
        const std::size_t row = (c * g.kh + i) * g.kw + j;
        for (std::size_t p = 0; p < g.oh; ++p) {
          const std::ptrdiff_t y =
              static_cast<std::ptrdiff_t>(p * g.win.stride[0] + i * g.win.dilation[0]) -
              static_cast<std::ptrdiff_t>(g.win.padding[0]);
          if (y < 0 || y >= static_cast<std::ptrdiff_t>(g.h)) continue;
          for (std::size_t q = 0; q < g.ow; ++q) {
            const std::ptrdiff_t x =
                static_cast<std::ptrdiff_t>(q * g.win.stride[1] + j * g.win.dilation[1]) -
                static_cast<std::ptrdiff_t>(g.win.padding[1]);
            if (x < 0 || x >= static_cast<std::ptrdiff_t>(g.w)) continue;
            f(row * L + p * g.ow + q,
              (c * g.h + static_cast<std::size_t>(y)) * g.w + static_cast<std::size_t>(x));
          }
        }
      }
}

}  // namespace

namespace detail {
std::array<std::size_t, 2> window_output(const char* op, const Shape& image, const Window2d& win) {
  const Geometry g = geometry(op, image, win);
  return {g.oh, g.ow};
}
}  // namespace detail

namespace {

// Both are linear: the JVP of each is itself, applied to the tangent.
struct Unfold final : Node {
  explicit Unfold(Window2d win) : win_(win) {}
  std::string_view name() const override { return "unfold"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Shape& in = edge(0).shape;
    grads[0] = fold(g, {in[2], in[3]}, win_);
  }
  Tensor jvp(const ForwardInputs& in) const override { return unfold(in.tangent(0), win_); }
  Window2d win_;
};

struct Fold final : Node {
  explicit Fold(Window2d win) : win_(win) {}
  std::string_view name() const override { return "fold"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = unfold(g, win_); }
  Tensor jvp(const ForwardInputs& in) const override {
    return fold(in.tangent(0), {in.out.size(2), in.out.size(3)}, win_);
  }
  Window2d win_;
};

}  // namespace

Tensor unfold(const Tensor& x, const Window2d& window) {
  const ProfileScope profiled("unfold");
  const Geometry g = geometry("unfold", x.shape(), window);
  const std::size_t rows = g.c * g.kh * g.kw, L = g.oh * g.ow;
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = xt::zeros<T>({g.n, rows, L});
    const T* px = detail::data<T>(x);
    T* pz = z.data();
    for (std::size_t s = 0; s < g.n; ++s) {
      const T* image = px + s * g.c * g.h * g.w;
      T* cols = pz + s * rows * L;
      for_each_patch_entry(g, [&](std::size_t col, std::size_t at) { cols[col] = image[at]; });
    }
    return Tensor(std::move(z));
  });
  record<Unfold>(out, {x}, window);
  return out;
}

Tensor fold(const Tensor& cols, const std::array<std::size_t, 2>& output_size,
            const Window2d& window) {
  const ProfileScope profiled("fold");
  if (cols.dim() != 3)
    throw ShapeError("fold: needs (N, C kh kw, L), got " + shape_str(cols.shape()));
  const std::size_t k = window.kernel[0] * window.kernel[1];
  if (k == 0 || cols.size(1) % k != 0)
    throw ShapeError("fold: " + std::to_string(cols.size(1)) + " rows are not channels times the " +
                     std::to_string(window.kernel[0]) + " x " + std::to_string(window.kernel[1]) +
                     " kernel (input " + shape_str(cols.shape()) + ")");
  const Shape image = {cols.size(0), cols.size(1) / k, output_size[0], output_size[1]};
  const Geometry g = geometry("fold", image, window);
  const std::size_t rows = g.c * g.kh * g.kw, L = g.oh * g.ow;
  if (cols.size(2) != L)
    throw ShapeError("fold: " + std::to_string(cols.size(2)) + " columns, but an output of " +
                     std::to_string(output_size[0]) + " x " + std::to_string(output_size[1]) +
                     " with this window has " + std::to_string(L) + " patches");
  Tensor out = detail::dispatch(cols.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = xt::zeros<T>(image);
    const T* pc = detail::data<T>(cols);
    T* pz = z.data();
    for (std::size_t s = 0; s < g.n; ++s) {
      const T* col = pc + s * rows * L;
      T* img = pz + s * g.c * g.h * g.w;
      for_each_patch_entry(g, [&](std::size_t c, std::size_t at) { img[at] += col[c]; });
    }
    return Tensor(std::move(z));
  });
  record<Fold>(out, {cols}, window);
  return out;
}

}  // namespace xgrad
