// conv2d: x (N, C, H, W), W (O, C/G, kh, kw), b (O) -> Y (N, O, oh, ow); per image n and group g,
//   cols = im2col(x_n,g) (K = C/G kh kw rows, L = oh ow columns),  Y_n,g = W_g (O/G, K) cols + b
//   dW_g = sum_n G_n,g cols^T,  dx_n,g = col2im(W_g^T G_n,g),  db = G summed over n, oh, ow
//   Saves x and W; nothing built from them is kept for the backward.
//   JVP: dY = conv2d(dx, W) + conv2d(x, dW) + db, the op itself on the tangents (it is bilinear).
// NOTE: a primitive for speed. Written as unfold and batched products it spent 75% of a step
// permuting the batch into and out of the products' layout. Now, by measurement on the reference
// CNN (docs/performance.md):
// - float32, where the build has oneDNN: its direct convolution primitives, in its blocked layout
//   (detail/conv_onednn.cpp), 1.0-1.7x faster than the next path, reorders included; the output
//   stays in that layout (autograd/detail/blocked.hpp), and so does dx for a blocked x;
// - stride 1: one product per kernel tap over a tile of zero-padded images, no columns built;
// - other strides: one image's columns at a time in a reused workspace; a 1x1 convolution with
//   stride 1 and no padding reads x itself.
// Under create_graph the backward is written in ops (unfold, products, fold), so that its own
// derivative is recorded.
#include <algorithm>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/detail/blas.hpp"
#include "autograd/detail/blocked.hpp"
#include "autograd/detail/conv_onednn.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// conv2d's options, as plain values.
struct Settings {
  std::array<std::size_t, 2> stride, padding, dilation;
  std::size_t groups;
};

struct ConvShape {
  std::size_t n, c, h, w, o, g, kh, kw, oh, ow;
  Settings opt;
  std::size_t cg() const { return c / g; }          // input channels per group
  std::size_t og() const { return o / g; }          // output channels per group
  std::size_t k() const { return cg() * kh * kw; }  // rows of the columns
  std::size_t l() const { return oh * ow; }         // columns: output positions
  bool direct() const {                             // the columns are the image itself
    return kh == 1 && kw == 1 && opt.stride == std::array<std::size_t, 2>{1, 1} &&
           opt.padding == std::array<std::size_t, 2>{0, 0};
  }
  bool shifted() const {  // stride 1 and a kernel of more than one tap: shifted products
    return opt.stride == std::array<std::size_t, 2>{1, 1} && !direct();
  }
};

std::ptrdiff_t sgn(std::size_t v) { return static_cast<std::ptrdiff_t>(v); }

// Calls f(out row segment start, q_lo, q_hi, src, x0) for every row of every column block: the
// entries q of [q_lo, q_hi) of the segment read the image's entry src + x0 + q sw; the others are
// padding. `channels` channels of `img`, rows ordered as unfold's ((c kh + i) kw + j).
template <class F>
void for_each_segment(const ConvShape& s, std::size_t channels, F&& f) {
  const std::size_t L = s.l();
  const auto [sh, sw] = s.opt.stride;
  const auto [ph, pw] = s.opt.padding;
  const auto [dh, dw] = s.opt.dilation;
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < s.kh; ++i)
      for (std::size_t j = 0; j < s.kw; ++j) {
        const std::size_t row = ((c * s.kh + i) * s.kw + j) * L;
        // columns q whose x = q sw + j dw - pw falls in [0, W)
        const std::ptrdiff_t x0 = sgn(j * dw) - sgn(pw);
        std::ptrdiff_t lo = x0 >= 0 ? 0 : (-x0 + sgn(sw) - 1) / sgn(sw);
        std::ptrdiff_t hi = sgn(s.w) - x0 <= 0 ? 0 : (sgn(s.w) - x0 + sgn(sw) - 1) / sgn(sw);
        lo = std::min(lo, sgn(s.ow));
        hi = std::clamp(hi, lo, sgn(s.ow));
        for (std::size_t p = 0; p < s.oh; ++p) {
          const std::ptrdiff_t y = sgn(p * sh + i * dh) - sgn(ph);
          const bool inside = y >= 0 && y < sgn(s.h);
          f(row + p * s.ow, inside ? static_cast<std::size_t>(lo) : 0,
            inside ? static_cast<std::size_t>(hi) : 0,
            inside ? (c * s.h + static_cast<std::size_t>(y)) * s.w : 0, x0);
        }
      }
}

