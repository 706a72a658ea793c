// max_pool2d: x (N, C, H, W) -> y (N, C, oh, ow), y = the largest entry of each window, padding
// counting as -inf (never chosen: each window holds at least one entry of x, as padding is at most
// half the kernel). The chosen entry is the first largest in row-major order, a NaN counting as
// the largest (the first NaN).
//   dx = each output's gradient added to the entry it chose. Saves where each output came from.
//   JVP: dy = the tangent of the entry each output chose.
// NOTE: a primitive for speed: as unfold and max it built every window in memory (the kernel's
// area times the output) and took a strided maximum over it; here one pass over the windows
// records the chosen entry, and the backward adds the gradient back through those positions.
// Under create_graph the backward is scatter_add into zeros, so that its own derivative is
// recorded (gather of the gradient's gradient at the same positions). 2 x 2 windows over float32
// values in oneDNN's blocked layout (a convolution's output through batch norm) give a blocked
// output and gradient (autograd/detail/blocked.hpp), the choices kept in the blocked order.
#include <array>
#include <limits>
#include <type_traits>

#include "autograd/detail/blocked.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

struct MaxPool final : Node {
  MaxPool(std::vector<std::uint32_t> where, Shape input, std::size_t block)
      : where_(std::move(where)), input_(input), block_(block) {}
  std::string_view name() const override { return "max_pool2d"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const std::size_t planes = input_[0] * input_[1], area = input_[2] * input_[3];
    const std::size_t outputs = where_.size() / std::max<std::size_t>(planes, 1);
    if (block_ && !detail::differentiable_backward()) {  // blocked, as the forward's x
      const BlockedArray* bg = detail::blocked(g);
      BlockedArray g_here;
      if (!bg || bg->block != block_) {
        g_here = detail::to_blocked(g, block_);
        bg = &g_here;
      }
      const std::size_t H = input_[2], W = input_[3], oh = H / 2, ow = W / 2;
      BlockedArray dx = H % 2 || W % 2 ? detail::blocked_zeros(input_, block_)
                                       : detail::blocked_empty(input_, block_);
      detail::vec::max_unpool_2x2_blocked({nullptr, planes / block_, H, W, oh, ow}, block_,
                                          where_.data(), bg->values.data(), dx.values.data());
      grads[0] = detail::make_blocked(std::move(dx));
      return;
    }
    if (block_) {
      where_ = plain_where();
      block_ = 0;
    }
    if (detail::differentiable_backward()) {  // in ops: scatter_add into zeros, plane by plane
      const Tensor flat = scatter_add(zeros({planes, area}, {.dtype = g.dtype()}), 1, positions(),
                                      reshape(g, {d(planes), d(outputs)}));
      grads[0] = reshape(flat, detail::spec(input_));
      return;
    }
    grads[0] = detail::dispatch(g.dtype(), [&](auto zero) {
      using T = decltype(zero);
      xt::xarray<T> dx = xt::zeros<T>(input_);
      const T* pg = detail::data<T>(g);
      for (std::size_t p = 0; p < planes; ++p) {
        T* plane = dx.data() + p * area;
        for (std::size_t i = p * outputs; i < (p + 1) * outputs; ++i)
          plane[static_cast<std::size_t>(where_[i])] += pg[i];
      }
      return Tensor(std::move(dx));
    });
  }

  // where_ in the plain order (channel plane, output) from the blocked forward's (plane of
  // channels, output, lane), for the paths that read it so.
  std::vector<std::uint32_t> plain_where() const {
    const std::size_t b = block_, planes = input_[0] * input_[1];
    const std::size_t outputs = where_.size() / std::max<std::size_t>(planes, 1);
    std::vector<std::uint32_t> plain(where_.size());
    for (std::size_t e = 0; e < where_.size(); ++e) {
      const std::size_t lane = e % b, out = e / b % outputs, p = e / b / outputs;
      plain[(p * b + lane) * outputs + out] = where_[e];
    }
    return plain;
  }

