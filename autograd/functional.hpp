#pragma once
/// \file
/// Transforms of whole functions, as torch.autograd.functional and JAX's vjp, jvp, jacfwd, jacrev
/// and hessian: vector-Jacobian and Jacobian-vector products, whole Jacobians and Hessians, and
/// Hessian-vector products, of a function of one tensor or of several.
///
/// Each runs f on inputs of its own (x detached, as a leaf that requires grad; under create_graph
/// an alias recorded from x instead, so that the results stay differentiable in x). Without
/// create_graph the results are cut from the graph.
///   vjp(f, x, v)  = (f(x), J^T v)                one backward
///   jvp(f, x, v)  = (f(x), J v)                  one forward-mode pass (forward_ad.hpp): f run on
///                                                make_dual(x, v)
///   jacobian(f, x) = J, of shape f(x).shape + x.shape: reverse mode one backward per output
///                  entry (J's rows); forward mode one forward-mode pass per input entry (J's
///                  columns); automatic: forward if and only if the inputs have fewer entries
///                  than the outputs
///   hessian(f, x) = H, of shape x.shape + x.shape, for f with one element: the gradient recorded,
///                  then one backward per entry of x
///   hvp(f, x, v)  = (grad f(x), H v): forward over reverse, the gradient taken at make_dual(x, v)
///                  carries H v as its tangent
///   vhp(f, x, v)  = (grad f(x), v^T H): the gradient recorded, then one backward of <grad, v>.
///                  The same as hvp wherever f's second derivatives are continuous (H symmetric),
///                  as for every op of xgrad away from its kinks.
/// jvp, forward jacobian and hvp open a dual level of their own: called inside one, they throw.
/// An output that does not depend on an input gives zeros there, as PyTorch's strict=False.

#include <functional>
#include <utility>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

/// A function of one tensor, and one of several tensors to several.
using TensorFunction = std::function<Tensor(const Tensor&)>;
using TensorsFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct TransformOptions {
  /// The results recorded on the tape (differentiable again, in x too), as PyTorch's option.
  bool create_graph = false;
};

enum class JacobianMode {
  reverse,    ///< a backward per output entry: J's rows
  forward,    ///< a forward-mode pass per input entry: J's columns
  automatic,  ///< forward if and only if the inputs have fewer entries than the outputs
};

struct JacobianOptions {
  JacobianMode mode = JacobianMode::automatic;
  bool create_graph = false;
};

/// (f(x), J^T v), v of f(x)'s shape and dtype.
std::pair<Tensor, Tensor> vjp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options = {});
/// (f's outputs, for each input sum_i J_i^T v_i), one v per output.
std::pair<std::vector<Tensor>, std::vector<Tensor>> vjp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options = {});

/// (f(x), J v), v of x's shape and dtype.
std::pair<Tensor, Tensor> jvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options = {});
/// (f's outputs, for each output sum_j J_j v_j), one v per input.
std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options = {});

/// d f(x) / d x, of shape f(x).shape + x.shape.
Tensor jacobian(const TensorFunction& f, const Tensor& x, JacobianOptions options = {});
/// [i][j] = d output_i / d input_j, of shape output_i.shape + input_j.shape.
std::vector<std::vector<Tensor>> jacobian(const TensorsFunction& f, const std::vector<Tensor>& x,
                                          JacobianOptions options = {});

/// The Hessian of f (one output of one element), of shape x.shape + x.shape.
Tensor hessian(const TensorFunction& f, const Tensor& x, TransformOptions options = {});
/// [i][j] = d^2 f / d input_i d input_j, of shape input_i.shape + input_j.shape.
std::vector<std::vector<Tensor>> hessian(const TensorsFunction& f, const std::vector<Tensor>& x,
                                         TransformOptions options = {});

/// (grad f(x), H v) for f with one element, v of x's shape.
std::pair<Tensor, Tensor> hvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options = {});
std::pair<std::vector<Tensor>, std::vector<Tensor>> hvp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options = {});
/// (grad f(x), v^T H): the same as hvp wherever H is symmetric.
std::pair<Tensor, Tensor> vhp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options = {});
std::pair<std::vector<Tensor>, std::vector<Tensor>> vhp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options = {});

}  // namespace xgrad