// cols (K, L) of `channels` channels of one image.
template <class T>
void im2col(const ConvShape& s, const T* img, T* cols) {
  const std::size_t sw = s.opt.stride[1];
  for_each_segment(
      s, s.cg(),
      [&](std::size_t at, std::size_t lo, std::size_t hi, std::size_t src, std::ptrdiff_t x0) {
        T* __restrict out = cols + at;
        const T* __restrict in = img + src;  // the row; entry q of the segment reads in[x0 + q sw]
        for (std::size_t q = 0; q < lo; ++q) out[q] = T{0};
        if (sw == 1)  // rows are short (the output's width): a loop, not a call to memmove
          for (std::size_t q = lo; q < hi; ++q) out[q] = in[x0 + sgn(q)];
        else
          for (std::size_t q = lo; q < hi; ++q) out[q] = in[x0 + sgn(q * sw)];
        for (std::size_t q = hi; q < s.ow; ++q) out[q] = T{0};
      });
}

// The adjoint: adds cols (K, L) into the image's entries that they were read from.
template <class T>
void col2im(const ConvShape& s, const T* cols, T* img) {
  const std::size_t sw = s.opt.stride[1];
  for_each_segment(
      s, s.cg(),
      [&](std::size_t at, std::size_t lo, std::size_t hi, std::size_t src, std::ptrdiff_t x0) {
        const T* __restrict in = cols + at;
        T* __restrict out = img + src;
        if (sw == 1)
          for (std::size_t q = lo; q < hi; ++q) out[x0 + sgn(q)] += in[q];
        else
          for (std::size_t q = lo; q < hi; ++q) out[x0 + sgn(q * sw)] += in[q];
      });
}

// The columns of image n, group g: x itself for a direct convolution, else built in `work`.
template <class T>
const T* columns(const ConvShape& s, const T* x, std::size_t n, std::size_t g,
                 std::vector<T>& work) {
  const T* img = x + (n * s.c + g * s.cg()) * s.h * s.w;
  if (s.direct()) return img;
  work.resize(s.k() * s.l());
  im2col(s, img, work.data());
  return work.data();
}

// ---- stride 1: shifted products over padded tiles --------------------------------------------
// T images of one group are copied, zero-padded, into a tall image of T (hp, wp) planes per
// channel. Output entry (p, q) of image t is then sum over taps (i, j) of W[:, :, i, j] times the
// tall image's entry at column (t hp + p) wp + q + i dh wp + j dw: each tap is ONE product
// W_ij (O/G, C/G) @ tall[:, shift : shift + N] over every column of the grid at once. Grid
// columns with q >= ow or p >= oh (where a window would wrap around a row or into the next image)
// are computed and dropped; gradients are zero there. No columns matrix is built.
struct Tiles {
  std::size_t images, hp, wp, plane, cols;  // plane: one channel of the tall image; cols: N
};

Tiles tiles(const ConvShape& s, std::size_t images) {
  const std::size_t hp = s.h + 2 * s.opt.padding[0], wp = s.w + 2 * s.opt.padding[1];
  const std::size_t span = s.opt.dilation[0] * (s.kh - 1);
  return {images, hp, wp, images * hp * wp, (images * hp - span - 1) * wp + s.ow};
}

// Images per tile: products of about 2k columns, so that the grid (O/G x 2k) stays in L2 over
// the taps (1k, 4k and 8k were 0-15% slower on the reference CNN).
std::size_t tile_images(const ConvShape& s) {
  const Tiles one = tiles(s, 1);
  return std::clamp<std::size_t>(2048 / (one.hp * one.wp), 1, std::max<std::size_t>(s.n, 1));
}

