// adaptive_avg_pool2d: x (N, C, H, W) -> y (N, C, oh, ow), y[i, j] = the mean of x over the cell
//   rows r0(i) = floor(i H / oh) .. r1(i) = ceil((i + 1) H / oh) - 1, columns likewise (as torch's;
//   cells overlap when the sizes do not divide).
//   dx[r, c] = sum over the cells (i, j) holding (r, c) of g[i, j] / |cell (i, j)|: the adjoint A^T
//   of the linear map A that the forward is. Saves nothing (the input's shape).
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

// forward: y (planes, oh, ow) from x (planes, H, W); adjoint: x += A^T y, into a zeroed x.
// Planes per block of parallel_for: blocks of about kParallelGrain entries.
std::size_t planes_per_block(std::size_t area) {
  return std::max<std::size_t>(1, kParallelGrain / area);
}

template <class T>
void pool_plane(const T* x, T* y, std::size_t W, const Cells& rows, const Cells& cols) {
  for (std::size_t i = 0; i < rows.begin.size(); ++i)
    for (std::size_t j = 0; j < cols.begin.size(); ++j) {
      T s = 0;
      for (std::size_t r = rows.begin[i]; r < rows.end[i]; ++r)
        for (std::size_t c = cols.begin[j]; c < cols.end[j]; ++c) s += x[r * W + c];
      const auto count =
          static_cast<T>((rows.end[i] - rows.begin[i]) * (cols.end[j] - cols.begin[j]));
      y[i * cols.begin.size() + j] = s / count;
    }
}

template <class T>
void spread_plane(const T* g, T* dx, std::size_t W, const Cells& rows, const Cells& cols) {
  for (std::size_t i = 0; i < rows.begin.size(); ++i)
    for (std::size_t j = 0; j < cols.begin.size(); ++j) {
      const auto count =
          static_cast<T>((rows.end[i] - rows.begin[i]) * (cols.end[j] - cols.begin[j]));
      const T share = g[i * cols.begin.size() + j] / count;
      for (std::size_t r = rows.begin[i]; r < rows.end[i]; ++r)
        for (std::size_t c = cols.begin[j]; c < cols.end[j]; ++c) dx[r * W + c] += share;
    }
}

Tensor adjoint(const Tensor& g, std::size_t H, std::size_t W);

struct AdaptiveAvgPool final : Node {
  AdaptiveAvgPool(std::size_t H, std::size_t W) : H_(H), W_(W) {}
  std::string_view name() const override { return "adaptive_avg_pool2d"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = adjoint(g, H_, W_);
  }
  std::size_t H_, W_;
};

struct AdaptiveAvgPoolAdjoint final : Node {
  AdaptiveAvgPoolAdjoint(std::size_t oh, std::size_t ow) : oh_(oh), ow_(ow) {}
  std::string_view name() const override { return "adaptive_avg_pool2d_backward"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = adaptive_avg_pool2d(g, {oh_, ow_});
  }
  std::size_t oh_, ow_;
};

Tensor adjoint(const Tensor& g, std::size_t H, std::size_t W) {
  const ProfileScope profiled("adaptive_avg_pool2d_backward");
  const std::size_t N = g.size(0), C = g.size(1), oh = g.size(2), ow = g.size(3);
  const Cells rows = cells(H, oh), cols = cells(W, ow);
  Tensor out = detail::dispatch(g.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> dx = xt::zeros<T>({N, C, H, W});
    const T* pg = detail::data<T>(g);
    T* pdx = dx.data();
    parallel_for(N * C, planes_per_block(H * W), [=, &rows, &cols](std::size_t b, std::size_t e) {
      for (std::size_t p = b; p < e; ++p)
        spread_plane(pg + p * oh * ow, pdx + p * H * W, W, rows, cols);
    });
    return Tensor(std::move(dx));
  });
  record<AdaptiveAvgPoolAdjoint>(out, {g}, oh, ow);
  return out;
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<std::size_t, 2> output_size) {
  const ProfileScope profiled("adaptive_avg_pool2d");
  const char* op = "adaptive_avg_pool2d";
  if (x.dim() != 4)
    throw ShapeError(std::string(op) + ": needs a 4-D input (N, C, H, W), got " +
                     shape_str(x.shape()));
  const std::size_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const std::size_t oh = output_size[0], ow = output_size[1];
  if (oh == 0 || ow == 0 || H == 0 || W == 0)
    throw ValueError(std::string(op) + ": output size " + shape_str(output_size) + " and input " +
                     shape_str(x.shape()) + " must have no empty axis");
  // The cells' bounds are i H / oh: products that must not wrap; the output a size a tensor has.
  detail::size_mul(op, oh, H);
  detail::size_mul(op, ow, W);
  detail::size_mul(op, detail::size_mul(op, N, C), detail::size_mul(op, oh, ow));
  const Cells rows = cells(H, oh), cols = cells(W, ow);
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> y = detail::empty<T>({N, C, oh, ow});
    const T* px = detail::data<T>(x);
    T* py = y.data();
    parallel_for(N * C, planes_per_block(H * W), [=, &rows, &cols](std::size_t b, std::size_t e) {
      for (std::size_t p = b; p < e; ++p)
        pool_plane(px + p * H * W, py + p * oh * ow, W, rows, cols);
    });
    return Tensor(std::move(y));
  });
  record<AdaptiveAvgPool>(out, {x}, H, W);
  return out;
}

}  // namespace xgrad
