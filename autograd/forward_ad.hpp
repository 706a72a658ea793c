#pragma once
/// \file
/// Forward-mode automatic differentiation, as torch.autograd.forward_ad: under a dual level a
/// tensor may carry a tangent u (make_dual), and every op on it gives its output the tangent J u,
/// the op's Jacobian-vector product, computed along with its value: no tape, no backward.
///
///   forward_ad::dual_level level;
///   const Tensor x = forward_ad::make_dual(x0, u);
///   const Tensor y = f(x);
///   auto [value, tangent] = forward_ad::unpack_dual(y);  // tangent = J_f(x0) u
///
/// Each primitive op's rule is its node's jvp (Node::jvp), beside its backward in autograd/ops/;
/// an op without a rule of its own takes the JVP of its backward transposed (exact, at the price
/// of two backward passes). Composite ops get theirs by composition. Tangents compose with
/// reverse mode: a rule's ops are recorded on the tape when their inputs require grad, and a
/// backward run inside a dual level carries the tangents of the tensors the graph saved (forward
/// over reverse: the tangent of a gradient is a Hessian-vector product).
///
/// One level at a time, per thread (a second one while one is open is an AutogradError, as
/// PyTorch's); when the level closes, every tangent made in it is dropped.

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::forward_ad {

/// Opens a dual level for its lifetime.
class dual_level {
 public:
  dual_level();
  ~dual_level();
  dual_level(const dual_level&) = delete;
  dual_level& operator=(const dual_level&) = delete;
};

/// Whether a dual level is open on this thread.
bool is_active();

/// A tensor with primal's values (an alias: gradients flow back to primal) and the tangent
/// `tangent`, of the same shape and dtype (a floating one). AutogradError outside a dual level;
/// ShapeError or DtypeError naming both when they do not match.
Tensor make_dual(const Tensor& primal, const Tensor& tangent);

struct UnpackedDual {
  Tensor primal;   ///< the values, without the tangent (an alias)
  Tensor tangent;  ///< undefined when the tensor has none at the open level
};
/// The values and the tangent of a tensor.
UnpackedDual unpack_dual(const Tensor& tensor);

}  // namespace xgrad::forward_ad
