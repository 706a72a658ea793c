#include "autograd/verify.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "autograd/compare.hpp"
#include "autograd/detail/mistakes.hpp"
#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"

namespace xgrad {

namespace {
// A float64 tensor's values as one array (a view's: a contiguous copy); DtypeError otherwise.
const xt::xarray<double>& float64_values(const Tensor& t) {
  if (t.dtype() != kFloat64) (void)t.value<double>();  // throws, naming both dtypes
  return std::get<xt::xarray<double>>(t.storage());
}
}  // namespace

namespace {

double max_abs(const xt::xarray<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

// The derivative of the loss along entry j of parameter i: five-point central differences
// (error O(h^4)) at steps h and h/2, combined by Richardson extrapolation (error O(h^6)), which
// brings finite differences of smooth losses to about 1e-12.
double numeric_derivative(const TensorFn& loss, const std::vector<Tensor>& params, std::size_t i,
                          std::size_t j, double h) {
  NoGradGuard no_grad;
  std::vector<Tensor> moved = params;
  auto at = [&](double offset) {
    xt::xarray<double> value = float64_values(params[i]);
    value.data()[j] += offset;
    moved[i] = Tensor(std::move(value));
    return loss(moved).item();
  };
  auto five_point = [&](double s) {
    return (8 * (at(s) - at(-s)) - (at(2 * s) - at(-2 * s))) / (12 * s);
  };
  return (64 * five_point(h / 2) - five_point(h)) / 63;
}

// x as a short decimal: 0.5, 0.125, 3.
std::string short_number(double x) {
  std::ostringstream os;
  os << std::setprecision(6) << x;
  return os.str();
}

// "(a missing 1/N, N = 64)" and the like, for a constant factor truth = k claim.
std::string factor_hint(double k) {
  const double n = std::round(1 / k);
  if (n >= 2 && std::abs(1 / k - n) <= 1e-6 * n)
    return " (the claim is " + short_number(n) + " times too large: a missing 1/" +
           short_number(n) + ", as a mean over " + short_number(n) + " samples)";
  const double m = std::round(k);
  if (m >= 2 && std::abs(k - m) <= 1e-6 * m)
    return " (the claim is " + short_number(m) + " times too small)";
  return "";
}

// The search's mistakes in the report: each parameter it reproduces says so in its diagnosis.
void explain(VerifyReport& report, const detail::GraphRecorder& graph, const Tensor& value,
             const std::vector<Tensor>& params, const std::vector<Tensor>& claimed,
             const std::vector<Tensor>& tape, const VerifyOptions& o) {
  detail::MistakeQuestion q{graph, value, params, {}, claimed, {}, {}};
  for (std::size_t i = 0; i < params.size(); ++i) {
    q.names.push_back(report.parameters[i].name);
    q.truth.push_back(tape[i].defined() ? tape[i] : zeros_like(claimed[i]));
    q.wrong.push_back(!report.parameters[i].matches_tape);
  }
  detail::MistakeAnswer answer = detail::find_mistakes(q, o);
  report.mistake_candidates = answer.candidates;
  report.mistakes = std::move(answer.mistakes);
  for (ParameterVerdict& v : report.parameters)
    for (const Mistake& m : report.mistakes)
      if (std::find(m.explains.begin(), m.explains.end(), v.name) != m.explains.end()) {
        v.diagnosis = m.what.substr(0, m.what.find(':')) + ", at " + m.node + " (below)";
        break;
      }
}

}  // namespace

std::string diagnose_gradient(const Tensor& claimed_t, const Tensor& truth_t, double rtol) {
  const xt::xarray<double> c = cast(claimed_t.detach(), Dtype::float64).value<double>();
  const xt::xarray<double> t = cast(truth_t.detach(), Dtype::float64).value<double>();
  if (c.shape() != t.shape())
    throw ShapeError("diagnose_gradient: claimed " + shape_str(claimed_t.shape()) + " and truth " +
                     shape_str(truth_t.shape()) + "; expected equal shapes");
  const double cs = max_abs(c), ts = max_abs(t), scale = std::max(cs, ts);
  const auto near = [&](double a, double b) { return std::abs(a - b) <= rtol * scale; };
  const std::size_t n = c.size();
  bool agree = true;
  for (std::size_t i = 0; i < n && agree; ++i) agree = near(c.data()[i], t.data()[i]);
  if (agree) return "";
  if (cs == 0) return "zeros where the truth is not: the claim is all zeros";
  if (ts == 0) return "the truth is all zeros: the claim should be zero everywhere";
  // Zeros where the truth is not, the other entries right.
  std::size_t zeroed = 0;
  bool rest_agree = true;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = c.data()[i], b = t.data()[i];
    if (std::abs(a) <= rtol * scale && std::abs(b) > rtol * scale)
      ++zeroed;
    else
      rest_agree = rest_agree && near(a, b);
  }
  if (zeroed > 0 && rest_agree)
    return "zeros where the truth is not (" + std::to_string(zeroed) + " of " + std::to_string(n) +
           " entries), the others right";
  // Transposed (a square matrix; another shape would not have been accepted).
  if (c.dimension() == 2 && c.shape()[0] == c.shape()[1]) {
    const std::size_t d = c.shape()[0];
    bool transposed = true;
    for (std::size_t i = 0; i < d && transposed; ++i)
      for (std::size_t j = 0; j < d && transposed; ++j) transposed = near(c(j, i), t(i, j));
    if (transposed) return "transposed: the claim is the truth's transpose";
  }
  // Ratios truth / claim where the claim is not zero; where it is, the truth must be zero too.
  std::vector<double> ratio(n, std::nan(""));
  double lo = INFINITY, hi = -INFINITY;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = c.data()[i], b = t.data()[i];
    if (std::abs(a) <= rtol * scale) {
      if (std::abs(b) > rtol * scale) return "none of the known kinds";
      continue;
    }
    ratio[i] = b / a;
    lo = std::min(lo, ratio[i]);
    hi = std::max(hi, ratio[i]);
  }
  const double tol = 1e-6;
  if (hi - lo <= tol * std::max(1.0, std::abs(hi))) {
    const double k = (lo + hi) / 2;
    if (std::abs(k + 1) <= tol) return "the sign is flipped: truth = -claim";
    return "a constant factor: truth = " + short_number(k) + " x claim" + factor_hint(k);
  }
  // An entrywise factor, as a missing activation derivative sigma'(z) leaves.
  bool mask = true;
  for (double r : ratio)
    if (!std::isnan(r)) mask = mask && (std::abs(r) <= tol || std::abs(r - 1) <= tol);
  std::string kind;
  if (mask)
    kind = "an entrywise factor of 0 or 1: a missing mask, as relu'(z) = [z > 0]";
  else if (lo > -tol && hi <= 0.25 + tol)
    kind = "an entrywise factor in (0, 0.25]: as sigmoid'(z) = s (1 - s)";
  else if (lo > -tol && hi <= 1 + tol)
    kind = "an entrywise factor in (0, 1]: as tanh'(z) = 1 - tanh(z)^2";
  else
    return "none of the known kinds";
  // Constant along each row: one factor per output unit, as sigma' at the layer's z.
  if (c.dimension() == 2 && c.shape()[1] > 1) {
    const std::size_t rows = c.shape()[0], cols = c.shape()[1];
    bool per_row = true;
    for (std::size_t i = 0; i < rows && per_row; ++i) {
      double first = std::nan("");
      for (std::size_t j = 0; j < cols && per_row; ++j) {
        const double r = ratio[i * cols + j];
        if (std::isnan(r)) continue;
        if (std::isnan(first)) first = r;
        per_row = std::abs(r - first) <= tol * std::max(1.0, std::abs(first));
      }
    }
    if (per_row) kind += ", the same along each row (one factor per output unit)";
  }
  return kind + ": the activation's derivative missing from the chain rule?";
}

