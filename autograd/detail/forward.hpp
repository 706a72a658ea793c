#pragma once
// Forward mode's internals shared with the ops (autograd/forward_ad.cpp).

#include <set>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"

namespace xgrad::detail {

// Whether a dual level is open and ops carry tangents (not inside a rule).
bool carrying_tangents();

// Whether a backward must be written in ops, so that its result can be differentiated: under
// create_graph (grad mode on), or in a dual level, where the tensors it reads may carry tangents
// (forward over reverse). Otherwise a backward may take its fused one-pass kernels.
inline bool differentiable_backward() { return GradMode::is_enabled() || carrying_tangents(); }

// Whether an op on x needs what its derivative uses: x requires grad, or has a tangent.
inline bool differentiable(const Tensor& x) {
  const Tensor* inputs[] = {&x};
  return x.requires_grad() || has_tangent(inputs);
}

// While it lives, ops give their outputs no tangents: a rule's own ops, and the backward inside
// a transposed JVP, compute tangents, they do not carry them.
class ForwardSuspend {
 public:
  ForwardSuspend();
  ~ForwardSuspend();
  ForwardSuspend(const ForwardSuspend&) = delete;
  ForwardSuspend& operator=(const ForwardSuspend&) = delete;
};

// While it lives, the names of the ops whose tangents were made by the transposed backward (the
// default Node::jvp) are added to `names`: the op table checks which ops have no rule of their own.
class TransposedJvpLog {
 public:
  explicit TransposedJvpLog(std::set<std::string>& names);
  ~TransposedJvpLog();
  TransposedJvpLog(const TransposedJvpLog&) = delete;
  TransposedJvpLog& operator=(const TransposedJvpLog&) = delete;

 private:
  std::set<std::string>* previous_;
};

// a + b, or whichever is defined (a rule's sum of terms, one per input that has a tangent).
Tensor add_defined(const Tensor& a, const Tensor& b);

// After an in-place op wrote `result` into x: x's tangent becomes result's (zeros if it has none
// while x had one), written into x's tangent in place, so that x's base and its other views,
// whose tangents are views of the same one, see it; a view whose base had no tangent gives the
// base one of zeros first.
void write_tangent(const Tensor& x, const Tensor& result);
// The same from the new tangent itself (undefined: zeros).
void assign_tangent(const Tensor& x, Tensor tangent);

}  // namespace xgrad::detail