  // In ops: gather from each plane the entries the outputs chose.
  Tensor jvp(const ForwardInputs& in) const override {
    const std::size_t planes = input_[0] * input_[1], area = input_[2] * input_[3];
    const Tensor flat = reshape(in.tangent(0), {d(planes), d(area)});
    return reshape(gather(flat, 1, positions()), detail::spec(in.out.shape()));
  }

  // where_ as an index (planes, outputs) for scatter_add and gather.
  Tensor positions() const {
    const std::size_t planes = input_[0] * input_[1];
    xt::xarray<std::int64_t> at =
        detail::empty<std::int64_t>({planes, where_.size() / std::max<std::size_t>(planes, 1)});
    const std::vector<std::uint32_t>& where = block_ ? plain_where() : where_;
    std::copy(where.begin(), where.end(), at.begin());
    return Tensor(std::move(at));
  }
  static std::ptrdiff_t d(std::size_t v) { return static_cast<std::ptrdiff_t>(v); }

  // per output, its entry's offset within its (H, W) plane; in the blocked layout's order of the
  // outputs where the forward ran blocked (block_, else 0)
  std::vector<std::uint32_t> where_;
  Shape input_;
  std::size_t block_;
};

// The 2 x 2 windows of stride 2 without padding (the CNNs' pooling) as pool below chooses, with
// no loop over the window: a, b in the first row, c, d in the second; the first largest (a
// later entry replaces the best only when greater), then the first NaN.
template <class T>
void pool_2x2(const T* plane, std::size_t W, std::size_t oh, std::size_t ow, T* y,
              std::uint32_t* where) {
  for (std::size_t i = 0; i < oh; ++i) {
    const T* r0 = plane + 2 * i * W;
    const T* r1 = r0 + W;
    const auto top = static_cast<std::uint32_t>(2 * i * W), next = static_cast<std::uint32_t>(W);
    for (std::size_t j = 0; j < ow; ++j) {
      const T v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
      const auto c = static_cast<std::uint32_t>(2 * j);
      const std::uint32_t at[4] = {top + c, top + c + 1, top + next + c, top + next + c + 1};
      T best = v[0];
      std::uint32_t best_at = at[0];
      for (int k = 1; k < 4; ++k) {
        const bool greater = v[k] > best;
        best = greater ? v[k] : best;
        best_at = greater ? at[k] : best_at;
      }
      for (int k = 4; k-- > 0;) {  // the first NaN, if any, wins
        const bool nan = v[k] != v[k];
        best = nan ? v[k] : best;
        best_at = nan ? at[k] : best_at;
      }
      y[i * ow + j] = best;
      where[i * ow + j] = best_at;
    }
  }
}

