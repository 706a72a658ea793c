#include "nn/loss.hpp"

#include <cmath>
#include <limits>

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

namespace {
const xt::xarray<std::int64_t>& check_labels(const char* op, const Tensor& scores,
                                             const Tensor& label_tensor) {
  if (scores.dim() != 2)
    throw ShapeError(std::string(op) + ": needs (batch, classes), got " +
                     shape_str(scores.shape()));
  if (!label_tensor.defined() || label_tensor.dtype() != Dtype::int64)
    throw DtypeError(std::string(op) + ": labels must be an int64 tensor of class indices" +
                     (label_tensor.defined()
                          ? ", got " + std::string(dtype_name(label_tensor.dtype())) +
                                "; convert with to(kInt64)"
                          : std::string(", got an undefined tensor")));
  const xt::xarray<std::int64_t>& labels = label_tensor.value<std::int64_t>();
  if (labels.dimension() != 1 || labels.size() != scores.size(0))
    throw ShapeError(std::string(op) + ": " + std::to_string(labels.size()) + " labels of shape " +
                     shape_str(labels.shape()) + " for " + std::to_string(scores.size(0)) +
                     " rows; expected shape [" + std::to_string(scores.size(0)) + "]");
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels(i) < 0 || static_cast<std::size_t>(labels(i)) >= scores.size(1))
      throw IndexError(std::string(op) + ": label " + std::to_string(labels(i)) + " of row " +
                       std::to_string(i) + " is out of range for " +
                       std::to_string(scores.size(1)) + " classes");
  return labels;
}

Tensor constant_like(const Tensor& x, double value) { return scalar(value, {.dtype = x.dtype()}); }
}  // namespace

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, Reduction reduction) {
  check_labels("nll_loss", log_probs, labels);
  const Tensor column = labels.unsqueeze(1);
  return reduce(neg(reshape(gather(log_probs, 1, column), {-1})), reduction);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_same_shape("l1_loss", pred, target);
  return reduce(abs(pred - target), reduction);
}

Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction, double beta) {
  check_same_shape("smooth_l1_loss", pred, target);
  if (!(beta > 0) || !std::isfinite(beta))
    throw ValueError("smooth_l1_loss: beta must be a finite number > 0, got " +
                     std::to_string(beta));
  const Tensor d = pred - target;
  const Tensor size = abs(d);
  const Tensor small = lt(size, constant_like(d, beta));
  return reduce(where(small, d * d * (0.5 / beta), size - 0.5 * beta), reduction);
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  check_same_shape("kl_div", input, target);
  if (log_target) {  // a target of -inf (probability 0) counts 0, not 0 * -inf
    const Tensor t = exp(target);
    const Tensor positive = gt(t, constant_like(t, 0.0));
    return reduce(where(positive, t * (target - input), constant_like(input, 0.0)), reduction);
  }
  // 0 log 0 = 0: where target is 0 the log is taken of 1 instead, so that no inf enters.
  const Tensor positive = gt(target, constant_like(target, 0.0));
  const Tensor safe = where(positive, target, constant_like(target, 1.0));
  return reduce(where(positive, target * (log(safe) - input), constant_like(input, 0.0)),
                reduction);
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& targets, Reduction reduction) {
  check_same_shape("binary_cross_entropy", probs, targets);
  const auto& outside = [](const auto& a) {
    for (auto v : a)
      if (!(v >= 0 && v <= 1)) return true;
    return false;
  };
  if (probs.dtype() == Dtype::float32 ? outside(probs.value<float>())
                                      : outside(probs.value<double>()))
    throw ValueError(
        "binary_cross_entropy: probabilities must be in [0, 1] (from logits, use "
        "bce_with_logits)");
  // log p and log(1 - p), clamped at -100 as PyTorch's. Where p is 0 (or 1), the clamped log is
  // the constant -100, selected: never log(0) = -inf, whose derivative times a zero target weight
  // was 0 x inf = NaN (p = t = 1 had gradient NaN; PyTorch 0).
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor one = constant_like(probs, 1.0), floor = constant_like(probs, -100.0);
  const auto clamped_log = [&](const Tensor& x) {
    const Tensor positive = x > 0.0;
    return where(positive, clamp(log(where(positive, x, one)), -100.0, inf), floor);
  };
  const Tensor log_p = clamped_log(probs), log_q = clamped_log(1.0 - probs);
  return reduce(neg(targets * log_p + (1.0 - targets) * log_q), reduction);
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  check_labels("accuracy", logits, labels);
  if (labels.numel() == 0) return 0.0;
  const std::int64_t right = count_nonzero(argmax(logits, 1) == labels).item<std::int64_t>();
  return static_cast<double>(right) / static_cast<double>(labels.numel());
}

}  // namespace xgrad::nn
