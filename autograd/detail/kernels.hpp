#pragma once
// Private helpers for op files: dtype dispatch, argument checks, and the loops that every
// elementwise op shares. Included by .cpp files only.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "autograd/detail/forward.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profiler.hpp"

namespace xgrad::detail {

// DtypeError naming the running op (current_op()): it needs float32 or float64, got `dtype`.
[[noreturn]] void not_floating(Dtype dtype);
// The same naming `op`; check_floating throws it unless x is float32 or float64.
[[noreturn]] void not_floating(const char* op, Dtype dtype);
void check_floating(const char* op, const Tensor& x);

// Calls f(T{}) with T the C++ type of a floating `dtype` (float, double): the kernels of the
// differentiable ops. An integer or bool tensor: DtypeError naming the op.
template <class F>
decltype(auto) dispatch(Dtype dtype, F&& f) {
  if (dtype == Dtype::float32) return f(float{});
  if (dtype != Dtype::float64) not_floating(dtype);
  return f(double{});
}

// Calls f(T{}) with T any of the six element types: for the few kernels that make sense on all
// of them (comparison, selection, reductions). Each use instantiates f six times: prefer
// dispatch_bytes for ops that only move elements.
template <class F>
decltype(auto) dispatch_all(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::float64: return f(double{});
    case Dtype::int64: return f(std::int64_t{});
    case Dtype::int32: return f(std::int32_t{});
    case Dtype::uint8: return f(std::uint8_t{});
    case Dtype::bool_: return f(bool{});
    case Dtype::float32: break;
  }
  return f(float{});
}

// Calls f(T{}) with T the unsigned integer of the element's size (1, 4 or 8 bytes): ops that
// only move elements (reshape, permute, index_select, concat, gather) copy any dtype with three
// instantiations. Read and write through raw_data().
template <class F>
decltype(auto) dispatch_bytes(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::uint8:
    case Dtype::bool_: return f(std::uint8_t{});
    case Dtype::float32:
    case Dtype::int32: return f(std::uint32_t{});
    case Dtype::float64:
    case Dtype::int64: break;
  }
  return f(std::uint64_t{});
}

// A tensor of `dtype` and `shape`, its values not set: a kernel's output.
Tensor empty_tensor(Dtype dtype, const Shape& shape);
// The first element of x's values, whatever its dtype, for dispatch_bytes kernels. The mutable
// one is for an output just made by empty_tensor (it does not count as a change of version).
const void* raw_data(const Tensor& x);
void* raw_output(const Tensor& x);
// DtypeError: x read as `as`.
[[noreturn]] void wrong_dtype(const Tensor& x, Dtype as);

// x's elements in row-major order, as T (DtypeError unless x is of dtype T): read in place when
// x is contiguous (a view at its offset), else from a contiguous copy (Tensor::storage()). What
// kernels read.
template <class T>
const T* data(const Tensor& x) {
  if (x.dtype() != dtype_of<T>()) wrong_dtype(x, dtype_of<T>());
  return static_cast<const T*>(raw_data(x));
}
// x read in place, whatever its layout: its first element, and the stride of each axis of `out`
// (which x's shape broadcasts to; 0 along broadcast axes). Elementwise kernels and sums read a
// strided view so, without a copy.
template <class T>
struct Strided {
  const T* data;
  Shape strides;
};
const void* first_element(const Tensor& x);
Shape layout_strides(const Tensor& x, const Shape& out);
template <class T>
Strided<T> strided(const Tensor& x, const Shape& out) {
  if (x.dtype() != dtype_of<T>()) wrong_dtype(x, dtype_of<T>());
  return {static_cast<const T*>(first_element(x)), layout_strides(x, out)};
}

// x's values as one xarray of T: its storage, or for a view a contiguous copy. For kernels that
// need the array itself (xtensor expressions, a copy to start from); data<T>() copies less.
template <class T>
const xt::xarray<T>& values(const Tensor& x) {
  if (x.dtype() != dtype_of<T>()) wrong_dtype(x, dtype_of<T>());
  return std::get<xt::xarray<T>>(x.storage());
}

// dst's entries in `region` (dst of the region's input shape) += g (the region's shape), in
// place, float32 or float64: how the engine accumulates a slice's gradient.
void add_into_region(const Tensor& dst, const GradRegion& region, const Tensor& g);

// PyTorch's promotion of two dtypes: bool < uint8 < int32 < int64 < the floats, the larger one
// wins. float32 with float64: DtypeError naming op and to().
Dtype promote_types(const char* op, Dtype a, Dtype b);
// x's values as `dtype` (x itself when it has it): not recorded, for operands that never
// require grad (integer and bool ones).
Tensor convert(const Tensor& x, Dtype dtype);

