#include "autograd/detail/kernels.hpp"
#include "autograd/detail/view.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <variant>

namespace xgrad::detail {

std::size_t normalize_axis(const char* op, std::ptrdiff_t axis, std::size_t rank) {
  const auto r = static_cast<std::ptrdiff_t>(rank);
  if (axis < -r || axis >= r)
    throw IndexError(std::string(op) + ": axis " + std::to_string(axis) +
                     " is out of range for a tensor of rank " + std::to_string(rank) +
                     (rank == 0 ? std::string(" (a 0-d tensor has no axis: reshape it to {1} first)")
                                : " (expected " + std::to_string(-r) + " <= axis < " +
                                      std::to_string(r) + ")"));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw DtypeError(std::string(op) + ": operands have different dtypes, " +
                     std::string(dtype_name(a.dtype())) + " and " +
                     std::string(dtype_name(b.dtype())) + "; convert one with to()");
}

void not_floating(const char* op, Dtype dtype) {
  throw DtypeError(std::string(op) + ": needs a floating-point tensor (float32 or float64), got " +
                   std::string(dtype_name(dtype)) + "; convert it with to(kFloat32)");
}

void not_floating(Dtype dtype) {
  const std::string op(current_op().empty() ? std::string_view("this op") : current_op());
  not_floating(op.c_str(), dtype);
}

void check_floating(const char* op, const Tensor& x) {
  if (!is_floating_point(x.dtype())) not_floating(op, x.dtype());
}

Tensor empty_tensor(Dtype dtype, const Shape& shape) {
  return dispatch_all(dtype, [&](auto zero) { return Tensor(empty<decltype(zero)>(shape)); });
}

const void* raw_data(const Tensor& x) {
  const TensorImpl& impl = *x.impl();
  if (impl.view && is_contiguous(impl.view->shape, impl.view->strides)) return first_element(x);
  return std::visit([](const auto& a) -> const void* { return a.data(); }, x.storage());
}

const void* first_element(const Tensor& x) {
  const TensorImpl& impl = *x.impl();
  if (!impl.view)
    return std::visit([](const auto& a) -> const void* { return a.data(); }, plain(*impl.value));
  const Layout l{impl.view->shape, impl.view->strides, impl.view->offset};
  return std::visit(
      [&](const auto& a) -> const void* {
        if (extent(l) > a.size()) (void)x.storage();  // throws: the base's values were replaced
        return a.data() + l.offset;
      },
      plain(*impl.value));
}

Shape layout_strides(const Tensor& x, const Shape& out) {
  const Layout l = layout(x);
  Shape strides(out.size(), 0);
  const std::size_t lead = out.size() - l.shape.size();
  for (std::size_t i = 0; i < l.shape.size(); ++i)
    if (l.shape[i] != 1) strides[lead + i] = l.strides[i];
  return strides;
}

void* raw_output(const Tensor& x) {
  return std::visit([](auto& a) -> void* { return a.data(); }, plain(*x.impl()->value));
}

void wrong_dtype(const Tensor& x, Dtype as) {
  throw DtypeError("the tensor is " + std::string(dtype_name(x.dtype())) + ", read as " +
                   std::string(dtype_name(as)));
}

namespace {
// The rank of a dtype in promotion order.
int promotion_rank(Dtype d) {
  switch (d) {
    case Dtype::bool_: return 0;
    case Dtype::uint8: return 1;
    case Dtype::int32: return 2;
    case Dtype::int64: return 3;
    case Dtype::float32:
    case Dtype::float64: break;
  }
  return 4;
}
}  // namespace

Dtype promote_types(const char* op, Dtype a, Dtype b) {
  if (a == b) return a;
  if (is_floating_point(a) && is_floating_point(b))
    throw DtypeError(std::string(op) + ": operands have different dtypes, " +
                     std::string(dtype_name(a)) + " and " + std::string(dtype_name(b)) +
                     "; convert one with to()");
  return promotion_rank(a) >= promotion_rank(b) ? a : b;
}

const xt::xarray<std::int64_t>& indices(const char* op, const Tensor& index) {
  if (!index.defined()) throw ValueError(std::string(op) + ": the index tensor is undefined");
  if (index.dtype() != Dtype::int64)
    throw DtypeError(std::string(op) + ": indices must be an int64 tensor, got " +
                     std::string(dtype_name(index.dtype())) + "; convert with to(kInt64)");
  return detail::values<std::int64_t>(index);
}

void add_into_region(const Tensor& dst, const GradRegion& region, const Tensor& g) {
  const AxisView v = axis_view(dst.shape(), region.axis);
  dispatch(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* d = dst.mutable_value<T>().data();
    const T* s = detail::data<T>(g);
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t k = 0; k < region.count; ++k) {
        T* row = d + (o * v.length + region.start + k * region.step) * v.inner;
        if (k == 0 && o + 1 < v.outer)  // the next row asked for now, not when it is reached
          prefetch_row(reinterpret_cast<std::uintptr_t>(row + v.length * v.inner),
                       v.inner * sizeof(T));
        const T* from = s + (o * region.count + k) * v.inner;
        for (std::size_t i = 0; i < v.inner; ++i) row[i] += from[i];
      }
  });
}

