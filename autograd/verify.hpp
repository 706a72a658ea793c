#pragma once
/// \file
/// Verifying hand-derived gradients: a student derives closed-form gradients on paper, computes
/// them, and asks whether they are right. verify_gradients compares them, parameter by parameter,
/// with the tape's gradients and with finite differences, and names the worst entry.
///
///   auto report = verify_gradients(loss_fn, {{"W1", W1}, {"b1", b1}}, {my_dW1, my_db1});
///   std::cout << report;   // per parameter: agrees or not, worst entry, the three values, and
///                          // what kind of mistake a wrong one looks like
///
/// A wrong claim is then explained by a search over the recorded graph of the loss: the gradients
/// are recomputed once per candidate mistake, each applied at one node (an activation's derivative
/// left out, taken at the wrong point or added where no activation is; a mean's 1/N left out or
/// doubled; a sign; a transpose; one path of a tensor used twice left out), and the candidate that
/// reproduces the claims is reported with the node, its layer and the gradient it changes
/// (VerifyReport::mistakes). At any batch size: it reproduces the claim, not a pattern in it.
///
/// Errors are relative, and measured against a gradient as a whole, so that entries that are
/// (nearly) zero do not make a right formula look wrong:
/// - vs the tape: |claimed - tape| at the worst entry over the largest |gradient| entry of that
///   parameter (the tape is exact to rounding, so this holds each parameter to full precision);
/// - vs finite differences: the largest |claimed - numeric| over the largest |gradient| entry of
///   all parameters. Finite differences are accurate to an absolute amount set by the loss's
///   rounding, so a parameter whose gradients are all tiny cannot be held to a tighter relative
///   bound than the loss allows.

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/functional.hpp"
#include "xgrad/autograd/gradcheck.hpp"

namespace xgrad {

struct VerifyOptions {
  double rtol = 1e-10;         ///< claimed vs tape
  double numeric_rtol = 1e-9;  ///< claimed vs finite differences
  /// Finite-difference step: five-point stencils at step and step / 2, extrapolated (error
  /// O(step^6)). A kink of relu within 2 * step of a pre-activation spoils the numeric value.
  double step = 1e-3;
  std::size_t max_numeric_entries = 2000;  ///< per parameter; a random sample beyond that
  std::uint64_t seed = 0;
  /// Explain wrong claims by the mistake search (one backward sweep per candidate).
  bool find_mistakes = true;
  std::size_t max_mistake_candidates = 2000;  ///< the ones nearest the loss are tried first
  double mistake_rtol = 1e-8;  ///< a candidate reproduces a claim to this (relative, as rtol)
};

/// The kinds of mistake the search tries, each at one node of the loss's graph.
enum class MistakeKind {
  derivative_missing,  ///< an activation's sigma'(z) left out of the chain rule
  /// sigma'(z) left out of the gradient passed to the layer below only (delta_l = W^T delta_{l+1}
  /// with delta = dL/do, one symbol for dL/do and dL/dz); the layer's own dW, db keep it
  derivative_missing_below,
  derivative_at_output,   ///< sigma'(a) at the activation's output a = sigma(z) for sigma'(z)
  value_for_derivative,   ///< sigma(z) in place of sigma'(z)
  derivative_extra,       ///< sigma'(t) multiplied in at a tensor t no activation is applied to
  mean_missing,           ///< a mean's 1/N left out: N times too large from there on
  mean_extra,             ///< a mean's 1/N applied twice
  sign,                   ///< the sign of the gradient one op sends to one input flipped
  transposed,             ///< the gradient one op sends to one input transposed
  weight_not_transposed,  ///< linear's input gradient through W^T where W belongs (column form:
                          ///< W delta for W^T delta)
  path_omitted,           ///< of a tensor used by two ops (a residual, a tied weight), the
                          ///< gradient through one of them left out
};
/// "derivative_missing" and so on.
std::string_view mistake_kind_name(MistakeKind kind);

/// One mistake at one node that reproduces claimed gradients.
struct Mistake {
  MistakeKind kind = MistakeKind::sign;
  std::string what;      ///< the mistake in words, with the formula
  std::string node;      ///< the op it is at, numbered in forward order: "tanh #2"
  std::string layer;     ///< the parameters of that op's layer: "W_2, b_2" ("" when none)
  std::string quantity;  ///< the gradient it changes: "dL/dz at the input of tanh #2, [6, 4]"
  std::vector<std::string> explains;     ///< wrong claims it reproduces
  std::vector<std::string> unexplained;  ///< wrong claims it does not
  std::vector<std::string> kept;         ///< right claims it leaves right
  double max_rel_difference = 0;         ///< between the recomputed gradients and those claims
  /// Other single mistakes that give the same gradients (where the claims cannot tell them apart).
  std::vector<std::string> equivalent;
  std::string str() const;  ///< what, where and the evidence, on a few lines
};

struct ParameterVerdict {
  std::string name;
  bool matches_tape = true;
  bool matches_numeric = true;
  /// The entry where the claimed gradient is furthest from the tape's:
  std::string index;
  double claimed = 0, tape = 0, numeric = 0;
  double abs_error = 0, rel_error = 0;                  ///< claimed vs tape, worst entry
  double numeric_abs_error = 0, numeric_rel_error = 0;  ///< claimed vs finite differences, worst
  std::size_t numeric_entries = 0;                      ///< entries compared numerically
  /// For a claimed gradient that disagrees with the tape, what kind of mistake it is: the
  /// search's mistake that reproduces it ("the activation's derivative left out, at tanh #2
  /// (below)", VerifyReport::mistakes has the rest), else what its values look like
  /// (diagnose_gradient). Empty when it agrees.
  std::string diagnosis;
};

/// The kind of mistake that turns the true gradient `truth` into `claimed` (same shape), as
/// ParameterVerdict::diagnosis says it; "" when they agree to `rtol` of the largest entry.
std::string diagnose_gradient(const Tensor& claimed, const Tensor& truth, double rtol = 1e-6);

struct VerifyReport {
  bool passed = true;
  std::vector<ParameterVerdict> parameters;
  double rtol = 0, numeric_rtol = 0;
  /// The mistakes that reproduce the wrong claims: one when a single mistake explains them all,
  /// else a few, each explaining some; empty when the claims agree or no candidate reproduces any.
  std::vector<Mistake> mistakes;
  std::size_t mistake_candidates = 0;  ///< how many candidates the search tried