std::size_t tap_shift(const ConvShape& s, const Tiles& t, std::size_t tap) {
  return tap / s.kw * s.opt.dilation[0] * t.wp + tap % s.kw * s.opt.dilation[1];
}

// Channels of group g of images n0 ... into the tall image (C/G, plane), zero-padded.
template <class T>
void pack_images(const ConvShape& s, const Tiles& t, const T* x, std::size_t n0, std::size_t g,
                 T* tall) {
  const auto [ph, pw] = s.opt.padding;
  for (std::size_t c = 0; c < s.cg(); ++c)
    for (std::size_t im = 0; im < t.images; ++im) {
      T* dst = tall + c * t.plane + im * t.hp * t.wp;
      const T* src = x + ((n0 + im) * s.c + g * s.cg() + c) * s.h * s.w;
      std::fill_n(dst, ph * t.wp, T{0});
      for (std::size_t r = 0; r < s.h; ++r) {
        T* row = dst + (ph + r) * t.wp;
        std::fill_n(row, pw, T{0});
        std::copy_n(src + r * s.w, s.w, row + pw);
        std::fill_n(row + pw + s.w, pw, T{0});
      }
      std::fill_n(dst + (ph + s.h) * t.wp, ph * t.wp, T{0});
    }
}

// Between an (N, O, oh, ow) array's group g, images n0 ..., and the grid (O/G, cols):
// to_grid writes the grid (zeros where it drops entries), from_grid reads it (plus a bias).
template <class T>
void to_grid(const ConvShape& s, const Tiles& t, const T* y, std::size_t n0, std::size_t g,
             T* grid) {
  std::fill_n(grid, s.og() * t.cols, T{0});
  for (std::size_t o = 0; o < s.og(); ++o)
    for (std::size_t im = 0; im < t.images; ++im) {
      const T* src = y + ((n0 + im) * s.o + g * s.og() + o) * s.l();
      T* dst = grid + o * t.cols + im * t.hp * t.wp;
      for (std::size_t p = 0; p < s.oh; ++p) std::copy_n(src + p * s.ow, s.ow, dst + p * t.wp);
    }
}
template <class T>
void from_grid(const ConvShape& s, const Tiles& t, const T* grid, const T* bias, std::size_t n0,
               std::size_t g, T* y) {
  for (std::size_t o = 0; o < s.og(); ++o) {
    const T b = bias ? bias[g * s.og() + o] : T{0};
    for (std::size_t im = 0; im < t.images; ++im) {
      T* dst = y + ((n0 + im) * s.o + g * s.og() + o) * s.l();
      const T* src = grid + o * t.cols + im * t.hp * t.wp;
      for (std::size_t p = 0; p < s.oh; ++p)
        for (std::size_t q = 0; q < s.ow; ++q) dst[p * s.ow + q] = src[p * t.wp + q] + b;
    }
  }
}

// Scratch arrays, kept per thread from call to call (at most a tile: a few MB). Allocated per
// call, their pages were mapped and faulted in anew each time: a third of a step in the kernel.
enum Scratch { kTall, kGrid, kTaps, kTapGrads, kScratches };
template <class T>
std::vector<T>& scratch(Scratch which, std::size_t size) {
  thread_local std::vector<T> arrays[kScratches];
  arrays[which].resize(size);
  return arrays[which];
}

// The weight as taps: (G, kh kw, O/G, C/G), each tap's matrix contiguous.
template <class T>
const std::vector<T>& weight_taps(const ConvShape& s, const T* w) {
  const std::size_t taps = s.kh * s.kw, Og = s.og(), Cg = s.cg();
  std::vector<T>& out = scratch<T>(kTaps, s.g * taps * Og * Cg);
  for (std::size_t g = 0; g < s.g; ++g)
    for (std::size_t o = 0; o < Og; ++o)
      for (std::size_t c = 0; c < Cg; ++c)
        for (std::size_t tap = 0; tap < taps; ++tap)
          out[((g * taps + tap) * Og + o) * Cg + c] = w[((g * Og + o) * Cg + c) * taps + tap];
  return out;
}

