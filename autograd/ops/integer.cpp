// The integer kernels of arithmetic: a + b, a - b, a * b and rounded division for int64, int32
// and uint8 tensors (bool arithmetic counts as int64). Constants: integer tensors never require
// grad, so nothing here is recorded. The floating ops (add.cpp, sub.cpp, ...) send their integer
// cases here, so that their float kernels stay instantiated for float and double alone.
#include <type_traits>

#include "autograd/detail/kernels.hpp"

namespace xgrad::detail {

Dtype arithmetic_type(const char* op, Dtype a, Dtype b) {
  const Dtype r = promote_types(op, a, b);
  return r == Dtype::bool_ ? Dtype::int64 : r;
}

Dtype arithmetic_type(Dtype a, const Scalar& b) {
  if (is_floating_point(a)) return a;
  if (!b.is_integral()) return Dtype::float32;
  return a == Dtype::bool_ ? Dtype::int64 : a;
}

namespace {
// x op y in T, wrapping around on overflow (computed in the unsigned type, where C++ defines it).
template <class T>
T wrap(IntegerOp kind, T x, T y) {
  using U = std::make_unsigned_t<T>;
  const U ux = static_cast<U>(x), uy = static_cast<U>(y);
  switch (kind) {
    case IntegerOp::add: return static_cast<T>(static_cast<U>(ux + uy));
    case IntegerOp::sub: return static_cast<T>(static_cast<U>(ux - uy));
    case IntegerOp::mul: return static_cast<T>(static_cast<U>(ux * uy));
    case IntegerOp::div_trunc:
    case IntegerOp::div_floor: break;
  }
  if constexpr (std::is_signed_v<T>) {
    if (x == std::numeric_limits<T>::min() && y == T{-1}) return x;  // wraps, as -min does
    const T q = static_cast<T>(x / y);
    if (kind == IntegerOp::div_floor && (x % y != 0) && ((x < 0) != (y < 0)))
      return static_cast<T>(q - 1);
    return q;
  } else {
    return static_cast<T>(x / y);
  }
}
}  // namespace

Tensor integer_arithmetic(const char* op, IntegerOp kind, const Tensor& a, const Tensor& b) {
  const Dtype r = arithmetic_type(op, a.dtype(), b.dtype());
  const Tensor x = convert(a, r), y = convert(b, r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    if (kind == IntegerOp::div_trunc || kind == IntegerOp::div_floor) {
      const xt::xarray<T>& d = detail::values<T>(y);
      for (std::size_t i = 0; i < d.size(); ++i)
        if (d.data()[i] == 0)
          throw ValueError(std::string(op) + ": integer division by zero (the divisor of dtype " +
                           std::string(dtype_name(r)) + " has a 0 at flat position " +
                           std::to_string(i) + ")");
    }
    return zip_as<T, T>(op, x, y,
                        [kind](T p, T q) { return wrap<T>(kind, p, q); });
  };
  switch (r) {
    case Dtype::int64: return run(std::int64_t{});
    case Dtype::int32: return run(std::int32_t{});
    case Dtype::uint8: return run(std::uint8_t{});
    default: break;
  }
  throw DtypeError(std::string(op) + ": integer arithmetic on " + std::string(dtype_name(r)));
}

Tensor integer_sum_to(const Tensor& x, const Shape& shape) {
  const Tensor wide = convert(x, Dtype::int64);
  const std::int64_t* px = detail::values<std::int64_t>(wide).data();
  std::vector<std::uint64_t> acc(product(shape), 0);  // unsigned: wraps where int64 would not
  for_each_broadcast<1>(x.shape(), {broadcast_strides(shape, x.shape())},
                        [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                          acc[at[0]] += static_cast<std::uint64_t>(px[i]);
                        });
  xt::xarray<std::int64_t> out = empty<std::int64_t>(shape);
  for (std::size_t i = 0; i < acc.size(); ++i) out.data()[i] = static_cast<std::int64_t>(acc[i]);
  return Tensor(std::move(out));
}

}  // namespace xgrad::detail