  explicit operator bool() const { return passed; }
  const ParameterVerdict* first_failure() const;
  std::string str() const;
};
std::ostream& operator<<(std::ostream& os, const VerifyReport& report);

/// loss: parameters (float64, in the order given) -> one-element loss. claimed[i] is the
/// hand-derived gradient for parameters[i] (same shape; ShapeError otherwise).
VerifyReport verify_gradients(const TensorFn& loss,
                              const std::vector<std::pair<std::string, Tensor>>& parameters,
                              const std::vector<Tensor>& claimed,
                              const VerifyOptions& options = {});

// ---- Jacobians, Hessians and Hessian-vector products derived by hand ----------------------------

/// A claimed Jacobian, Hessian or Hessian-vector product against the tape's (functional.hpp)
/// and against finite differences (fourth-order central differences, step VerifyOptions::step, of
/// f for a Jacobian, of the tape's gradient for a Hessian), with errors relative to the largest
/// entry of the truth, as for gradients.
struct DerivativeVerdict {
  std::string what;  ///< "jacobian", "hessian" or "hvp"
  bool matches_tape = true, matches_numeric = true;
  std::string index;  ///< the worst entry against the tape: "[1, 0, 2]"
  double claimed = 0, tape = 0, numeric = 0;
  double rel_error = 0, numeric_rel_error = 0;
  /// For a wrong claim, the kind of mistake its values show ("" when it agrees): those of
  /// diagnose_gradient on the claim as a matrix (rows: the outputs' entries, columns: the
  /// inputs'; transposed, a sign, a constant factor, zeros), the symmetric part of a square
  /// Jacobian taken for it, half of a Hessian (one of the product rule's two terms, as A for
  /// the A + A^T of x^T A x), a Hessian that is not symmetric, and, given the model and the
  /// loss apart, the Gauss-Newton part J^T H_loss J taken for the whole Hessian.
  std::string diagnosis;
  explicit operator bool() const { return matches_tape && matches_numeric; }
  std::string str() const;
};
std::ostream& operator<<(std::ostream& os, const DerivativeVerdict& verdict);

/// claimed: d f(x) / d x, of shape f(x).shape + x.shape (ShapeError otherwise); x float64.
DerivativeVerdict verify_jacobian(const TensorFunction& f, const Tensor& x, const Tensor& claimed,
                                  const VerifyOptions& options = {});
/// claimed: the Hessian of f (one element) at x, of shape x.shape + x.shape.
DerivativeVerdict verify_hessian(const TensorFunction& f, const Tensor& x, const Tensor& claimed,
                                 const VerifyOptions& options = {});
/// The same for loss(model(x)) given apart, so that a claim equal to the Gauss-Newton part
/// J^T H_loss J (J the model's Jacobian, H_loss the loss's Hessian at model(x)) is named.
DerivativeVerdict verify_hessian(const TensorFunction& model, const TensorFunction& loss,
                                 const Tensor& x, const Tensor& claimed,
                                 const VerifyOptions& options = {});
/// claimed: H v, of x's shape.
DerivativeVerdict verify_hvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                             const Tensor& claimed, const VerifyOptions& options = {});

}  // namespace xgrad
