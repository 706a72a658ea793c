#pragma once
/// \file
/// Losses. softmax_cross_entropy is fused: one pass computes a stable log-sum-exp per row, and its
/// backward is exactly (softmax(logits) - onehot(labels)) / B for the mean over a batch of B, the
/// gradient that question 1 of the source document derives.

#include "autograd/ops.hpp"

namespace xgrad::nn {

enum class Reduction { mean, sum, none };

struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  /// The target puts 1 - s on the label and s / C on every class (s = 0: the plain one-hot).
  double label_smoothing = 0.0;
  /// Per-class weights (shape (C), the logits' dtype), or undefined for none. As in PyTorch, the
  /// mean divides by the sum of the weights of the samples' labels.
  Tensor weight;
};

/// logits: (B, C) (rows are samples); labels: B class indices in [0, C).
/// loss_i = -sum_c w_c q_ic log softmax(logits_i)_c, reduced over the batch.
Tensor softmax_cross_entropy(const Tensor& logits, const Index& labels,
                             const CrossEntropyOptions& options = {});
/// (pred - target)^2, reduced; pred and target of the same shape.
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::mean);
/// -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)) = softplus(x) - x t, stable for any x.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets,
                       Reduction reduction = Reduction::mean);

/// The same as callable objects holding their options, as torch::nn losses.
class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(CrossEntropyOptions options = {}) : options_(std::move(options)) {}
  Tensor operator()(const Tensor& logits, const Index& labels) const {
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
