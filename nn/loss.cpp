#include "nn/loss.hpp"

namespace xgrad::nn {

namespace {
Tensor reduce(const Tensor& per_element, Reduction reduction) {
  if (reduction == Reduction::mean) return mean(per_element);
  if (reduction == Reduction::sum) return sum(per_element);
  return per_element;
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw ShapeError(std::string(op) + ": input of shape " + shape_str(a.shape()) +
                     " and target of shape " + shape_str(b.shape()) + "; expected equal shapes");
}
}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_same_shape("mse_loss", pred, target);
  const Tensor diff = pred - target;
  return reduce(diff * diff, reduction);
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  check_same_shape("bce_with_logits", logits, targets);
  return reduce(softplus(logits) - logits * targets, reduction);
}

}  // namespace xgrad::nn