// The first largest entry (a NaN counting as the largest) of each window.
template <class T>
xt::xarray<T> pool(const T* x, const Shape& in, const Window2d& w, std::size_t oh, std::size_t ow,
                   std::vector<std::uint32_t>& where) {
  const std::size_t planes = in[0] * in[1], H = in[2], W = in[3];
  if (H * W > std::numeric_limits<std::uint32_t>::max())
    throw ValueError("max_pool2d: planes of " + std::to_string(H) + " x " + std::to_string(W) +
                     " entries are more than 2^32");
  xt::xarray<T> y = detail::empty<T>({in[0], in[1], oh, ow});
  where.resize(planes * oh * ow);
  const std::array<std::size_t, 2> two{2, 2}, none{0, 0};
  if (w.kernel == two && w.stride == two && w.padding == none &&
      w.dilation == std::array<std::size_t, 2>{1, 1}) {
    if constexpr (std::is_same_v<T, float>) {
      if (W < (std::size_t{1} << 24)) {  // the vector loop's offsets are exact floats below
        detail::vec::max_pool_2x2({x, planes, H, W, oh, ow}, y.data(), where.data());
        return y;
      }
    }
    for (std::size_t p = 0; p < planes; ++p)
      pool_2x2(x + p * H * W, W, oh, ow, y.data() + p * oh * ow, where.data() + p * oh * ow);
    return y;
  }
  const auto s = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
  for (std::size_t p = 0; p < planes; ++p) {
    const T* plane = x + p * H * W;
    for (std::size_t i = 0; i < oh; ++i) {
      const std::ptrdiff_t r0 = s(i * w.stride[0]) - s(w.padding[0]);
      const std::size_t rlo = static_cast<std::size_t>(std::max<std::ptrdiff_t>(r0, 0));
      const std::size_t rhi = static_cast<std::size_t>(std::min(r0 + s(w.kernel[0]), s(H)));
      for (std::size_t j = 0; j < ow; ++j) {
        const std::ptrdiff_t c0 = s(j * w.stride[1]) - s(w.padding[1]);
        const std::size_t clo = static_cast<std::size_t>(std::max<std::ptrdiff_t>(c0, 0));
        const std::size_t chi = static_cast<std::size_t>(std::min(c0 + s(w.kernel[1]), s(W)));
        // The first largest without branches that depend on the data (they were mispredicted
        // half the time); a window with a NaN, rare, is searched again for its first NaN.
        std::size_t best_at = rlo * W + clo;
        T best = plane[best_at];
        bool nan = false;
        for (std::size_t r = rlo; r < rhi; ++r)
          for (std::size_t c = clo; c < chi; ++c) {
            const T v = plane[r * W + c];
            const bool greater = v > best;
            best = greater ? v : best;
            best_at = greater ? r * W + c : best_at;
            nan |= v != v;
          }
        if (nan)
          for (std::size_t r = rhi; r-- > rlo;)
            for (std::size_t c = chi; c-- > clo;)
              if (plane[r * W + c] != plane[r * W + c]) {
                best_at = r * W + c;
                best = plane[best_at];
              }
        const std::size_t out = (p * oh + i) * ow + j;
        y.data()[out] = best;
        where[out] = static_cast<std::uint32_t>(best_at);
      }
    }
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, ExpandingArray<2> kernel, ExpandingArray<2> stride,
                  ExpandingArray<2> padding) {
  const ProfileScope profiled("max_pool2d");
  const Window2d w = detail::pool_window("max_pool2d", x, kernel, stride, padding);
  const std::array<std::size_t, 2> out = detail::window_output("max_pool2d", x.shape(), w);
  const std::size_t oh = out[0], ow = out[1];  // captured below
  std::vector<std::uint32_t> where;
  const std::array<std::size_t, 2> two{2, 2}, none{0, 0};
  const BlockedArray* bx = detail::blocked(x);
  if (bx && w.kernel == two && w.stride == two && w.padding == none &&
      w.dilation == std::array<std::size_t, 2>{1, 1} && x.size(1) % bx->block == 0 &&
      x.size(2) * x.size(3) < (std::size_t{1} << 24)) {  // offsets exact as floats
    // a convolution's blocked output stays blocked (the CNNs' pooling)
    BlockedArray y = detail::blocked_empty({x.size(0), x.size(1), oh, ow}, bx->block);
    where.resize(x.size(0) * x.size(1) * oh * ow);
    detail::vec::max_pool_2x2_blocked(
        {bx->values.data(), x.size(0) * x.size(1) / bx->block, x.size(2), x.size(3), oh, ow},
        bx->block, y.values.data(), where.data());
    Tensor out = detail::make_blocked(std::move(y));
    record<MaxPool>(out, {x}, std::move(where), x.shape(), bx->block);
    return out;
  }
  Tensor y = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    return Tensor(pool(detail::data<T>(x), x.shape(), w, oh, ow, where));
  });
  record<MaxPool>(y, {x}, std::move(where), x.shape(), std::size_t{0});
  return y;
}

}  // namespace xgrad