template <class T>
xt::xarray<T> empty(const Shape& shape) {
  return xt::xarray<T>::from_shape(shape);
}

std::size_t normalize_axis(const char* op, std::ptrdiff_t axis, std::size_t rank);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
// The attention's scale: the one given (finite, any sign), or 1 / sqrt(d). ValueError naming op
// for NaN or inf.
double attention_scale(const char* op, std::optional<double> scale, std::size_t d);
void check_not_empty(const char* op, const Tensor& x);
// multi_head_attention (attention.cpp) takes the queries in blocks of kAttentionRows rows: one
// block's scores against every key stay in the caches between its products. What its backward
// reads: the probabilities, saved whole (B, H, T, T), or each row's log-sum-exp (B, H, T), from
// which it computes the block's probabilities again. automatic chooses by T (attention.cpp);
// tests and benchmarks set one; the call returns the setting it replaces.
inline constexpr std::size_t kAttentionRows = 64;
enum class AttentionSaves { automatic, probabilities, row_statistics };
AttentionSaves set_attention_saves(AttentionSaves saves);
// A reduction over `axes` of x that has something to reduce: ValueError naming op when one of
// them has length 0 (a max or a mean of nothing). Other axes may be empty: the result then is.
void check_reduced_not_empty(const char* op, const Tensor& x, const std::vector<std::size_t>& axes);
// Sizes computed from sizes (padded lengths, spans, counts): a + b and a * b, checked. ValueError
// naming op when the result passes 2^48 (the most entries a tensor holds): far below where a
// std::size_t wraps or a position times a stride leaves std::ptrdiff_t. Every size that a caller
// gives and an op adds or multiplies goes through these.
std::size_t size_add(const char* op, std::size_t a, std::size_t b);
std::size_t size_mul(const char* op, std::size_t a, std::size_t b);
// The product of shape's axes but its last `keep`: the row count of a (rows, ...) view. Counted,
// never -1 in a reshape, which a tensor with a 0 axis leaves undetermined.
std::ptrdiff_t leading_count(const Shape& shape, std::size_t keep);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Strides of a tensor of shape `in` read as broadcast to `out`: 0 along broadcast axes.
Shape broadcast_strides(const Shape& in, const Shape& out);
std::size_t product(const Shape& shape);

// Calls f(i, offsets) for each element i of `out` in row-major order, offsets[k] being the
// position of the matching element in input k, whose strides (from broadcast_strides) are given.
template <std::size_t N, class F>
void for_each_broadcast(const Shape& out, const std::array<Shape, N>& strides, F&& f) {
  const std::size_t total = product(out);
  if (total == 0) return;
  const std::size_t rank = out.size();
  if (rank == 0) return f(std::size_t{0}, std::array<std::size_t, N>{});
  const std::size_t inner = out[rank - 1];
  std::array<std::size_t, N> step{}, base{};
  for (std::size_t k = 0; k < N; ++k) step[k] = strides[k][rank - 1];
  Shape index(rank, 0);
  for (std::size_t i = 0; i < total; i += inner) {
    std::array<std::size_t, N> offsets = base;
    for (std::size_t j = 0; j < inner; ++j) {
      f(i + j, offsets);
      for (std::size_t k = 0; k < N; ++k) offsets[k] += step[k];
    }
    for (std::size_t d = rank - 1; d-- > 0;) {  // carry into the outer axes
      for (std::size_t k = 0; k < N; ++k) base[k] += strides[k][d];
      if (++index[d] < out[d]) break;
      for (std::size_t k = 0; k < N; ++k) base[k] -= strides[k][d] * out[d];
      index[d] = 0;
    }
  }
}

// f(i, x's element i in row-major order) for every element of x (of dtype T), read in place
// whatever x's layout: what elementwise kernels of any dtype walk.
template <class T, class F>
void for_each_value(const Tensor& x, F&& f) {
  if (x.is_contiguous()) {
    const T* src = data<T>(x);
    for (std::size_t i = 0, n = x.numel(); i < n; ++i) f(i, src[i]);
    return;
  }
  const Strided<T> s = strided<T>(x, x.shape());
  for_each_broadcast<1>(
      x.shape(), {s.strides},
      [&](std::size_t i, const std::array<std::size_t, 1>& at) { f(i, s.data[at[0]]); });
}

