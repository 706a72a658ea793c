#pragma once
/// \file
/// The layers of a convolutional network, as torch::nn's: Conv2d, Conv1d, MaxPool2d, AvgPool2d,
/// AdaptiveAvgPool2d, Flatten, BatchNorm1d, BatchNorm2d, Dropout. Each is a Module over the public ops (conv2d,
/// max_pool2d, avg_pool2d, dropout).

#include <array>
#include <cstddef>

#include "xgrad/autograd/ops.hpp"
#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

/// y = conv2d(x, weight, bias), weight (out, in / groups, kh, kw), initialized as PyTorch's
/// (uniform in +-1/sqrt(fan_in), fan_in = in / groups kh kw, for the weight and the bias).
class Conv2d : public Module {
 public:
  Conv2d(std::size_t in_channels, std::size_t out_channels, std::array<std::size_t, 2> kernel,
         Conv2dOptions options = {}, bool bias = true, Dtype dtype = Dtype::float32,
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Conv2d"; }
  std::string extra_repr() const override;

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  Conv2dOptions options;

 private:
  std::size_t in_, out_;
};

/// y = conv1d(x, weight, bias) over (N, C, L), weight (out, in / groups, k), initialized as
/// PyTorch's (uniform in +-1/sqrt(in / groups k)).
class Conv1d : public Module {
 public:
  Conv1d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel,
         Conv1dOptions options = {}, bool bias = true, Dtype dtype = Dtype::float32,
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return conv1d(x, weight, bias, options); }
  std::string name() const override { return "Conv1d"; }
  std::string extra_repr() const override;

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  Conv1dOptions options;

 private:
  std::size_t in_, out_;
};

/// A pooling window: a kernel, a stride (the kernel's unless given) and padding.
class Pool2d : public Module {
 public:
  Pool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
         std::array<std::size_t, 2> padding)
      : kernel_(kernel), stride_(stride[0] || stride[1] ? stride : kernel), padding_(padding) {}
  std::string extra_repr() const override;

 protected:
  std::array<std::size_t, 2> kernel_, stride_, padding_;
};

/// max_pool2d over each window.
class MaxPool2d : public Pool2d {
 public:
  explicit MaxPool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                     std::array<std::size_t, 2> padding = {0, 0})
      : Pool2d(kernel, stride, padding) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel_, stride_, padding_); }
  std::string name() const override { return "MaxPool2d"; }
};

/// avg_pool2d over each window (padding counted as zeros, as PyTorch's default).
class AvgPool2d : public Pool2d {
 public:
  explicit AvgPool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                     std::array<std::size_t, 2> padding = {0, 0})
      : Pool2d(kernel, stride, padding) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, kernel_, stride_, padding_); }
  std::string name() const override { return "AvgPool2d"; }
};

/// adaptive_avg_pool2d to an (oh, ow) grid: {1, 1} is global average pooling.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(std::array<std::size_t, 2> output_size) : size_(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, size_); }
  std::string name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;

 private:
  std::array<std::size_t, 2> size_;
};

/// flatten(x, start, end): (N, C, H, W) -> (N, C H W) with the defaults, as torch's Flatten.
class Flatten : public Module {
 public:
  explicit Flatten(std::ptrdiff_t start_axis = 1, std::ptrdiff_t end_axis = -1)
      : start_(start_axis), end_(end_axis) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_, end_); }
  std::string name() const override { return "Flatten"; }

 private:
  std::ptrdiff_t start_, end_;
};

/// batch_norm over (N, C) (BatchNorm1d) or (N, C, H, W) (BatchNorm2d) inputs, with a learned
/// weight (1) and bias (0) per channel and the running statistics as buffers (running_mean 0,
/// running_var 1, num_batches_tracked), as PyTorch's: train() normalizes with the batch and
/// updates them, eval() uses them.
class BatchNorm : public Module {
 public:
  BatchNorm(std::size_t channels, std::size_t input_rank, double eps = 1e-5, double momentum = 0.1,
            bool affine = true, Dtype dtype = Dtype::float32);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return rank_ == 2 ? "BatchNorm1d" : "BatchNorm2d"; }
  std::string extra_repr() const override;

  Tensor weight, bias;  ///< undefined without affine
  Tensor running_mean, running_var, num_batches_tracked;

 private:
  std::size_t channels_, rank_;
  double eps_, momentum_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(std::size_t channels, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, Dtype dtype = Dtype::float32)
      : BatchNorm(channels, 2, eps, momentum, affine, dtype) {}
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(std::size_t channels, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, Dtype dtype = Dtype::float32)
      : BatchNorm(channels, 4, eps, momentum, affine, dtype) {}
};

/// dropout(x, p) in training mode (train()), the identity in evaluation (eval()); masks drawn
/// from `gen`, which must outlive the module.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), *gen_); }
  std::string name() const override { return "Dropout"; }
  std::string extra_repr() const override;

 private:
  double p_;
  Generator* gen_;
};

}  // namespace xgrad::nn
