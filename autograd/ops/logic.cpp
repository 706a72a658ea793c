// Logic on tensors: constants, never recorded.
//   logical_and / or / xor / not: bool tensors, any dtype read as non-zero = true.
//   &, |, ^, ~ (bitwise_*): bool and integer tensors (promoted), bitwise; floats refused.
//   any, all: whether some / every entry is non-zero, over all axes or one (bool).
//   count_nonzero: how many entries are non-zero (int64). nonzero: their positions, (n, rank)
//   int64, in row-major order, as torch.nonzero.
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
enum class Logic { and_, or_, xor_ };

template <class T>
T combine(Logic kind, T x, T y) {
  switch (kind) {
    case Logic::and_: return static_cast<T>(x & y);
    case Logic::or_: return static_cast<T>(x | y);
    case Logic::xor_: return static_cast<T>(x ^ y);
  }
  return x;
}

Tensor logical(const char* op, Logic kind, const Tensor& a, const Tensor& b) {
  const ProfileScope profiled(op);
  const Tensor x = detail::convert(a, Dtype::bool_), y = detail::convert(b, Dtype::bool_);
  return detail::zip_as<bool, bool>(op, x, y,
                                    [kind](bool p, bool q) { return combine(kind, p, q); });
}

Tensor bitwise(const char* op, Logic kind, const Tensor& a, const Tensor& b) {
  const ProfileScope profiled(op);
  const Dtype r = detail::promote_types(op, a.dtype(), b.dtype());
  if (is_floating_point(r))
    throw DtypeError(std::string(op) + ": needs bool or integer tensors, got " +
                     std::string(dtype_name(a.dtype())) + " and " +
                     std::string(dtype_name(b.dtype())) +
                     " (for truth values use logical_and / logical_or / logical_xor)");
  const Tensor x = detail::convert(a, r), y = detail::convert(b, r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    return detail::zip_as<T, T>(op, x, y,
                                [kind](T p, T q) { return combine(kind, p, q); });
  };
  switch (r) {
    case Dtype::bool_: return run(bool{});
    case Dtype::uint8: return run(std::uint8_t{});
    case Dtype::int32: return run(std::int32_t{});
    default: return run(std::int64_t{});
  }
}

// For every line along `axis` (all of x when axis is empty), f(count of non-zero, length).
template <class F>
Tensor count_lines(const char* op, const Tensor& x, std::optional<std::ptrdiff_t> axis,
                   bool keepdims, F&& f) {
  const ProfileScope profiled(op);
  const Tensor b = detail::convert(x, Dtype::bool_);
  const bool* p = detail::values<bool>(b).data();
  if (!axis) {
    std::size_t count = 0;
    for (std::size_t i = 0, n = b.numel(); i < n; ++i) count += p[i] ? 1 : 0;
    return f(count, b.numel(), Shape{});
  }
  const std::size_t ax = detail::normalize_axis(op, *axis, x.dim());
  const detail::AxisView v = detail::axis_view(x.shape(), ax);
  std::vector<std::size_t> counts(v.outer * v.inner, 0);
  for (std::size_t o = 0; o < v.outer; ++o)
    for (std::size_t k = 0; k < v.length; ++k)
      for (std::size_t i = 0; i < v.inner; ++i)
        counts[o * v.inner + i] += p[(o * v.length + k) * v.inner + i] ? 1 : 0;
  Shape shape = x.shape();
  if (keepdims)
    shape[ax] = 1;
  else
    shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(ax));
  return f(counts, v.length, shape);
}

