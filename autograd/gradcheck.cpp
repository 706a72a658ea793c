#include "autograd/gradcheck.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/functional.hpp"
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

// Flat double copy of a tensor's value (an undefined gradient reads as zeros of `like`).
std::vector<double> values(const Tensor& t, const Tensor& like) {
  if (!t.defined()) return std::vector<double>(like.numel(), 0.0);
  const auto& a = float64_values(t);
  return {a.begin(), a.end()};
}

Tensor with_value(const Tensor& like, const std::vector<double>& v) {
  xt::xarray<double> a = xt::xarray<double>::from_shape(like.shape());
  std::copy(v.begin(), v.end(), a.begin());
  return Tensor(std::move(a));
}

class Checker {
 public:
  Checker(const TensorFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& o)
      : f_(f), inputs_(inputs), o_(o) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].dtype() != Dtype::float64)
        throw DtypeError("gradcheck: input " + std::to_string(i) +
                         " is float32; gradients are checked in double precision (cast it)");
      if (inputs[i].requires_grad()) checked_.push_back(i);
    }
    if (checked_.empty()) throw ValueError("gradcheck: no input requires grad");
    report_.atol = o.atol;
    report_.rtol = o.rtol;
  }

  // Forward mode along random directions (jvpcheck).
  GradcheckReport forward() {
    report_.method = "random directions";
    const Tensor y = f_(inputs_);
    const TensorsFunction of_checked = [&](const std::vector<Tensor>& xs) {
      std::vector<Tensor> args = inputs_;
      for (std::size_t c = 0; c < checked_.size(); ++c) args[checked_[c]] = xs[c];
      return std::vector<Tensor>{f_(args)};
    };
    std::vector<Tensor> xs;
    for (std::size_t i : checked_) xs.push_back(inputs_[i]);
    Generator gen(o_.seed + 2);
    for (int p = 0; p < o_.projections; ++p) {
      std::vector<Tensor> us;
      std::vector<std::vector<double>> directions(inputs_.size());
      for (std::size_t i : checked_) {
        us.push_back(randn(inputs_[i].shape(), {.dtype = Dtype::float64}, gen));
        directions[i] = values(us.back(), inputs_[i]);
      }
      const std::vector<double> Ju = values(xgrad::jvp(of_checked, xs, us).second[0], y);
      const std::vector<double> plus = f_along(directions, o_.eps),
                                minus = f_along(directions, -o_.eps);
      const std::string direction = "direction " + std::to_string(p);
      for (std::size_t k = 0; k < Ju.size(); ++k)
        compare(Ju[k], (plus[k] - minus[k]) / (2 * o_.eps), checked_[0], direction,
                index_str(k, y.shape()), k);
      // <w, J u> against <J^T w, u>: the two modes agree.
      const Tensor w = randn(y.shape(), {.dtype = Dtype::float64}, gen);
      const std::vector<Tensor> Jtw = xgrad::vjp(of_checked, xs, {w}).second;
      const std::vector<double> wv = values(w, w);
      double forward = 0, reverse = 0;
      for (std::size_t k = 0; k < Ju.size(); ++k) forward += wv[k] * Ju[k];
      for (std::size_t c = 0; c < checked_.size(); ++c) {
        const std::vector<double> g = values(Jtw[c], xs[c]), u = values(us[c], xs[c]);
        for (std::size_t j = 0; j < g.size(); ++j) reverse += g[j] * u[j];
      }
      compare(forward, reverse, checked_[0], direction, "<w, J u> against <J^T w, u>");
    }
    return report_;
  }

  GradcheckReport run() {
    const Tensor y = f_(inputs_);
    if (y.dtype() != Dtype::float64)
      throw DtypeError("gradcheck: f returned a float32 tensor; it must compute in double");
    std::size_t in_total = 0;
    for (std::size_t i : checked_) in_total += inputs_[i].numel();
    if (y.numel() * in_total <= o_.max_full_entries)
      full(y);
    else
      projected(y);
    return report_;
  }

 private:
  // f at the inputs with input i replaced by x_i + step * direction (no graph recorded).
  std::vector<double> f_at(std::size_t i, const std::vector<double>& direction, double step) {
    std::vector<std::vector<double>> directions(inputs_.size());
    directions[i] = direction;
    return f_along(directions, step);
  }

  // f at the inputs each moved by step * its direction (an empty direction: not moved).
  std::vector<double> f_along(const std::vector<std::vector<double>>& directions, double step) {
    NoGradGuard no_grad;
    std::vector<Tensor> moved = inputs_;
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      if (directions[i].empty()) continue;
      std::vector<double> x = values(inputs_[i], inputs_[i]);
      for (std::size_t j = 0; j < x.size(); ++j) x[j] += step * directions[i][j];
      moved[i] = with_value(inputs_[i], x);
    }
    const Tensor y = f_(moved);
    return values(y, y);
  }

  // The analytic vector-Jacobian products v^T J for each checked input.
  std::vector<std::vector<double>> vjp(const Tensor& y, const Tensor& v) {
    std::vector<Tensor> wrt;
    for (std::size_t i : checked_) wrt.push_back(inputs_[i]);
    std::vector<std::vector<double>> out;
    if (!y.requires_grad()) {  // f does not depend on any input: J = 0
      for (const Tensor& t : wrt) out.emplace_back(t.numel(), 0.0);
      return out;
    }
    const std::vector<Tensor> g = grad({y}, wrt, {v}, true, false, true);
    for (std::size_t k = 0; k < wrt.size(); ++k) out.push_back(values(g[k], wrt[k]));
    return out;
  }

  void compare(double analytic, double numeric, std::size_t input, std::string in_index,
               std::string out_index, std::size_t out_entry = 0) {
    ++report_.compared;
    const double err = std::abs(analytic - numeric);
    const double tolerance = o_.atol + o_.rtol * std::abs(numeric);
    const double badness = std::isnan(err) ? INFINITY : err / tolerance;
    if (!(err <= tolerance)) report_.passed = false;
    if (report_.compared > 1 && !(badness > worst_)) return;
    worst_ = badness;
    report_.input = input;
    report_.input_index = std::move(in_index);
    report_.output_index = std::move(out_index);
    report_.output_entry = out_entry;
    report_.analytic = analytic;
    report_.numeric = numeric;
    report_.abs_error = err;
    const double scale = std::max(std::abs(analytic), std::abs(numeric));
    report_.rel_error = scale > 0 ? err / scale : 0.0;
  }

  void full(const Tensor& y) {
    report_.method = "full Jacobian";
    const std::size_t m = y.numel();
    std::vector<std::vector<std::vector<double>>> rows;  // rows[k][input][j] = dy_k / dx_j
    for (std::size_t k = 0; k < m; ++k) {
      std::vector<double> e(m, 0.0);
      e[k] = 1.0;
      rows.push_back(vjp(y, with_value(y, e)));
    }
    for (std::size_t c = 0; c < checked_.size(); ++c) {
      const std::size_t i = checked_[c];
      const std::size_t n = inputs_[i].numel();
      for (std::size_t j = 0; j < n; ++j) {
        std::vector<double> e(n, 0.0);
        e[j] = 1.0;
        const std::vector<double> plus = f_at(i, e, o_.eps), minus = f_at(i, e, -o_.eps);
        for (std::size_t k = 0; k < m; ++k)
          compare(rows[k][c][j], (plus[k] - minus[k]) / (2 * o_.eps), i,
                  index_str(j, inputs_[i].shape()), index_str(k, y.shape()), k);
      }
    }
  }

  void projected(const Tensor& y) {
    report_.method = "random projections";
    Generator gen(o_.seed);
    for (int p = 0; p < o_.projections; ++p) {
      const Tensor v = randn(y.shape(), {.dtype = Dtype::float64}, gen);
      const std::vector<std::vector<double>> g = vjp(y, v);
      const std::vector<double> vv = values(v, v);
      for (std::size_t c = 0; c < checked_.size(); ++c) {
        const std::size_t i = checked_[c];
        const std::vector<double> u =
            values(randn(inputs_[i].shape(), {.dtype = Dtype::float64}, gen), inputs_[i]);
        double analytic = 0, numeric = 0;
        for (std::size_t j = 0; j < u.size(); ++j) analytic += g[c][j] * u[j];
        const std::vector<double> plus = f_at(i, u, o_.eps), minus = f_at(i, u, -o_.eps);
        for (std::size_t k = 0; k < vv.size(); ++k)
          numeric += vv[k] * (plus[k] - minus[k]) / (2 * o_.eps);
        compare(analytic, numeric, i, "projection " + std::to_string(p), "v^T J u");
      }
    }
  }

  const TensorFn& f_;
  std::vector<Tensor> inputs_;
  GradcheckOptions o_;
  std::vector<std::size_t> checked_;
  GradcheckReport report_;
  double worst_ = 0;
};

}  // namespace