Tensor convert(const Tensor& x, Dtype dtype) { return x.dtype() == dtype ? x : cast(x, dtype); }

void check_not_empty(const char* op, const Tensor& x) {
  if (x.numel() == 0)
    throw ValueError(std::string(op) + ": needs a non-empty tensor, got shape " +
                     shape_str(x.shape()));
}

void check_reduced_not_empty(const char* op, const Tensor& x, const std::vector<std::size_t>& axes) {
  for (std::size_t a : axes)
    if (x.size(a) == 0)
      throw ValueError(std::string(op) + ": axis " + std::to_string(a) + " of shape " +
                       shape_str(x.shape()) + " is empty: nothing to reduce");
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                       " cannot be broadcast together (axis " + std::to_string(i) +
                       " of the result: " + std::to_string(da) + " vs " + std::to_string(db) +
                       "; lengths must be equal or 1)");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape strides(out.size(), 0);
  std::size_t stride = 1;
  for (std::size_t i = in.size(); i-- > 0;) {
    const std::size_t o = i + (out.size() - in.size());
    strides[o] = in[i] == 1 ? 0 : stride;
    stride *= in[i];
  }
  return strides;
}

std::size_t product(const Shape& shape) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

Tensor scalar_like(const Tensor& x, double value) { return scalar(value, {.dtype = x.dtype()}); }

AxisView axis_view(const Shape& shape, std::size_t axis) {
  AxisView v;
  for (std::size_t i = 0; i < axis; ++i) v.outer *= shape[i];
  v.length = shape[axis];
  for (std::size_t i = axis + 1; i < shape.size(); ++i) v.inner *= shape[i];
  return v;
}

void check_indices(const char* op, std::span<const std::int64_t> index, std::size_t length) {
  for (std::size_t k = 0; k < index.size(); ++k)
    if (index[k] < 0 || static_cast<std::size_t>(index[k]) >= length)
      throw IndexError(std::string(op) + ": index " + std::to_string(index[k]) + " (entry " +
                       std::to_string(k) + ") is out of range for an axis of length " +
                       std::to_string(length) + " (expected 0 <= index < " +
                       std::to_string(length) + ")");
}

// index must have x's rank and length on every axis but `axis`; its entries must be in range.
AxisView check_gather_index(const char* op, const Tensor& x, std::size_t axis,
                            const xt::xarray<std::int64_t>& index) {
  bool ok = index.dimension() == x.dim();
  for (std::size_t d = 0; ok && d < x.dim(); ++d) ok = d == axis || index.shape()[d] == x.size(d);
  if (!ok)
    throw ShapeError(std::string(op) + ": index has shape " + shape_str(index.shape()) +
                     "; expected the shape of x " + shape_str(x.shape()) +
                     " on every axis but axis " + std::to_string(axis));
  const std::size_t length = x.size(static_cast<std::ptrdiff_t>(axis));
  for (std::size_t k = 0; k < index.size(); ++k)
    if (index.data()[k] < 0 || static_cast<std::size_t>(index.data()[k]) >= length)
      throw IndexError(std::string(op) + ": index value " + std::to_string(index.data()[k]) +
                       " is out of range for axis " + std::to_string(axis) + " of length " +
                       std::to_string(length));
  return axis_view(index.shape(), axis);
}

template <class T>
void log_softmax_lines(const T* x, T* out, const AxisView& v) {
  for (std::size_t o = 0; o < v.outer; ++o)
    for (std::size_t i = 0; i < v.inner; ++i) {
      const T* line = x + o * v.length * v.inner + i;
      T* dst = out + o * v.length * v.inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (std::size_t k = 0; k < v.length; ++k) m = std::max(m, line[k * v.inner]);
      T s = 0;
      for (std::size_t k = 0; k < v.length; ++k) s += std::exp(line[k * v.inner] - m);
      // (x - m) - log s, never x - (m + log s): in float32 m + log s rounds to m once |m| is
      // large (1e8: every entry of [v, v, v, v] came out log-probability 0, softmax summing to 4).
      const T log_s = std::log(s);
      for (std::size_t k = 0; k < v.length; ++k)
        dst[k * v.inner] = (line[k * v.inner] - m) - log_s;
    }
}
template void log_softmax_lines<float>(const float*, float*, const AxisView&);
template void log_softmax_lines<double>(const double*, double*, const AxisView&);