// Calls f(tile, first image, group, tall image, grid) for each tile of images and each group, the
// tall image and the grid sized for the tile in this thread's scratch.
template <class T, class F>
void for_each_tile(const ConvShape& s, F&& f) {
  const std::size_t per = tile_images(s);
  for (std::size_t n0 = 0; n0 < s.n; n0 += per) {
    const Tiles t = tiles(s, std::min(per, s.n - n0));
    std::vector<T>& tall = scratch<T>(kTall, s.cg() * t.plane);
    std::vector<T>& grid = scratch<T>(kGrid, s.og() * t.cols);
    for (std::size_t g = 0; g < s.g; ++g) f(t, n0, g, tall, grid);
  }
}

template <class T>
void forward_taps(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  const std::size_t taps = s.kh * s.kw, Og = s.og(), Cg = s.cg();
  const std::vector<T>& wt = weight_taps(s, w);
  for_each_tile<T>(s, [&](const Tiles& t, std::size_t n0, std::size_t g, std::vector<T>& tall,
                          std::vector<T>& grid) {
    pack_images(s, t, x, n0, g, tall.data());
    for (std::size_t tap = 0; tap < taps; ++tap)
      detail::gemm(false, false, Og, t.cols, Cg, T{1}, wt.data() + (g * taps + tap) * Og * Cg, Cg,
                   tall.data() + tap_shift(s, t, tap), t.plane, tap ? T{1} : T{0}, grid.data(),
                   t.cols);
    from_grid(s, t, grid.data(), b, n0, g, y);
  });
}

// dW (when dw) and dx (when dx) from the gradient g at the output.
template <class T>
void backward_taps(const ConvShape& s, const T* x, const T* w, const T* gy, T* dw, T* dx) {
  const std::size_t taps = s.kh * s.kw, Og = s.og(), Cg = s.cg();
  const std::size_t ph = s.opt.padding[0], pw = s.opt.padding[1];  // captured below
  const std::vector<T>& wt = weight_taps(s, w);
  std::vector<T>& dwt = scratch<T>(kTapGrads, dw ? wt.size() : 0);
  std::fill(dwt.begin(), dwt.end(), T{0});
  for_each_tile<T>(s, [&](const Tiles& t, std::size_t n0, std::size_t g, std::vector<T>& tall,
                          std::vector<T>& grid) {
    to_grid(s, t, gy, n0, g, grid.data());
    if (dw) {
      pack_images(s, t, x, n0, g, tall.data());
      for (std::size_t tap = 0; tap < taps; ++tap)
        detail::gemm(false, true, Og, Cg, t.cols, T{1}, grid.data(), t.cols,
                     tall.data() + tap_shift(s, t, tap), t.plane, T{1},
                     dwt.data() + (g * taps + tap) * Og * Cg, Cg);
    }
    if (dx) {  // the tall image's gradient, then its inside back to dx
      std::fill(tall.begin(), tall.end(), T{0});
      for (std::size_t tap = 0; tap < taps; ++tap)
        detail::gemm(true, false, Cg, t.cols, Og, T{1}, wt.data() + (g * taps + tap) * Og * Cg, Cg,
                     grid.data(), t.cols, T{1}, tall.data() + tap_shift(s, t, tap), t.plane);
      for (std::size_t c = 0; c < Cg; ++c)
        for (std::size_t im = 0; im < t.images; ++im) {
          const T* src = tall.data() + c * t.plane + im * t.hp * t.wp + ph * t.wp + pw;
          T* dst = dx + ((n0 + im) * s.c + g * Cg + c) * s.h * s.w;
          for (std::size_t r = 0; r < s.h; ++r) std::copy_n(src + r * t.wp, s.w, dst + r * s.w);
        }
    }
  });
  if (dw)
    for (std::size_t g = 0; g < s.g; ++g)
      for (std::size_t o = 0; o < Og; ++o)
        for (std::size_t c = 0; c < Cg; ++c)
          for (std::size_t tap = 0; tap < taps; ++tap)
            dw[((g * Og + o) * Cg + c) * taps + tap] = dwt[((g * taps + tap) * Og + o) * Cg + c];
}

