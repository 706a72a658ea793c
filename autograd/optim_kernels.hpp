#pragma once
// The optimizers' update loops over float32 arrays, run in vector lanes for the widest
// instruction set the processor has (detail/vector_math.hpp chooses it), as the kernels that
// torch.optim's `fused=True` calls; nn/optim.cpp's optimizers call them. Each gives the same bits
// on every instruction set as the plain loop its comment writes, compiled without FMA: every
// a * b + c is two roundings. The state arrays are updated in place.

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

// One SGD step's constants, in float32.
struct SgdStep {
  float lr, wd = 0;
  float momentum = 0;
  float damp = 1;  // 1 - dampening
  bool nesterov = false;
  bool first = false;  // the buffer's first step: it starts as d
};

// One SGD update of n parameters p with their gradient g and the momentum buffer b (null: no
// momentum; a momentum != 0 without a buffer is a ValueError):
//   no buffer, wd = 0:  p -= lr g
//   no buffer:          p -= lr (g + wd p)
//   else d = g + wd p,  b = d (first) or momentum b + damp d,
//        p -= lr (d + momentum b) (nesterov) or p -= lr b
void sgd_update(float* p, const float* g, float* b, std::size_t n, const SgdStep& c);

// One RMSprop step's constants, in float32.
struct RmspropStep {
  float lr, alpha, eps, wd;
  float momentum = 0;
};

// One RMSprop update of n parameters p with their gradient g, the running square average v, the
// running gradient average m (null: not centered) and the momentum buffer b (null: no momentum; a
// momentum != 0 without a buffer is a ValueError):
//   d = g + wd p,  v = alpha v + (1 - alpha) d d,  var = v, or v - m m with
//   m = alpha m + (1 - alpha) d (centered),  a = sqrt(var) + eps,
//   b = momentum b + d / a, p -= lr b (a buffer), or p -= lr d / a
void rmsprop_update(float* p, const float* g, float* v, float* m, float* b, std::size_t n,
                    const RmspropStep& c);

// One Adagrad step's constants, in float32 (lr already divided by the step's lr decay).
struct AdagradStep {
  float lr, eps, wd;
};

// One Adagrad update of n parameters p with their gradient g and the running sum of squares s:
//   d = g + wd p,  s += d d,  p -= lr d / (sqrt(s) + eps)
void adagrad_update(float* p, const float* g, float* s, std::size_t n, const AdagradStep& c);

}  // namespace xgrad
