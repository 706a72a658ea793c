// verify.hpp's checks of hand-derived Jacobians, Hessians and Hessian-vector products: the claim
// against the tape's (functional.hpp) and against finite differences, and, when wrong, what kind
// of mistake its values show.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "autograd/error.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "autograd/verify.hpp"

namespace xgrad {
namespace {

using Array = xt::xarray<double>;

// t's values as an (rows, cols) array of doubles.
Array matrix(const Tensor& t, std::size_t rows, std::size_t cols) {
  Array a = cast(t.detach(), Dtype::float64).value<double>();
  a.reshape({rows, cols});
  return a;
}

double max_abs(const Array& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

// |a - b| <= rtol of the larger's largest entry, everywhere.
bool near(const Array& a, const Array& b, double rtol = 1e-6) {
  const double scale = std::max(max_abs(a), max_abs(b));
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::abs(a.data()[i] - b.data()[i]) > rtol * scale) return false;
  return true;
}

void check_float64(const char* what, const Tensor& x) {
  if (!x.defined() || x.dtype() != Dtype::float64)
    throw DtypeError(std::string(what) + ": x is " +
                     (x.defined() ? std::string(dtype_name(x.dtype())) : "undefined") +
                     "; expected float64 (finite differences need it)");
}

void check_claim(const char* what, const Tensor& claimed, const Shape& expected,
                 const char* expected_as) {
  if (!claimed.defined() || claimed.shape() != expected)
    throw ShapeError(std::string(what) + ": the claim is " +
                     (claimed.defined() ? shape_str(claimed.shape()) : "undefined") +
                     "; expected " + shape_str(expected) + " (" + expected_as + ")");
}

Shape joined(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// d g(x) / d x by fourth-order central differences along `directions` (each of x's shape):
// (directions, g's entries), as columns per direction.
Array differences(const TensorFunction& g, const Tensor& x, const std::vector<Tensor>& directions,
                  double h) {
  Array out;
  for (std::size_t k = 0; k < directions.size(); ++k) {
    const auto at = [&](double s) {
      return cast(g(add(x, mul(directions[k], s * h))).detach(), Dtype::float64).value<double>();
    };
    const Array d = (at(-2) - 8.0 * at(-1) + 8.0 * at(1) - at(2)) / (12 * h);
    if (k == 0) out = xt::zeros<double>({directions.size(), d.size()});
    std::copy(d.begin(), d.end(), out.begin() + std::ptrdiff_t(k * d.size()));
  }
  return out;
}

// The unit vectors of x's entries.
std::vector<Tensor> unit_vectors(const Tensor& x) {
  std::vector<Tensor> es;
  for (std::size_t k = 0; k < x.numel(); ++k) {
    Array e = xt::zeros<double>({x.numel()});
    e(k) = 1;
    e.reshape(x.shape());
    es.emplace_back(std::move(e));
  }
  return es;
}

std::string index_str(std::size_t flat, const Shape& shape) {
  std::vector<std::size_t> at(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    at[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string s = "[";
  for (std::size_t d = 0; d < at.size(); ++d) s += (d ? ", " : "") + std::to_string(at[d]);
  return s + "]";
}

// The kinds a Jacobian or a Hessian adds to diagnose_gradient's, on (rows, cols) matrices.
std::string diagnose(const Array& C, const Array& T, bool hessian) {
  std::string kind = diagnose_gradient(Tensor(C), Tensor(T));
  if (kind != "none of the known kinds") return kind;
  if (C.shape()[0] != C.shape()[1]) return kind;
  const Array Ct = xt::transpose(C);
  if (!hessian && near(C, Array((T + xt::transpose(T)) / 2.0)))
    return "the symmetric part (J + J^T) / 2 taken for the Jacobian J";
  const Array S = (C + Ct) / 2.0;
  if (hessian && near(S, T / 2.0))
    return "half of the Hessian: one of the product rule's two terms (as A for the A + A^T of "
           "x^T A x); the claim's symmetric part is H / 2";
  if (hessian && !near(C, Ct)) return "not symmetric, as a Hessian is (H = H^T): " + kind;
  return kind;
}

struct Compared {
  DerivativeVerdict verdict;
  Array claim, truth;  // as matrices
};

Compared compare(const char* what, const Tensor& claimed, const Tensor& truth, const Array& numeric,
                 std::size_t rows, std::size_t cols, const VerifyOptions& options) {
  Compared c{{}, matrix(claimed, rows, cols), matrix(truth, rows, cols)};
  DerivativeVerdict& v = c.verdict;
  v.what = what;
  const double scale = std::max(max_abs(c.truth), 1e-300);
  std::size_t worst = 0;
  double worst_error = -1, numeric_error = 0;
  for (std::size_t i = 0; i < c.claim.size(); ++i) {
    const double e = std::abs(c.claim.data()[i] - c.truth.data()[i]);
    if (e > worst_error) {
      worst_error = e;
      worst = i;
    }
    numeric_error = std::max(numeric_error, std::abs(c.claim.data()[i] - numeric.data()[i]));
  }
  v.index = index_str(worst, claimed.shape());
  v.claimed = c.claim.data()[worst];
  v.tape = c.truth.data()[worst];
  v.numeric = numeric.data()[worst];
  v.rel_error = worst_error / scale;
  v.numeric_rel_error = numeric_error / scale;
  v.matches_tape = v.rel_error <= options.rtol;
  v.matches_numeric = v.numeric_rel_error <= options.numeric_rtol;
  return c;
}

DerivativeVerdict hessian_verdict(const char* what, const TensorFunction& f, const Tensor& x,
                                  const Tensor& claimed, const VerifyOptions& options,
                                  const Array* gauss_newton) {
  check_float64(what, x);
  check_claim(what, claimed, joined(x.shape(), x.shape()), "x.shape + x.shape");
  const std::size_t n = x.numel();
  const Tensor H = hessian(f, x);
  const auto gradient = [&](const Tensor& at) {
    return vjp(f, at, scalar(1.0, {.dtype = Dtype::float64})).second;
  };
  // Row k of the differences is d grad / d x_k: H's row k (H symmetric).
  const Array numeric = differences(gradient, x, unit_vectors(x), options.step);
  Compared c = compare("hessian", claimed, H, numeric, n, n, options);
  if (!c.verdict.matches_tape) {
    if (gauss_newton && near(c.claim, *gauss_newton) && !near(c.truth, *gauss_newton))
      c.verdict.diagnosis =
          "the Gauss-Newton part J^T H_loss J only: the model's own second derivatives "
          "(sum_k dloss/dz_k d^2 z_k / dx^2) left out";
    else
      c.verdict.diagnosis = diagnose(c.claim, c.truth, true);
  }
  return c.verdict;
}

}  // namespace

DerivativeVerdict verify_jacobian(const TensorFunction& f, const Tensor& x, const Tensor& claimed,
                                  const VerifyOptions& options) {
  check_float64("verify_jacobian", x);
  Tensor y;
  {
    const NoGradGuard plain;
    y = f(x.detach());
  }
  check_claim("verify_jacobian", claimed, joined(y.shape(), x.shape()), "f(x).shape + x.shape");
  const Tensor J = jacobian(f, x);
  const auto plain = [&](const Tensor& at) {
    const NoGradGuard no_tape;
    return f(at);
  };
  // The differences are (x's entries, f's entries): J transposed.
  const Array numeric =
      xt::transpose(differences(plain, x.detach(), unit_vectors(x), options.step));
  Compared c = compare("jacobian", claimed, J, numeric, y.numel(), x.numel(), options);
  if (!c.verdict.matches_tape) c.verdict.diagnosis = diagnose(c.claim, c.truth, false);
  return c.verdict;
}

DerivativeVerdict verify_hessian(const TensorFunction& f, const Tensor& x, const Tensor& claimed,
                                 const VerifyOptions& options) {
  return hessian_verdict("verify_hessian", f, x, claimed, options, nullptr);
}

DerivativeVerdict verify_hessian(const TensorFunction& model, const TensorFunction& loss,
                                 const Tensor& x, const Tensor& claimed,
                                 const VerifyOptions& options) {
  check_float64("verify_hessian", x);
  const auto whole = [&](const Tensor& at) { return loss(model(at)); };
  const Tensor z = [&] {
    const NoGradGuard plain;
    return model(x.detach());
  }();
  const std::size_t n = x.numel(), m = z.numel();
  const Array J = matrix(jacobian(model, x), m, n);
  const Array Hl = matrix(hessian(loss, z), m, m);
  Array gauss_newton = xt::zeros<double>({n, n});  // J^T Hl J
  for (std::size_t a = 0; a < m; ++a)
    for (std::size_t b = 0; b < m; ++b)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) gauss_newton(i, j) += J(a, i) * Hl(a, b) * J(b, j);
  return hessian_verdict("verify_hessian", whole, x, claimed, options, &gauss_newton);
}

DerivativeVerdict verify_hvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                             const Tensor& claimed, const VerifyOptions& options) {
  check_float64("verify_hvp", x);
  check_claim("verify_hvp", claimed, x.shape(), "x.shape");
  const Tensor Hv = hvp(f, x, v).second;
  const auto gradient = [&](const Tensor& at) {
    return vjp(f, at, scalar(1.0, {.dtype = Dtype::float64})).second;
  };
  const Array numeric = differences(gradient, x.detach(), {v.detach()}, options.step);
  Compared c = compare("hvp", claimed, Hv, numeric, 1, x.numel(), options);
  if (!c.verdict.matches_tape) c.verdict.diagnosis = diagnose_gradient(claimed, Hv);
  return c.verdict;
}

std::string DerivativeVerdict::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const DerivativeVerdict& v) {
  const bool ok = v.matches_tape && v.matches_numeric;
  os << "hand-derived " << v.what << ": " << (ok ? "agrees" : "WRONG") << std::setprecision(3)
     << " (vs tape " << v.rel_error << ", vs finite differences " << v.numeric_rel_error
     << ", relative to the largest entry)";
  if (!ok)
    os << std::setprecision(12) << "\n  worst entry " << v.index << ": claimed " << v.claimed
       << ", tape " << v.tape << ", finite differences " << v.numeric;
  if (!v.diagnosis.empty()) os << "\n  looks like: " << v.diagnosis;
  return os << std::setprecision(6);
}

}  // namespace xgrad