// ---- any stride: one image's columns at a time ----------------------------------------------
// float32 on oneDNN's convolution where the build has it (nothing empty: it refuses 0 sizes).
template <class T>
bool on_onednn(const ConvShape& s) {
  return std::is_same_v<T, float> && detail::onednn_convolution() && s.n > 0 && s.c > 0 &&
         s.o > 0 && s.oh > 0 && s.ow > 0;
}

detail::ConvGeometry geometry(const ConvShape& s, bool bias) {
  return {s.n,  s.c,  s.h, s.w,          s.o,           s.kh,           s.kw,
          s.oh, s.ow, s.g, s.opt.stride, s.opt.padding, s.opt.dilation, bias};
}

// x's values for oneDNN: blocked ones as they are (not made plain).
detail::Activation<const float> activation(const Tensor& x) {
  if (const BlockedArray* b = detail::blocked(x)) return {b->values.data(), b->block};
  return {detail::data<float>(x), 0};
}

// On oneDNN: the output in the blocked layout oneDNN gives it in (unless
// set_blocked_layout(false)), so that batch norm, pooling and the next convolution read it without
// a reorder.
Tensor onednn_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& b) {
  const detail::ConvGeometry geo = geometry(s, b.defined());
  const std::size_t block = blocked_layout() ? detail::onednn_conv_blocks(geo).output : 0;
  const float* pb = b.defined() ? detail::data<float>(b) : nullptr;
  if (block) {
    BlockedArray y = detail::blocked_empty({s.n, s.o, s.oh, s.ow}, block);
    detail::onednn_conv_forward(geo, activation(x), detail::data<float>(w), pb,
                                {y.values.data(), block});
    return detail::make_blocked(std::move(y));
  }
  xt::xarray<float> y = detail::empty<float>({s.n, s.o, s.oh, s.ow});
  detail::onednn_conv_forward(geo, activation(x), detail::data<float>(w), pb, {y.data(), 0});
  return Tensor(std::move(y));
}

// From dy: dx in x's layout (blocked or plain), dw and db.
void onednn_backward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& g,
                     bool bias, std::array<bool, 3> needed, std::span<Tensor> grads) {
  const BlockedArray* bx = detail::blocked(x);
  BlockedArray dx_blocked;
  xt::xarray<float> dx, dw, db;
  detail::Activation<float> to;
  if (needed[0] && bx) {
    dx_blocked = detail::blocked_empty(bx->logical, bx->block);
    to = {dx_blocked.values.data(), bx->block};
  } else if (needed[0]) {
    dx = detail::empty<float>(x.shape());
    to = {dx.data(), 0};
  }
  if (needed[1]) dw = detail::empty<float>(w.shape());
  if (bias && needed[2]) db = detail::empty<float>({s.o});
  detail::onednn_conv_backward(geometry(s, bias), activation(x), detail::data<float>(w),
                               activation(g), to, needed[1] ? dw.data() : nullptr,
                               bias && needed[2] ? db.data() : nullptr);
  if (needed[0])
    grads[0] = bx ? detail::make_blocked(std::move(dx_blocked)) : Tensor(std::move(dx));
  if (needed[1]) grads[1] = Tensor(std::move(dw));
  if (bias && needed[2]) grads[2] = Tensor(std::move(db));
}

