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
  /// For a claimed gradient that disagrees with the tape, what kind of mistake it looks like:
  /// "a constant factor: truth = 0.5 x claim (...)", "the sign is flipped", "transposed",
  /// "zeros where the truth is not", "an entrywise factor in (0, 1] ... as tanh'(z)", or "none
  /// of the known kinds". Empty when it agrees.
  std::string diagnosis;
};

/// The kind of mistake that turns the true gradient `truth` into `claimed` (same shape), as
/// ParameterVerdict::diagnosis says it; "" when they agree to `rtol` of the largest entry.
std::string diagnose_gradient(const Tensor& claimed, const Tensor& truth, double rtol = 1e-6);

struct VerifyReport {
  bool passed = true;
  std::vector<ParameterVerdict> parameters;
  double rtol = 0, numeric_rtol = 0;

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

}  // namespace xgrad
