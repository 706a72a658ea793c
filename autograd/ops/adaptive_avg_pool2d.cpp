// adaptive_avg_pool2d: x (N, C, H, W) -> y (N, C, oh, ow), y[i, j] = the mean of x over the cell
//   rows r0(i) = floor(i H / oh) .. r1(i) = ceil((i + 1) H / oh) - 1, columns likewise (as torch's;
//   cells overlap when the sizes do not divide).
//   dx[r, c] = sum over the cells (i, j) holding (r, c) of g[i, j] / |cell (i, j)|: the adjoint A^T
//   of the linear map A that the forward is. Saves nothing (the input's shape).
//   JVP: dy = A dx, the forward applied to the tangent (and the adjoint's, the adjoint's).
// The adjoint is an op of its own (adaptive_avg_pool2d_adjoint below), whose derivative is the
// forward again, so that gradients of every order are these two kernels.
// NOTE: a primitive for speed: as a composite (a slice, a mean and a node per output cell) 224 ->
// 100 took 20 s; here one pass over each cell, forward and backward.
#include <algorithm>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {

// The cells along one axis of length n split into m: [begin, end) of each.
struct Cells {
  std::vector<std::size_t> begin, end;
};

Cells cells(std::size_t n, std::size_t m) {
  Cells c;
  for (std::size_t i = 0; i < m; ++i) {
    c.begin.push_back(i * n / m);
    c.end.push_back(((i + 1) * n + m - 1) / m);
  }
  return c;
}

// The number of entries of cell (i, j).
template <class T>
T cell_size(const Cells& rows, const Cells& cols, std::size_t i, std::size_t j) {
  return static_cast<T>((rows.end[i] - rows.begin[i]) * (cols.end[j] - cols.begin[j]));
}

// One (H, W) plane x to its (oh, ow) means y.
template <class T>
void pool_plane(const T* x, T* y, std::size_t W, const Cells& rows, const Cells& cols) {
  for (std::size_t i = 0; i < rows.begin.size(); ++i)
    for (std::size_t j = 0; j < cols.begin.size(); ++j) {
      T s = 0;
      for (std::size_t r = rows.begin[i]; r < rows.end[i]; ++r)
        for (std::size_t c = cols.begin[j]; c < cols.end[j]; ++c) s += x[r * W + c];
      y[i * cols.begin.size() + j] = s / cell_size<T>(rows, cols, i, j);
    }
}

// The adjoint: one (oh, ow) plane g spread over its (H, W) plane dx (zeroed), each cell's share.
template <class T>
void spread_plane(const T* g, T* dx, std::size_t W, const Cells& rows, const Cells& cols) {
  for (std::size_t i = 0; i < rows.begin.size(); ++i)
    for (std::size_t j = 0; j < cols.begin.size(); ++j) {
      const T share = g[i * cols.begin.size() + j] / cell_size<T>(rows, cols, i, j);
      for (std::size_t r = rows.begin[i]; r < rows.end[i]; ++r)
        for (std::size_t c = cols.begin[j]; c < cols.end[j]; ++c) dx[r * W + c] += share;
    }
}

// A new (N, C, out_h, out_w) tensor from `in` (N, C, ...), zeroed, with plane(src, dst) run on
// each of the N C planes, blocks of planes of about kParallelGrain entries split across threads.
template <class Plane>
Tensor over_planes(const Tensor& in, std::size_t out_h, std::size_t out_w, Plane&& plane) {
  const std::size_t planes = in.size(0) * in.size(1), in_area = in.size(2) * in.size(3);
  const std::size_t out_area = out_h * out_w;
  return detail::dispatch(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> out = xt::zeros<T>({in.size(0), in.size(1), out_h, out_w});
    const T* src = detail::data<T>(in);
    T* dst = out.data();
    const std::size_t grain =
        std::max<std::size_t>(1, kParallelGrain / std::max(in_area, out_area));
    parallel_for(planes, grain, [=, &plane](std::size_t b, std::size_t e) {
      for (std::size_t p = b; p < e; ++p) plane(src + p * in_area, dst + p * out_area);
    });
    return Tensor(std::move(out));
  });
}

Tensor adjoint(const Tensor& g, std::size_t H, std::size_t W);

struct AdaptiveAvgPool final : Node {
  AdaptiveAvgPool(std::size_t H, std::size_t W) : H_(H), W_(W) {}
  std::string_view name() const override { return "adaptive_avg_pool2d"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = adjoint(g, H_, W_);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return adaptive_avg_pool2d(in.tangent(0), {in.out.size(2), in.out.size(3)});
  }
  std::size_t H_, W_;
};

struct AdaptiveAvgPoolAdjoint final : Node {
  AdaptiveAvgPoolAdjoint(std::size_t oh, std::size_t ow) : oh_(oh), ow_(ow) {}
  std::string_view name() const override { return "adaptive_avg_pool2d_backward"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = adaptive_avg_pool2d(g, {oh_, ow_});
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return adjoint(in.tangent(0), in.out.size(2), in.out.size(3));
  }
  std::size_t oh_, ow_;
};

Tensor adjoint(const Tensor& g, std::size_t H, std::size_t W) {
  const ProfileScope profiled("adaptive_avg_pool2d_backward");
  const std::size_t oh = g.size(2), ow = g.size(3);
  const Cells rows = cells(H, oh), cols = cells(W, ow);
  Tensor out = over_planes(
      g, H, W, [&](const auto* src, auto* dst) { spread_plane(src, dst, W, rows, cols); });
  record<AdaptiveAvgPoolAdjoint>(out, {g}, oh, ow);
  return out;
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x, ExpandingArray<2> output_size) {
  const ProfileScope profiled("adaptive_avg_pool2d");
  const char* op = "adaptive_avg_pool2d";
  if (x.dim() != 4)
    throw ShapeError(std::string(op) + ": needs a 4-D input (N, C, H, W), got " +
                     shape_str(x.shape()));
  const std::size_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const std::size_t oh = output_size[0], ow = output_size[1];
  if (oh == 0 || ow == 0 || H == 0 || W == 0)
    throw ValueError(std::string(op) + ": output size " + shape_str(output_size.value()) +
                     " and input " + shape_str(x.shape()) + " must have no empty axis");
  // The cells' bounds are i H / oh: products that must not wrap; the output a size a tensor has.
  detail::size_mul(op, oh, H);
  detail::size_mul(op, ow, W);
  detail::size_mul(op, detail::size_mul(op, N, C), detail::size_mul(op, oh, ow));
  const Cells rows = cells(H, oh), cols = cells(W, ow);
  Tensor out = over_planes(
      x, oh, ow, [&](const auto* src, auto* dst) { pool_plane(src, dst, W, rows, cols); });
  record<AdaptiveAvgPool>(out, {x}, H, W);
  return out;
}

}  // namespace xgrad