// out[i] = f(x[i]); f is generic over float and double.
template <class F>
Tensor map(const Tensor& x, F&& f) {
  return dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> out = empty<T>(x.shape());
    T* dst = out.data();
    if (!x.is_contiguous()) {  // a strided view, read in place
      const Strided<T> s = strided<T>(x, x.shape());
      for_each_broadcast<1>(x.shape(), {s.strides},
                            [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                              dst[i] = f(s.data[at[0]]);
                            });
      return Tensor(std::move(out));
    }
    const T* src = data<T>(x);
    parallel_for(out.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) dst[i] = f(src[i]);
    });
    return Tensor(std::move(out));
  });
}

// A normalization's statistics made again in ops from x over `axes` (recorded, so that what is made
// from them can be differentiated): xhat = (x - mean) s and s = 1 / sqrt(var + eps).
struct Standardized {
  Tensor xhat, invstd;
};
inline Standardized standardize_in_ops(const Tensor& x, const Axes& axes, double eps) {
  const Tensor invstd = pow(add(var(x, axes, true, 0.0), eps), -0.5);
  return {mul(sub(x, mean(x, axes, true)), invstd), invstd};
}
// The derivative of xhat with respect to x applied to v (xhat's JVP; it is its own transpose, so
// also the backward's dx from dxhat): s (v - mean(v) - xhat mean(v xhat)) over `axes`.
inline Tensor standardized_derivative(const Tensor& v, const Standardized& st, const Axes& axes) {
  return mul(st.invstd,
             sub(sub(v, mean(v, axes, true)), mul(st.xhat, mean(mul(v, st.xhat), axes, true))));
}

// Records a normalization's node (batch_norm, layer_norm) on x and on whichever of weight and
// bias are defined, saving x, the mean and 1 / sqrt(var + eps) it normalized with, and the weight.
// Returns the node, or null when nothing is recorded.
template <class N, class... Args>
N* record_normalization(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Tensor& mean, const Tensor& invstd, Args&&... args) {
  std::vector<const Tensor*> inputs = {&x};
  if (weight.defined()) inputs.push_back(&weight);
  if (bias.defined()) inputs.push_back(&bias);
  N* node = record_node<N>(out, inputs, std::forward<Args>(args)...);
  if (!node) return nullptr;
  if (weight.defined())
    node->save({x, mean, invstd, weight});
  else
    node->save({x, mean, invstd});
  return node;
}

// x[i] = e^x[i] and tanh(x[i]) in place: vectorized in float32 (vector_math.hpp), std:: in float64.
template <class T>
void exp_in_place(T* x, std::size_t n) {
  if constexpr (std::is_same_v<T, float>)
    vec::exp(x, n);
  else
    for (std::size_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
template <class T>
void tanh_in_place(T* x, std::size_t n) {
  if constexpr (std::is_same_v<T, float>)
    vec::tanh(x, n);
  else
    for (std::size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}

// Elements in one block of a loop that makes several passes (a vectorized function between a
// pass before it and one after): 8 KB of float32, so that every pass but the first reads from the
// L1 cache. Over whole arrays larger than the caches, each pass was one more trip to memory.
inline constexpr std::size_t kCacheBlock = 2048;

// body(b, e) over [begin, end) in consecutive blocks of at most kCacheBlock elements.
template <class Body>
void for_cache_blocks(std::size_t begin, std::size_t end, Body&& body) {
  for (std::size_t b = begin; b < end; b += kCacheBlock) body(b, std::min(end, b + kCacheBlock));
}

// out[i] = post(x[i], f(pre(x[i]))), f one of the vectorized float functions of
// vector_math.hpp (vec::exp, vec::tanh, vec::erf) run over cache blocks of the array (the values
// do not depend on the blocks: vector_math.hpp pads the tail); in float64, out[i] = scalar(x[i])
// (std:: functions). All generic lambdas.
template <class Pre, class Post, class Scalar>
Tensor map_vectorized(const Tensor& x, void (*f)(float*, std::size_t), Pre pre, Post post,
                      Scalar scalar) {
  if (x.dtype() != Dtype::float32) return map(x, scalar);
  const float* src = data<float>(x);
  xt::xarray<float> out = empty<float>(x.shape());
  float* dst = out.data();
  parallel_for(out.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
    for_cache_blocks(begin, end, [=](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) dst[i] = pre(src[i]);
      f(dst + b, e - b);
      for (std::size_t i = b; i < e; ++i) dst[i] = post(src[i], dst[i]);
    });
  });
  return Tensor(std::move(out));
}

// out[i] = f(x[i], y[i]) with broadcasting, x and y of element type T, out of R.
template <class T, class R, class F>
Tensor zip_as(const char* op, const Tensor& x, const Tensor& y, F&& f) {
  const bool flat = x.is_contiguous() && y.is_contiguous();  // else a strided view, read in place
  const std::size_t nx = x.numel(), ny = y.numel();
  if (flat && x.shape() == y.shape()) {
    const T* px = data<T>(x);
    const T* py = data<T>(y);
    xt::xarray<R> out = empty<R>(x.shape());
    R* po = out.data();
    parallel_for(nx, kParallelGrain, [=](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) po[i] = f(px[i], py[i]);
    });
    return Tensor(std::move(out));
  }
  const Shape shape = broadcast_shapes(op, x.shape(), y.shape());
  xt::xarray<R> out = empty<R>(shape);
  R* po = out.data();
  // A one-element operand on either side (z - 1, 1 - z): one flat loop, no index walk.
  if (flat && ny == 1 && nx == out.size()) {
    const T* px = data<T>(x);
    const T s = data<T>(y)[0];
    parallel_for(nx, kParallelGrain, [=](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) po[i] = f(px[i], s);
    });
    return Tensor(std::move(out));
  }
  if (flat && nx == 1 && ny == out.size()) {
    const T* py = data<T>(y);
    const T s = data<T>(x)[0];
    parallel_for(ny, kParallelGrain, [=](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) po[i] = f(s, py[i]);
    });
    return Tensor(std::move(out));
  }
  // Any other broadcast, and strided views: both operands walked by their strides.
  const Strided<T> sx = strided<T>(x, shape), sy = strided<T>(y, shape);
  for_each_broadcast<2>(shape, {sx.strides, sy.strides},
                        [&](std::size_t i, const std::array<std::size_t, 2>& at) {
                          po[i] = f(sx.data[at[0]], sy.data[at[1]]);
                        });
  return Tensor(std::move(out));
}