std::string GradcheckReport::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const GradcheckReport& r) {
  os << r.check << " " << (r.passed ? "passed" : "FAILED") << " (" << r.method << ", " << r.compared
     << " compared)\n";
  os << "  worst: input " << r.input << " " << r.input_index << " -> output " << r.output_index
     << "\n";
  os << std::setprecision(12) << "  analytic " << r.analytic << "\n  numeric  " << r.numeric
     << "\n";
  os << std::setprecision(3) << "  abs error " << r.abs_error << ", rel error " << r.rel_error
     << " (passes when abs error <= " << r.atol << " + " << r.rtol << " * |numeric|)\n";
  return os;
}

GradcheckReport gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  return Checker(f, inputs, options).run();
}

GradcheckReport jvpcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                         const GradcheckOptions& options) {
  GradcheckReport report = Checker(f, inputs, options).forward();
  report.check = "jvpcheck";
  return report;
}

GradcheckReport gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) checked.push_back(i);
  Shape out_shape;
  {
    NoGradGuard no_grad;
    out_shape = f(inputs).shape();
  }
  Generator gen(options.seed + 1);
  Tensor v = randn(out_shape, {.dtype = Dtype::float64, .requires_grad = true}, gen);
  std::vector<Tensor> extended = inputs;
  extended.push_back(v);
  const TensorFn first_derivative = [&](const std::vector<Tensor>& in) {
    // The finite-difference side calls this with plain copies under NoGradGuard; it must still
    // differentiate f, so grad mode is on here and the copies are made to require grad.
    GradModeGuard grad_mode(true);
    std::vector<Tensor> args(in.begin(), in.end() - 1);
    std::vector<Tensor> wrt;
    for (std::size_t i : checked) {
      if (!args[i].requires_grad()) args[i] = args[i].detach().requires_grad_(true);
      wrt.push_back(args[i]);
    }
    const Tensor y = f(args);
    std::vector<Tensor> parts;
    std::vector<Tensor> g;
    if (y.requires_grad()) g = grad({y}, wrt, {in.back()}, true, true, true);
    for (std::size_t k = 0; k < wrt.size(); ++k) {
      const Tensor gk = k < g.size() && g[k].defined() ? g[k] : zeros_like(wrt[k]);
      parts.push_back(reshape(gk, {-1}));
    }
    return concat(parts);
  };
  GradcheckReport report = gradcheck(first_derivative, extended, options);
  report.check = "gradgradcheck";
  // The output is the checked inputs' gradients, flattened one after another: name the input
  // and the entry (projections compare no single entry). The last input is v, the random
  // direction, not one of f's.
  if (report.method == "full Jacobian") {
    std::size_t flat = report.output_entry;
    for (std::size_t i : checked) {
      if (flat < inputs[i].numel()) {
        report.output_index =
            "d/d input " + std::to_string(i) + " " + index_str(flat, inputs[i].shape());
        break;
      }
      flat -= inputs[i].numel();
    }
  }
  if (report.input == inputs.size()) report.input_index += " (of v, the random direction)";
  return report;
}

}  // namespace xgrad