template <class T>
xt::xarray<T> forward(const ConvShape& s, const T* x, const T* w, const T* b) {
  xt::xarray<T> y = detail::empty<T>({s.n, s.o, s.oh, s.ow});
  const std::size_t K = s.k(), L = s.l(), Og = s.og();
  if (K > 0 && s.shifted()) {
    forward_taps(s, x, w, b, y.data());
    return y;
  }
  std::vector<T>& work = scratch<T>(kTall, 0);
  for (std::size_t n = 0; n < s.n; ++n)
    for (std::size_t g = 0; g < s.g; ++g) {
      T* out = y.data() + (n * s.o + g * Og) * L;
      for (std::size_t o = 0; o < Og; ++o) std::fill_n(out + o * L, L, b ? b[g * Og + o] : T{0});
      if (K == 0) continue;
      detail::gemm(false, false, Og, L, K, T{1}, w + g * Og * K, K, columns(s, x, n, g, work), L,
                   T{1}, out, L);
    }
  return y;
}

ConvShape conv_shape(const Tensor& x, const Tensor& weight, const Tensor& bias,
                     const Conv2dFuncOptions& options) {
  const Settings o{options.stride(), options.padding(), options.dilation(), options.groups()};
  const char* op = "conv2d";
  detail::check_same_dtype(op, x, weight);
  if (bias.defined()) detail::check_same_dtype(op, x, bias);
  if (x.dim() != 4 || weight.dim() != 4)
    throw ShapeError(std::string(op) +
                     ": needs input (N, C, H, W) and weight (O, C / groups, kh, kw), got input " +
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
  // The window's checks and output size are unfold's.
  const auto [oh, ow] =
      detail::window_output(op, x.shape(), {{kh, kw}, o.stride, o.padding, o.dilation});
  return {x.size(0), C, x.size(2), x.size(3), O, G, kh, kw, oh, ow, o};
}

struct Conv2d final : Node {
  explicit Conv2d(ConvShape s) : s_(s) {}
  std::string_view name() const override { return "conv2d"; }

  Tensor jvp(const ForwardInputs& in) const override {
    const Conv2dFuncOptions o = Conv2dFuncOptions()
                                    .stride(s_.opt.stride)
                                    .padding(s_.opt.padding)
                                    .dilation(s_.opt.dilation)
                                    .groups(s_.opt.groups);
    Tensor dy;
    if (in.has(0)) dy = conv2d(in.tangent(0), in.primal(1), Tensor(), o);
    if (in.has(1)) dy = detail::add_defined(dy, conv2d(in.primal(0), in.tangent(1), Tensor(), o));
    if (in.primals.size() == 3 && in.has(2))
      dy = detail::add_defined(dy, reshape(in.tangent(2), {1, -1, 1, 1}));
    return dy;
  }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor x = saved(0), w = saved(1);
    if (detail::differentiable_backward()) return recorded(g, x, w, grads);
    const bool bias = num_inputs() == 3;
    if (x.dtype() == Dtype::float32 && on_onednn<float>(s_))
      return onednn_backward(s_, x, w, g, bias,
                             {needs_grad(0), needs_grad(1), bias && needs_grad(2)}, grads);
    detail::dispatch(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const ConvShape& s = s_;
      const std::size_t K = s.k(), L = s.l(), Og = s.og();
      const T* px = detail::data<T>(x);
      const T* pw = detail::data<T>(w);
      const T* pg = detail::data<T>(g);
      if (num_inputs() == 3 && needs_grad(2)) {
        xt::xarray<T> db = detail::empty<T>({s.o});
        for (std::size_t o = 0; o < s.o; ++o) {
          double total = 0;
          for (std::size_t n = 0; n < s.n; ++n)
            total += detail::row_sum(pg + (n * s.o + o) * L, L, [](T v) { return v; });
          db(o) = static_cast<T>(total);
        }
        grads[2] = Tensor(std::move(db));
      }
      if (K == 0) return;
      if (s.shifted()) {
        xt::xarray<T> dw, dx;
        if (needs_grad(1)) dw = xt::zeros<T>(w.shape());
        if (needs_grad(0)) dx = detail::empty<T>(x.shape());
        backward_taps(s, px, pw, pg, needs_grad(1) ? dw.data() : nullptr,
                      needs_grad(0) ? dx.data() : nullptr);
        if (needs_grad(1)) grads[1] = Tensor(std::move(dw));
        if (needs_grad(0)) grads[0] = Tensor(std::move(dx));
        return;
      }
      std::vector<T>& work = scratch<T>(kTall, 0);
      std::vector<T>& dcols = scratch<T>(kGrid, 0);
      if (needs_grad(1)) {
        xt::xarray<T> dw = xt::zeros<T>(w.shape());
        for (std::size_t n = 0; n < s.n; ++n)
          for (std::size_t gi = 0; gi < s.g; ++gi)
            detail::gemm(false, true, Og, K, L, T{1}, pg + (n * s.o + gi * Og) * L, L,
                         columns(s, px, n, gi, work), L, T{1}, dw.data() + gi * Og * K, K);
        grads[1] = Tensor(std::move(dw));
      }
      if (needs_grad(0)) {
        xt::xarray<T> dx = xt::zeros<T>(x.shape());
        if (!s.direct()) dcols.resize(K * L);
        for (std::size_t n = 0; n < s.n; ++n)
          for (std::size_t gi = 0; gi < s.g; ++gi) {
            T* img = dx.data() + (n * s.c + gi * s.cg()) * s.h * s.w;
            T* target = s.direct() ? img : dcols.data();
            detail::gemm(true, false, K, L, Og, T{1}, pw + gi * Og * K, K,
                         pg + (n * s.o + gi * Og) * L, L, T{0}, target, L);
            if (!s.direct()) col2im(s, dcols.data(), img);
          }
        grads[0] = Tensor(std::move(dx));
      }
    });
  }

  // The same in ops, for create_graph: per group, the batch's columns side by side.
  void recorded(const Tensor& g, const Tensor& x, const Tensor& w, std::span<Tensor> grads) {
    const ConvShape& s = s_;
    const std::ptrdiff_t N = sgn(s.n), G = sgn(s.g), Og = sgn(s.og()), K = sgn(s.k()),
                         L = sgn(s.l());
    const Window2d win{{s.kh, s.kw}, s.opt.stride, s.opt.padding, s.opt.dilation};
    // (N, O, oh, ow) -> (G, O/G, N L)
    const Tensor gg = reshape(permute(reshape(g, {N, G, Og, L}), {1, 2, 0, 3}), {G, Og, N * L});
    if (num_inputs() == 3 && needs_grad(2)) grads[2] = sum(g, {0, 2, 3});
    if (needs_grad(1)) {
      const Tensor cols =
          reshape(permute(reshape(unfold(x, win), {N, G, K, L}), {1, 2, 0, 3}), {G, K, N * L});
      grads[1] = reshape(mm(gg, cols, false, true), detail::spec(w.shape()));
    }
    if (needs_grad(0)) {
      const Tensor dcols = mm(reshape(w, {G, Og, K}), gg, true, false);  // (G, K, N L)
      grads[0] = fold(reshape(permute(reshape(dcols, {G, K, N, L}), {2, 0, 1, 3}), {N, G * K, L}),
                      {s.h, s.w}, win);
    }
  }

  ConvShape s_;
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dFuncOptions& o) {
  const ProfileScope profiled("conv2d");
  const ConvShape s = conv_shape(x, weight, bias, o);
  Tensor y;
  if (x.dtype() == Dtype::float32 && on_onednn<float>(s))
    y = onednn_forward(s, x, weight, bias);
  else
    y = detail::dispatch(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      return Tensor(forward<T>(s, detail::data<T>(x), detail::data<T>(weight),
                               bias.defined() ? detail::data<T>(bias) : nullptr));
    });
  Node* node = bias.defined() ? static_cast<Node*>(record<Conv2d>(y, {x, weight, bias}, s))
                              : static_cast<Node*>(record<Conv2d>(y, {x, weight}, s));
  if (node) node->save({x, weight});
  return y;
}

}  // namespace xgrad