const ParameterVerdict* VerifyReport::first_failure() const {
  for (const ParameterVerdict& p : parameters)
    if (!p.matches_tape || !p.matches_numeric) return &p;
  return nullptr;
}

std::string VerifyReport::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const VerifyReport& r) {
  os << "hand-derived gradients: " << (r.passed ? "all agree" : "MISMATCH")
     << " (tape: rel error <= " << r.rtol << ", finite differences: <= " << r.numeric_rtol << ")\n";
  for (const ParameterVerdict& p : r.parameters) {
    os << "  " << std::left << std::setw(10) << p.name << " "
       << (p.matches_tape && p.matches_numeric ? "ok      " : "WRONG   ") << std::setprecision(3)
       << "vs tape " << p.rel_error << ", vs finite differences " << p.numeric_rel_error << " ("
       << p.numeric_entries << " entries)";
    if (!p.matches_tape || !p.matches_numeric)
      os << std::setprecision(12) << "\n    worst entry " << p.index << ": claimed " << p.claimed
         << ", tape " << p.tape << ", finite differences " << p.numeric << std::setprecision(3)
         << ", abs error " << p.abs_error;
    if (!p.diagnosis.empty()) os << "\n    looks like: " << p.diagnosis;
    os << "\n";
  }
  if (!r.mistakes.empty())
    os << (r.mistakes.size() == 1 && r.mistakes[0].unexplained.empty()
               ? "one mistake reproduces every claim"
               : "mistakes that reproduce some of the claims")
       << " (" << r.mistake_candidates << " candidates tried, each at one op of the graph):\n";
  for (const Mistake& m : r.mistakes) os << "  " << m.str() << "\n";
  return os;
}

