// Comparisons: bool tensors (true where the relation holds), between two tensors (promoted as
// arithmetic is, broadcasting) or a tensor and a number on either side. Piecewise constant: their
// derivative is 0 almost everywhere, so they are constants, never recorded. NaN compares false
// (ne: true), as IEEE and PyTorch. sign: -1, 0 or 1 in x's dtype (0 at x = 0 and for NaN).
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
enum class Relation { gt, ge, lt, le, eq, ne };

template <class T>
bool holds(Relation r, T x, T y) {
  switch (r) {
    case Relation::gt: return x > y;
    case Relation::ge: return x >= y;
    case Relation::lt: return x < y;
    case Relation::le: return x <= y;
    case Relation::eq: return x == y;
    case Relation::ne: return x != y;
  }
  return false;
}

// The relation with its operands swapped: s < x is x > s.
Relation mirrored(Relation r) {
  switch (r) {
    case Relation::gt: return Relation::lt;
    case Relation::ge: return Relation::le;
    case Relation::lt: return Relation::gt;
    case Relation::le: return Relation::ge;
    default: return r;
  }
}

template <Relation R>
Tensor compare(const char* op, const Tensor& a, const Tensor& b) {
  const ProfileScope profiled(op);
  const Dtype r = detail::promote_types(op, a.dtype(), b.dtype());
  const Tensor x = detail::convert(a, r), y = detail::convert(b, r);
  return detail::dispatch_all(r, [&](auto zero) {
    using T = decltype(zero);
    return detail::zip_as<T, bool>(op, x, y,
                                   [](T p, T q) { return holds(R, p, q); });
  });
}

// x (relation) s for every element: in x's dtype when it is floating; exactly, in int64, for an
// integer x and an integral s; in double for an integer x and a floating s.
Tensor compare(const char* op, Relation relation, const Tensor& x, const Scalar& s) {
  const ProfileScope profiled(op);
  return detail::dispatch_all(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<bool> out = detail::empty<bool>(x.shape());
    bool* dst = out.data();
    if constexpr (std::is_floating_point_v<T>) {
      const T v = static_cast<T>(s.value());
      detail::for_each_value<T>(x, [&](std::size_t i, T a) { dst[i] = holds<T>(relation, a, v); });
    } else if (s.is_integral()) {
      const auto v = static_cast<std::int64_t>(s.value());
      detail::for_each_value<T>(x, [&](std::size_t i, T a) {
        dst[i] = holds<std::int64_t>(relation, static_cast<std::int64_t>(a), v);
      });
    } else {
      const double v = s.value();
      detail::for_each_value<T>(x, [&](std::size_t i, T a) {
        dst[i] = holds<double>(relation, static_cast<double>(a), v);
      });
    }
    return Tensor(std::move(out));
  });
}
}  // namespace

Tensor gt(const Tensor& a, const Tensor& b) { return compare<Relation::gt>("gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare<Relation::ge>("ge", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare<Relation::lt>("lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare<Relation::le>("le", a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare<Relation::eq>("eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare<Relation::ne>("ne", a, b); }
Tensor gt(const Tensor& a, Scalar b) { return compare("gt", Relation::gt, a, b); }
Tensor ge(const Tensor& a, Scalar b) { return compare("ge", Relation::ge, a, b); }
Tensor lt(const Tensor& a, Scalar b) { return compare("lt", Relation::lt, a, b); }
Tensor le(const Tensor& a, Scalar b) { return compare("le", Relation::le, a, b); }
Tensor eq(const Tensor& a, Scalar b) { return compare("eq", Relation::eq, a, b); }
Tensor ne(const Tensor& a, Scalar b) { return compare("ne", Relation::ne, a, b); }

Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator>(const Tensor& a, Scalar b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, Scalar b) { return ge(a, b); }
Tensor operator<(const Tensor& a, Scalar b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, Scalar b) { return le(a, b); }
Tensor operator==(const Tensor& a, Scalar b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, Scalar b) { return ne(a, b); }
Tensor operator>(Scalar a, const Tensor& b) { return compare("gt", mirrored(Relation::gt), b, a); }
Tensor operator>=(Scalar a, const Tensor& b) { return compare("ge", mirrored(Relation::ge), b, a); }
Tensor operator<(Scalar a, const Tensor& b) { return compare("lt", mirrored(Relation::lt), b, a); }
Tensor operator<=(Scalar a, const Tensor& b) { return compare("le", mirrored(Relation::le), b, a); }
Tensor operator==(Scalar a, const Tensor& b) { return eq(b, a); }
Tensor operator!=(Scalar a, const Tensor& b) { return ne(b, a); }

Tensor sign(const Tensor& x) {
  const ProfileScope profiled("sign");
  return detail::map(x, [](auto v) { return decltype(v)((v > 0) - (v < 0)); });
}

}  // namespace xgrad
