#pragma once
// The optimizers' update loops over float32 arrays, run in vector lanes for the widest
// instruction set the processor has (detail/vector_math.hpp chooses it), as the kernels that
// torch.optim's `fused=True` calls; nn/optim.cpp's optimizers call them.

#include <cstddef>

namespace xgrad {

// One Adam or AdamW step's constants, in float32 as the update computes with them.
struct AdamStep {
  float b1, b2, lr, wd;
  float step_size;  // lr / (1 - b1^t)
  float root_c2;    // sqrt(1 - b2^t)
  float eps;
  float l2;          // Adam's weight decay, added to the gradient; 0 for AdamW
  bool decay_first;  // AdamW's decoupled decay, p -= lr wd p before the update
};

// One Adam or AdamW update of n parameters p in place, with their gradient g and the running
// moments m and v, in this order of operations:
//   p -= lr wd p (when decay_first),  d = g + l2 p,
//   m = b1 m + (1 - b1) d,  v = b2 v + (1 - b2) d d,  p -= step_size m / (sqrt(v) / root_c2 + eps)
// so that every instruction set gives the same bits as this plain loop compiled without FMA.
void adam_update(float* p, const float* g, float* m, float* v, std::size_t n, const AdamStep& c);

}  // namespace xgrad