VerifyReport verify_gradients(const TensorFn& loss,
                              const std::vector<std::pair<std::string, Tensor>>& parameters,
                              const std::vector<Tensor>& claimed, const VerifyOptions& o) {
  GradModeGuard recording(true);  // its own work needs the tape, even inside a NoGradGuard
  if (claimed.size() != parameters.size())
    throw ValueError("verify_gradients: " + std::to_string(claimed.size()) +
                     " claimed gradients for " + std::to_string(parameters.size()) + " parameters");
  std::vector<Tensor> params;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const auto& [name, p] = parameters[i];
    if (p.dtype() != Dtype::float64 || claimed[i].dtype() != Dtype::float64)
      throw DtypeError("verify_gradients: '" + name + "' must be float64, as its claimed gradient");
    if (claimed[i].shape() != p.shape())
      throw ShapeError("verify_gradients: the claimed gradient of '" + name + "' has shape " +
                       shape_str(claimed[i].shape()) + "; the parameter has shape " +
                       shape_str(p.shape()));
    params.push_back(p.detach().requires_grad_(true));
  }
  detail::GraphRecorder graph;  // the loss's graph with its values, for the mistake search
  Tensor value;
  {
    const detail::ProbeGuard recording_graph(o.find_mistakes ? &graph : nullptr);
    value = loss(params);
  }
  if (value.numel() != 1)
    throw ShapeError("verify_gradients: the loss has shape " + shape_str(value.shape()) +
                     "; expected one element");
  const std::vector<Tensor> tape = grad({value}, params, {}, o.find_mistakes, false, true);

  double overall_scale = 0;  // the largest gradient entry of any parameter
  for (std::size_t i = 0; i < params.size(); ++i) {
    overall_scale = std::max(overall_scale, max_abs(float64_values(claimed[i])));
    if (tape[i].defined())
      overall_scale = std::max(overall_scale, max_abs(float64_values(tape[i])));
  }
  VerifyReport report;
  report.rtol = o.rtol;
  report.numeric_rtol = o.numeric_rtol;
  Generator gen(o.seed);
  for (std::size_t i = 0; i < params.size(); ++i) {
    ParameterVerdict v;
    v.name = parameters[i].first;
    const xt::xarray<double>& c = float64_values(claimed[i]);
    const xt::xarray<double> t = tape[i].defined()
                                     ? float64_values(tape[i])
                                     : xt::xarray<double>(xt::zeros<double>(c.shape()));
    const WorstEntry w = worst_entry(c, t);
    const std::size_t worst = w.flat;
    // Entries compared numerically: all, or a sample that always includes the worst one.
    std::vector<std::size_t> entries(c.size());
    std::iota(entries.begin(), entries.end(), 0);
    if (entries.size() > o.max_numeric_entries) {
      std::shuffle(entries.begin(), entries.end(), gen.engine());
      entries.resize(o.max_numeric_entries);
      entries.push_back(worst);
    }
    double numeric_scale = overall_scale, numeric_err = 0, numeric_at_worst = 0;
    for (std::size_t j : entries) {
      const double n = numeric_derivative(loss, params, i, j, o.step);
      numeric_scale = std::max(numeric_scale, std::abs(n));
      numeric_err = std::max(numeric_err, std::abs(c.data()[j] - n));
      if (j == worst) numeric_at_worst = n;
    }
    v.numeric_entries = entries.size();
    v.index = index_str(worst, claimed[i].shape());
    v.claimed = w.a;
    v.tape = w.b;
    v.numeric = numeric_at_worst;
    v.abs_error = w.abs_error;
    v.rel_error = w.rel_error;
    v.numeric_abs_error = numeric_err;
    v.numeric_rel_error = numeric_scale > 0 ? numeric_err / numeric_scale : 0.0;
    v.matches_tape = v.rel_error <= o.rtol;
    v.matches_numeric = v.numeric_rel_error <= o.numeric_rtol;
    if (!v.matches_tape)
      v.diagnosis = diagnose_gradient(claimed[i], Tensor(t), std::max(o.rtol, 1e-9));
    report.passed = report.passed && v.matches_tape && v.matches_numeric;
    report.parameters.push_back(std::move(v));
  }
  if (o.find_mistakes && !report.passed) explain(report, graph, value, params, claimed, tape, o);
  return report;
}

}  // namespace xgrad