// out = f(a, b) elementwise with broadcasting, for the differentiable ops: float32 or float64,
// the same for both (DtypeError otherwise).
template <class F>
Tensor zip(const char* op, const Tensor& a, const Tensor& b, F&& f) {
  check_same_dtype(op, a, b);
  return dispatch(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    return zip_as<T, T>(op, a, b, f);
  });
}

// The dtype of add, sub and mul of a and b: promote_types, with bool counted as int64 (bool
// arithmetic gives int64).
Dtype arithmetic_type(const char* op, Dtype a, Dtype b);
// The same with a number: a floating tensor keeps its dtype; an integer one its own with an
// integral number (bool: int64), float32 with a floating one.
Dtype arithmetic_type(Dtype a, const Scalar& b);
// a + b, a - b, a * b (wrapping around on overflow, as PyTorch) and a / b rounded toward zero
// or toward -inf, for integer tensors of one dtype (int64, int32 or uint8); division by zero is
// a ValueError naming op (autograd/ops/integer.cpp).
enum class IntegerOp { add, sub, mul, div_trunc, div_floor };
Tensor integer_arithmetic(const char* op, IntegerOp kind, const Tensor& a, const Tensor& b);
// sum_to of an integer or bool tensor: int64 sums (wrapping, as PyTorch's).
Tensor integer_sum_to(const Tensor& x, const Shape& shape);

// 1 / (1 + e^-v), computed as e^v / (1 + e^v) for v < 0 so that e^-v never overflows.
template <class T>
T sigmoid_value(T v) {
  if (v >= 0) return T{1} / (T{1} + std::exp(-v));
  const T e = std::exp(v);
  return e / (T{1} + e);
}

// The activations that fuse into an op's output (Epilogue: linear's, batch_norm's), over n
// contiguous values. apply_epilogue: z = act(z) in place. epilogue_grad: out = g act'(z), written
// from y = act(z): relu [y > 0] (a NaN passes, as relu's), tanh 1 - y^2, sigmoid y (1 - y); one
// loop per activation with no branch inside, so that each vectorizes (a data-dependent branch on
// y > 0 cost more than the loop itself). float32's tanh and sigmoid are the vectorized values of
// the tanh and sigmoid ops, so that a fused op agrees with the op after it.
template <class T>
void apply_epilogue(Epilogue act, T* z, std::size_t n);
template <class T>
void epilogue_grad(Epilogue act, const T* y, const T* g, T* out, std::size_t n);
// g act'(z) from y in differentiable ops, for create_graph (the activation ops' own formulas).
Tensor epilogue_grad_recorded(Epilogue act, const Tensor& y, const Tensor& g);