// Counts as a tensor of type T, each mapped by g(count, length).
template <class T, class G>
auto counts_as(G g) {
  return [g](const auto& counts, std::size_t length, const Shape& shape) {
    xt::xarray<T> out = detail::empty<T>(shape);
    if constexpr (std::is_same_v<std::decay_t<decltype(counts)>, std::size_t>) {
      out.data()[0] = g(counts, length);
    } else {
      for (std::size_t i = 0; i < counts.size(); ++i) out.data()[i] = g(counts[i], length);
    }
    return Tensor(std::move(out));
  };
}
}  // namespace

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return logical("logical_and", Logic::and_, a, b);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return logical("logical_or", Logic::or_, a, b);
}
Tensor logical_xor(const Tensor& a, const Tensor& b) {
  return logical("logical_xor", Logic::xor_, a, b);
}
Tensor logical_not(const Tensor& x) {
  const ProfileScope profiled("logical_not");
  const Tensor b = detail::convert(x, Dtype::bool_);
  xt::xarray<bool> out = detail::empty<bool>(x.shape());
  const bool* p = detail::values<bool>(b).data();
  for (std::size_t i = 0; i < out.size(); ++i) out.data()[i] = !p[i];
  return Tensor(std::move(out));
}

Tensor bitwise_and(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_and", Logic::and_, a, b);
}
Tensor bitwise_or(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_or", Logic::or_, a, b);
}
Tensor bitwise_xor(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_xor", Logic::xor_, a, b);
}
Tensor bitwise_not(const Tensor& x) {
  const ProfileScope profiled("bitwise_not");
  if (x.dtype() == Dtype::bool_) return logical_not(x);
  if (is_floating_point(x.dtype()))
    throw DtypeError("bitwise_not: needs a bool or integer tensor, got " +
                     std::string(dtype_name(x.dtype())) + " (for truth values use logical_not)");
  // ~v = -1 - v for integers, the same bits in two's complement; uint8 wraps to 255 - v.
  return sub(-1, x);
}

Tensor operator&(const Tensor& a, const Tensor& b) { return bitwise_and(a, b); }
Tensor operator|(const Tensor& a, const Tensor& b) { return bitwise_or(a, b); }
Tensor operator^(const Tensor& a, const Tensor& b) { return bitwise_xor(a, b); }
Tensor operator~(const Tensor& x) { return bitwise_not(x); }

Tensor any(const Tensor& x) {
  return count_lines("any", x, std::nullopt, false,
                     counts_as<bool>([](std::size_t c, std::size_t) { return c > 0; }));
}
Tensor any(const Tensor& x, std::ptrdiff_t axis, bool keepdims) {
  return count_lines("any", x, axis, keepdims,
                     counts_as<bool>([](std::size_t c, std::size_t) { return c > 0; }));
}
Tensor all(const Tensor& x) {
  return count_lines("all", x, std::nullopt, false,
                     counts_as<bool>([](std::size_t c, std::size_t n) { return c == n; }));
}
Tensor all(const Tensor& x, std::ptrdiff_t axis, bool keepdims) {
  return count_lines("all", x, axis, keepdims,
                     counts_as<bool>([](std::size_t c, std::size_t n) { return c == n; }));
}
Tensor count_nonzero(const Tensor& x) {
  return count_lines("count_nonzero", x, std::nullopt, false,
                     counts_as<std::int64_t>([](std::size_t c, std::size_t) {
                       return static_cast<std::int64_t>(c);
                     }));
}
Tensor count_nonzero(const Tensor& x, std::ptrdiff_t axis) {
  return count_lines("count_nonzero", x, axis, false,
                     counts_as<std::int64_t>([](std::size_t c, std::size_t) {
                       return static_cast<std::int64_t>(c);
                     }));
}

Tensor nonzero(const Tensor& x) {
  const ProfileScope profiled("nonzero");
  const Tensor b = detail::convert(x, Dtype::bool_);
  const bool* p = detail::values<bool>(b).data();
  const std::size_t rank = x.dim(), n = x.numel();
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) count += p[i] ? 1 : 0;
  xt::xarray<std::int64_t> out = detail::empty<std::int64_t>({count, rank});
  std::int64_t* row = out.data();
  for (std::size_t i = 0; i < n; ++i) {
    if (!p[i]) continue;
    std::size_t flat = i;
    for (std::size_t d = rank; d-- > 0;) {
      row[d] = static_cast<std::int64_t>(flat % x.shape()[d]);
      flat /= x.shape()[d];
    }
    row += rank;
  }
  return Tensor(std::move(out));
}

}  // namespace xgrad
