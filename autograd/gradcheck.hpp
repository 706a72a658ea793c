#pragma once
/// \file
/// Gradient checking: the tape's derivatives against central finite differences, in double.
///
///   auto report = xgrad::gradcheck([](const std::vector<Tensor>& in) { return sum(tanh(in[0])); },
///                                  {x});
///   if (!report.passed) std::cout << report;   // names the worst entry and both values
///
/// Small problems compare the whole Jacobian, entry by entry; large ones compare random
/// projections v^T J u, which catch any wrong entry with probability 1.

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

struct GradcheckOptions {
  double eps = 1e-6;   ///< finite-difference step
  double atol = 1e-5;  ///< an entry passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-4;
  std::size_t max_full_entries = 20000;  ///< Jacobian size above which projections are used
  int projections = 8;
  std::uint64_t seed = 0;  ///< for the projection vectors
};

struct GradcheckReport {
  bool passed = true;
  std::string check = "gradcheck";  ///< or "gradgradcheck"
  std::string method;               ///< "full Jacobian" or "random projections"
  std::size_t compared = 0;         ///< entries or projections compared
  /// The worst comparison (largest error relative to its tolerance):
  std::size_t input = 0;    ///< which input of f
  std::string input_index;  ///< e.g. "[0, 2]" (full Jacobian) or "projection 3"
  /// e.g. "[1]"; for gradgradcheck the entry of the first derivative that is off, as
  /// "d/d input 0 [2, 1]" (the gradient with respect to input 0, at entry [2, 1])
  std::string output_index;
  std::size_t output_entry = 0;  ///< full Jacobian: the output entry's row-major position
  double analytic = 0, numeric = 0, abs_error = 0, rel_error = 0;
  double atol = 0, rtol = 0;

  explicit operator bool() const { return passed; }
  std::string str() const;
};
std::ostream& operator<<(std::ostream& os, const GradcheckReport& report);

/// A function of tensors to one tensor: what gradcheck and verify_gradients differentiate.
using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Checks d f / d input for every float64 input that requires grad. f returns one tensor.
GradcheckReport gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

/// Checks second derivatives: gradcheck of (inputs, v) -> d<f(inputs), v>/d inputs, the gradients
/// being recorded with create_graph, for a fixed random v that is itself checked as an input.
GradcheckReport gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

/// Checks forward-mode derivatives (as PyTorch's check_forward_ad): for `projections` random
/// directions u (one per input that requires grad), jvp(f, inputs, u) (functional.hpp: forward
/// mode, forward_ad.hpp) against
/// the finite-difference directional derivative (f(x + eps u) - f(x - eps u)) / (2 eps), entry by
/// entry, and the identity <w, J u> = <J^T w, u> against the reverse mode's vjp, for a random w.
GradcheckReport jvpcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                         const GradcheckOptions& options = {});

}  // namespace xgrad