// A rank-0 constant of x's dtype.
Tensor scalar_like(const Tensor& x, double value);

// Viewing x's shape around `axis` as (outer, length, inner), row-major: the layout every
// single-axis op (softmax, max, index_select, concat, gather) loops over.
struct AxisView {
  std::size_t outer = 1, length = 1, inner = 1;
};
AxisView axis_view(const Shape& shape, std::size_t axis);

// out = log_softmax(x) along the (outer, length, inner) view: x - m - log(sum e^(x - m)), m the
// line's maximum. softmax exponentiates it.
template <class T>
void log_softmax_lines(const T* x, T* out, const AxisView& v);

// Axes in range, sorted, none twice.
std::vector<std::size_t> normalize_axes(const char* op, const Axes& axes, std::size_t rank);
// `shape` without the (sorted) reduced axes, or with them set to 1 when keepdims.
Shape reduced_shape(const Shape& shape, const std::vector<std::size_t>& axes, bool keepdims);

// IndexError unless 0 <= index[k] < length for every k.
void check_indices(const char* op, std::span<const std::int64_t> index, std::size_t length);
// For gather and scatter_add: index must have x's rank and length on every axis but `axis`, and
// entries in range. Returns index's shape viewed around axis.
AxisView check_gather_index(const char* op, const Tensor& x, std::size_t axis,
                            const xt::xarray<std::int64_t>& index);
// The values of an index tensor (positions, labels, token ids): DtypeError naming op unless it
// is int64, as PyTorch's.
const xt::xarray<std::int64_t>& indices(const char* op, const Tensor& index);
// The (out_h, out_w) of a window sliding over an image (N, C, H, W), after unfold's checks of the
// shape and the window (errors name `op`).
std::array<std::size_t, 2> window_output(const char* op, const Shape& image, const Window2d& win);
// A pool's window (stride {0, 0}: the kernel's) after checking that x is (N, C, H, W) and the
// padding at most half the kernel, as PyTorch's.
Window2d pool_window(const char* op, const Tensor& x, const std::array<std::size_t, 2>& kernel,
                     std::array<std::size_t, 2> stride, const std::array<std::size_t, 2>& padding);

}  // namespace xgrad::detail

namespace xgrad::detail {
// A Shape as the signed sizes reshape() takes.
inline std::vector<std::ptrdiff_t> spec(const Shape& shape) { return {shape.begin(), shape.end()}; }
}  // namespace xgrad::detail

namespace xgrad::detail {
// Asks the CPU to bring the cache lines of `bytes` bytes from `address` on (a row far from the
// one being read) while the current one is worked on. Only a hint: an address past the end of
// a tensor is never read.
inline void prefetch_row(std::uintptr_t address, std::size_t bytes) {
  for (std::size_t at = 0; at < bytes; at += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(address + at));
}

// sum of f(p[i]) over a row, in T with eight running sums (so that the loop vectorizes and no
// chain of additions waits on the one before), then in double; row_sum2 of f(p[i], q[i]).
template <class T, class F>
double row_sum(const T* p, std::size_t n, F f) {
  T acc[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) acc[k] += f(p[i + k]);
  double total = 0;
  for (; i < n; ++i) total += double(f(p[i]));
  for (T a : acc) total += double(a);
  return total;
}
template <class T, class F>
double row_sum2(const T* p, const T* q, std::size_t n, F f) {
  T acc[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) acc[k] += f(p[i + k], q[i + k]);
  double total = 0;
  for (; i < n; ++i) total += double(f(p[i], q[i]));
  for (T a : acc) total += double(a);
  return total;
}

// batch_norm's backward sums over a row in one pass: sum(g) and sum(g (x - m)), each as row_sum
// and row_sum2 would give it (the same eight running sums, so the same bits).
struct RowSums {
  double g, gd;
};
template <class T>
RowSums row_sums(const T* g, const T* x, std::size_t n, T m) {
  T acc_g[8] = {}, acc_gd[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) {
      acc_g[k] += g[i + k];
      acc_gd[k] += g[i + k] * (x[i + k] - m);
    }
  RowSums total{0, 0};
  for (; i < n; ++i) {
    total.g += double(g[i]);
    total.gd += double(g[i] * (x[i] - m));
  }
  for (std::size_t k = 0; k < 8; ++k) {
    total.g += double(acc_g[k]);
    total.gd += double(acc_gd[k]);
  }
  return total;
}

}  // namespace xgrad::detail