namespace {
constexpr std::size_t kMaxSize = std::size_t{1} << 48;
[[noreturn]] void too_large(const char* op, std::size_t a, const char* sign, std::size_t b) {
  throw ValueError(std::string(op) + ": a size of " + std::to_string(a) + " " + sign + " " +
                   std::to_string(b) + " is larger than any tensor (at most 2^48 entries)");
}
}  // namespace

std::size_t size_add(const char* op, std::size_t a, std::size_t b) {
  if (a > kMaxSize || b > kMaxSize - a) too_large(op, a, "+", b);
  return a + b;
}

std::size_t size_mul(const char* op, std::size_t a, std::size_t b) {
  if (a > kMaxSize || b > kMaxSize || (a != 0 && b > kMaxSize / a)) too_large(op, a, "x", b);
  return a * b;
}

std::ptrdiff_t leading_count(const Shape& shape, std::size_t keep) {
  std::size_t n = 1;
  for (std::size_t d = 0; d + keep < shape.size(); ++d) n *= shape[d];
  return static_cast<std::ptrdiff_t>(n);
}

double attention_scale(const char* op, std::optional<double> scale, std::size_t d) {
  if (!scale) return 1 / std::sqrt(static_cast<double>(d));
  if (!std::isfinite(*scale))
    throw ValueError(std::string(op) + ": scale must be finite, got " + number_str(*scale) +
                     " (leave it unset for 1 / sqrt(" + std::to_string(d) + "))");
  return *scale;
}

std::vector<std::size_t> normalize_axes(const char* op, const Axes& axes, std::size_t rank) {
  std::vector<std::size_t> out;
  for (std::ptrdiff_t a : axes) out.push_back(normalize_axis(op, a, rank));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw ShapeError(std::string(op) + ": an axis is given twice");
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<std::size_t>& axes, bool keepdims) {
  Shape out;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), d);
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdims)
      out.push_back(1);
  }
  return out;
}

template <class T>
void apply_epilogue(Epilogue act, T* z, std::size_t n) {
  switch (act) {
    case Epilogue::relu:
      for (std::size_t i = 0; i < n; ++i) z[i] = (z[i] > 0) | (z[i] != z[i]) ? z[i] : T{0};
      break;
    case Epilogue::tanh:
      tanh_in_place(z, n);
      break;
    case Epilogue::sigmoid:
      if constexpr (std::is_same_v<T, float>) {
        for (std::size_t i = 0; i < n; ++i) z[i] = -z[i];
        vec::exp(z, n);
        for (std::size_t i = 0; i < n; ++i) z[i] = 1.0f / (1.0f + z[i]);
      } else {
        for (std::size_t i = 0; i < n; ++i) z[i] = sigmoid_value(z[i]);
      }
      break;
    case Epilogue::none:
      break;
  }
}

template <class T>
void epilogue_grad(Epilogue act, const T* y, const T* g, T* out, std::size_t n) {
  switch (act) {
    case Epilogue::relu:
      for (std::size_t i = 0; i < n; ++i) {  // both read, no ||: a select, not a branch
        const T v = y[i], d = g[i];
        out[i] = (v > 0) | (v != v) ? d : T{0};
      }
      break;
    case Epilogue::tanh:
      for (std::size_t i = 0; i < n; ++i) out[i] = g[i] * (T{1} - y[i] * y[i]);
      break;
    case Epilogue::sigmoid:
      for (std::size_t i = 0; i < n; ++i) out[i] = g[i] * (y[i] * (T{1} - y[i]));
      break;
    case Epilogue::none:
      std::copy(g, g + n, out);
      break;
  }
}

template void apply_epilogue<float>(Epilogue, float*, std::size_t);
template void apply_epilogue<double>(Epilogue, double*, std::size_t);
template void epilogue_grad<float>(Epilogue, const float*, const float*, float*, std::size_t);
template void epilogue_grad<double>(Epilogue, const double*, const double*, double*, std::size_t);

Tensor epilogue_grad_recorded(Epilogue act, const Tensor& y, const Tensor& g) {
  const Tensor one = scalar_like(y, 1.0);
  switch (act) {
    case Epilogue::relu:
      return where(y, g, scalar_like(g, 0.0));
    case Epilogue::tanh:
      return mul(g, sub(one, mul(y, y)));
    case Epilogue::sigmoid:
      return mul(g, mul(y, sub(one, y)));
    case Epilogue::none:
      break;
  }
  return g;
}

}  // namespace xgrad::detail
