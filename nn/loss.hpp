#pragma once
/// \file
/// Losses, as torch::nn's: functions, and callable objects holding their options. The fused
/// softmax cross-entropy is a primitive op (autograd/ops/softmax_cross_entropy.cpp); the others
/// are composed from ops.

#include "autograd/ops.hpp"

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
