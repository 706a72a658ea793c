// Newton-CG with Hessian-vector products (autograd/functional.hpp's hvp) against gradient descent,
// on a logistic regression with an L2 penalty, in float64:
//   loss(w) = mean_i(softplus(z_i) - y_i z_i) + lambda / 2 |w|^2,   z = X w,   y_i in {0, 1}
// on seeded synthetic data whose features have scales from 0.1 to 3 (a badly conditioned
// Hessian: what slows gradient descent and not Newton's method). Newton-CG solves H d = -g by
// conjugate gradients, each step of which is one hvp (the Hessian is never formed), then takes
// the largest step of 1, 1/2, 1/4, ... that lowers the loss enough (Armijo); gradient descent
// takes the same line search along -g. Both stop when |g| < the tolerance. Prints each method's
// iterations, gradients, Hessian-vector products, seconds, final loss and |g|; exits 1 if Newton
// does not reach the tolerance or the two disagree on the minimum.
//
//   newton [--samples 2000] [--features 50] [--lambda 1e-3] [--tolerance 1e-8]
//          [--max-descent-steps 20000]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/functional.hpp"
#include "autograd/ops.hpp"
#include "examples/common/cli.hpp"

using namespace xgrad;

namespace {

struct Problem {
  Tensor X, y;  // (n, d) features, (n) labels 0 or 1
  double lambda;
  Tensor loss(const Tensor& w) const {
    const Tensor z = reshape(mm(X, reshape(w, {-1, 1})), {-1});
    return add(mean(sub(softplus(z), mul(y, z))), mul(sum(mul(w, w)), 0.5 * lambda));
  }
};

Problem make_problem(std::size_t n, std::size_t d, double lambda) {
  Generator gen(7);
  const TensorOptions f64{.dtype = kFloat64};
  std::vector<double> scale(d);
  for (std::size_t j = 0; j < d; ++j)  // 0.1 to 3, geometrically
    scale[j] = 0.1 * std::pow(30.0, d > 1 ? double(j) / double(d - 1) : 0.0);
  const Tensor X = mul(randn({n, d}, f64, gen), from_vector(scale, {d}, f64));
  const Tensor truth = randn({d, 1}, f64, gen);
  const Tensor p = reshape(sigmoid(mm(X, truth)), {-1});
  const Tensor y = cast(lt(rand({n}, f64, gen), p), kFloat64);  // y = 1 with probability p
  return {X, y, lambda};
}

double norm(const Tensor& t) { return std::sqrt(sum(mul(t, t)).item<double>()); }
double dot(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item<double>(); }

struct Result {
  std::size_t iterations = 0, gradients = 0, hvps = 0;
  double seconds = 0, loss = 0, grad_norm = 0;
  Tensor w;
};

// The largest of t0, t0 / 2, ... with loss(w + t d) <= loss(w) + 1e-4 t <g, d> (Armijo).
double line_search(const Problem& P, const Tensor& w, double f, const Tensor& g, const Tensor& d,
                   double t0) {
  const double slope = dot(g, d);
  double t = t0;
  while (t > 1e-20 && P.loss(add(w, mul(d, t))).item<double>() > f + 1e-4 * t * slope) t /= 2;
  return t;
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Result newton_cg(const Problem& P, Tensor w, double tolerance) {
  const auto loss = [&](const Tensor& v) { return P.loss(v); };
  const auto start = Clock::now();
  Result r;
  for (;;) {
    const auto [f, g] = vjp(loss, w, scalar(1.0, {.dtype = kFloat64}));
    ++r.gradients;
    r.loss = f.item<double>();
    r.grad_norm = norm(g);
    if (r.grad_norm < tolerance || r.iterations == 100) break;
    // Conjugate gradients on H d = -g, to a residual of min(0.5, sqrt |g|) |g|.
    Tensor d = zeros_like(g), res = neg(g), p = res;
    double rr = dot(res, res);
    const double stop = std::min(0.5, std::sqrt(r.grad_norm)) * r.grad_norm;
    for (std::size_t k = 0; k < w.numel() && std::sqrt(rr) > stop; ++k) {
      const Tensor Hp = hvp(loss, w, p).second;
      ++r.hvps;
      const double alpha = rr / dot(p, Hp);
      d = add(d, mul(p, alpha));
      res = sub(res, mul(Hp, alpha));
      const double next = dot(res, res);
      p = add(res, mul(p, next / rr));
      rr = next;
    }
    w = add(w, mul(d, line_search(P, w, r.loss, g, d, 1.0)));
    ++r.iterations;
  }
  r.seconds = since(start);
  r.w = w;
  return r;
}

Result gradient_descent(const Problem& P, Tensor w, double tolerance, std::size_t max_steps) {
  const auto loss = [&](const Tensor& v) { return P.loss(v); };
  const auto start = Clock::now();
  Result r;
  double t = 1;
  for (;;) {
    const auto [f, g] = vjp(loss, w, scalar(1.0, {.dtype = kFloat64}));
    ++r.gradients;
    r.loss = f.item<double>();
    r.grad_norm = norm(g);
    if (r.grad_norm < tolerance || r.iterations == max_steps) break;
    t = line_search(P, w, r.loss, g, neg(g), 2 * t);  // start from twice the last step
    w = sub(w, mul(g, t));
    ++r.iterations;
  }
  r.seconds = since(start);
  r.w = w;
  return r;
}

void print(const char* method, const Result& r) {
  std::printf("%-18s %10zu %10zu %6zu %9.3f %20.15f %10.2e\n", method, r.iterations, r.gradients,
              r.hvps, r.seconds, r.loss, r.grad_norm);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t samples = 2000, features = 50, max_steps = 20000;
  double lambda = 1e-3, tolerance = 1e-8;
  CLI::App app{
      "Newton-CG with Hessian-vector products against gradient descent, on a logistic "
      "regression (float64)."};
  app.add_option("--samples", samples, "rows of the synthetic data")
      ->check(cli::count_up_to(1e6))
      ->capture_default_str();
  app.add_option("--features", features, "columns (the weights' length)")
      ->check(cli::count_up_to(1e4))
      ->capture_default_str();
  app.add_option("--lambda", lambda, "the L2 penalty")
      ->check(cli::positive())
      ->capture_default_str();
  app.add_option("--tolerance", tolerance, "stop when |gradient| is below this")
      ->check(cli::positive())
      ->capture_default_str();
  app.add_option("--max-descent-steps", max_steps, "gradient descent's limit")
      ->check(cli::count_up_to(1e7))
      ->capture_default_str();
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;

  const Problem P = make_problem(samples, features, lambda);
  std::printf(
      "logistic regression, %zu samples, %zu features scaled 0.1 to 3, lambda %g, "
      "float64; stop at |grad| < %g\n",
      samples, features, lambda, tolerance);
  std::printf("%-18s %10s %10s %6s %9s %20s %10s\n", "method", "iterations", "gradients", "hvps",
              "seconds", "loss", "|grad|");
  const Tensor w0 = zeros({features}, {.dtype = kFloat64});
  const Result newton = newton_cg(P, w0, tolerance);
  print("Newton-CG (hvp)", newton);
  const Result descent = gradient_descent(P, w0, tolerance, max_steps);
  print("gradient descent", descent);
  if (newton.grad_norm >= tolerance) {
    std::printf("Newton-CG did not reach the tolerance\n");
    return 1;
  }
  // Both at the same minimum: the loss is strongly convex (lambda > 0).
  const double gap = descent.loss - newton.loss;
  std::printf("loss(gradient descent) - loss(Newton-CG) = %.3g\n", gap);
  if (gap < -1e-12) {
    std::printf("gradient descent found a lower loss than Newton-CG: Newton-CG is wrong\n");
    return 1;
  }
  return 0;
}
