#pragma once
/// \file
/// Losses, as torch::nn's: functions, and callable objects holding their options. The fused
/// softmax cross-entropy is a primitive op (autograd/ops/softmax_cross_entropy.cpp); the others
/// are composed from ops.

#include "xgrad/autograd/ops.hpp"

namespace xgrad::nn {

// The fused softmax cross-entropy is an op (autograd/ops.hpp); these names make it nn's too.
using xgrad::CrossEntropyOptions;
using xgrad::Reduction;
using xgrad::softmax_cross_entropy;

/// (pred - target)^2, reduced; pred and target of the same shape.
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::mean);
/// -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)) = softplus(x) - x t, stable for any x.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets,
                       Reduction reduction = Reduction::mean);

/// -log_probs[i, label_i], reduced: the cross-entropy after a log_softmax of one's own, as
/// torch.nn.functional.nll_loss. log_probs (batch, classes), one label per row in [0, classes).
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, Reduction reduction = Reduction::mean);
/// |pred - target|, reduced (gradient 0 where they are equal, as abs's).
Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::mean);
/// Huber's loss, as torch's smooth_l1_loss: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta,
/// d = pred - target, beta > 0.
Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target,
                      Reduction reduction = Reduction::mean, double beta = 1.0);
/// target (log target - input) with input in log-probabilities and target in probabilities (or,
/// with log_target, log-probabilities too), as torch's kl_div: entries where target is 0 count 0.
/// mean averages over every entry, as PyTorch's default; the KL divergence per sample is sum
/// divided by the batch (PyTorch's "batchmean").
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
              bool log_target = false);
/// -(t log p + (1 - t) log(1 - p)) on probabilities p in [0, 1], each log clamped at -100 as
/// PyTorch's binary_cross_entropy, so p = 0 or 1 gives a finite loss. From logits,
/// bce_with_logits is the stable one.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& targets,
                            Reduction reduction = Reduction::mean);

/// The fraction of rows whose largest logit is at their label (the first one on ties), in
/// [0, 1]: logits (batch, classes), one label per row. Not differentiable.
double accuracy(const Tensor& logits, const Tensor& labels);

/// The same as callable objects holding their options, as torch::nn losses.
class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(CrossEntropyOptions options = {}) : options_(std::move(options)) {}
  Tensor operator()(const Tensor& logits, const Tensor& labels) const {
    return softmax_cross_entropy(logits, labels, options_);
  }

 private:
  CrossEntropyOptions options_;
};

class MSELoss {
 public:
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}
  Tensor operator()(const Tensor& pred, const Tensor& target) const {
    return mse_loss(pred, target, reduction_);
  }

 private:
  Reduction reduction_;
};

class BCEWithLogitsLoss {
 public:
  explicit BCEWithLogitsLoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}
  Tensor operator()(const Tensor& logits, const Tensor& targets) const {
    return bce_with_logits(logits, targets, reduction_);
  }

 private:
  Reduction reduction_;
};

}  // namespace xgrad::nn
