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

/// Conv2d's options, as LibTorch's nn::Conv2dOptions: Conv2dOptions(1, 16, 3).padding(1)
/// .bias(false); sizes are one number for both axes or one per axis. dtype (xgrad's) is the
/// parameters' (float32 unless set).
class Conv2dOptions {
 public:
  Conv2dOptions(std::size_t in_channels, std::size_t out_channels, ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel_size.value()) {}
  XGRAD_ARG(std::size_t, in_channels);
  XGRAD_ARG(std::size_t, out_channels);
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;

 public:
  Conv2dOptions& stride(ExpandingArray<2> v) { return chain(func_.stride(v)); }
  Conv2dOptions& padding(ExpandingArray<2> v) { return chain(func_.padding(v)); }
  Conv2dOptions& dilation(ExpandingArray<2> v) { return chain(func_.dilation(v)); }
  Conv2dOptions& groups(std::size_t v) { return chain(func_.groups(v)); }
  const std::array<std::size_t, 2>& kernel_size() const { return kernel_; }
  const std::array<std::size_t, 2>& stride() const { return func_.stride(); }
  const std::array<std::size_t, 2>& padding() const { return func_.padding(); }
  const std::array<std::size_t, 2>& dilation() const { return func_.dilation(); }
  std::size_t groups() const { return func_.groups(); }
  /// The functional op's part: conv2d(x, w, b, options.func()).
  const Conv2dFuncOptions& func() const { return func_; }

 private:
  Conv2dOptions& chain(const Conv2dFuncOptions&) { return *this; }
  std::array<std::size_t, 2> kernel_;
  Conv2dFuncOptions func_;
};

/// y = conv2d(x, weight, bias), weight (out, in / groups, kh, kw), initialized as PyTorch's
/// (uniform in +-1/sqrt(fan_in), fan_in = in / groups kh kw, for the weight and the bias):
/// Conv2d(1, 16, 3), or Conv2d(Conv2dOptions(1, 16, 3).padding(1).bias(false)).
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options, Generator& gen = default_generator());
  Conv2d(std::size_t in_channels, std::size_t out_channels, ExpandingArray<2> kernel_size,
         Generator& gen = default_generator())
      : Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size), gen) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  /// 2 (in / groups) kh kw per output entry.
  double flops(const Shape&, const Shape& output) const override {
    return 2.0 * static_cast<double>(weight.numel() / options.out_channels()) *
           static_cast<double>(shape_numel(output));
  }

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  Conv2dOptions options;
};

/// ConvTranspose2d's options, as LibTorch's ConvTranspose2dOptions(in, out, kernel).stride(2)
/// .padding(1).output_padding(1).groups(1).bias(true).dilation(1).
class ConvTranspose2dOptions {
 public:
  ConvTranspose2dOptions(std::size_t in_channels, std::size_t out_channels,
                         ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel_size.value()) {}
  XGRAD_ARG(std::size_t, in_channels);
  XGRAD_ARG(std::size_t, out_channels);
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;

 public:
  ConvTranspose2dOptions& stride(ExpandingArray<2> v) { return chain(func_.stride(v)); }
  ConvTranspose2dOptions& padding(ExpandingArray<2> v) { return chain(func_.padding(v)); }
  ConvTranspose2dOptions& output_padding(ExpandingArray<2> v) {
    return chain(func_.output_padding(v));
  }
  ConvTranspose2dOptions& dilation(ExpandingArray<2> v) { return chain(func_.dilation(v)); }
  ConvTranspose2dOptions& groups(std::size_t v) { return chain(func_.groups(v)); }
  const std::array<std::size_t, 2>& kernel_size() const { return kernel_; }
  std::size_t groups() const { return func_.groups(); }
  const ConvTranspose2dFuncOptions& func() const { return func_; }

 private:
  ConvTranspose2dOptions& chain(const ConvTranspose2dFuncOptions&) { return *this; }
  std::array<std::size_t, 2> kernel_;
  ConvTranspose2dFuncOptions func_;
};

/// y = conv_transpose2d(x, weight, bias), weight (in, out / groups, kh, kw), initialized as
/// PyTorch's (uniform in +-1/sqrt(fan_in), fan_in = out / groups kh kw): an upsampling layer,
/// ConvTranspose2d(ConvTranspose2dOptions(16, 8, 3).stride(2).padding(1).output_padding(1))
/// doubles the height and width.
class ConvTranspose2d : public Module {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions& options,
                           Generator& gen = default_generator());
  ConvTranspose2d(std::size_t in_channels, std::size_t out_channels, ExpandingArray<2> kernel_size,
                  Generator& gen = default_generator())
      : ConvTranspose2d(ConvTranspose2dOptions(in_channels, out_channels, kernel_size), gen) {}
  Tensor forward(const Tensor& x) override {
    return conv_transpose2d(x, weight, bias, options.func());
  }
  std::string name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  ConvTranspose2dOptions options;
};

/// Conv1d's options, as LibTorch's nn::Conv1dOptions: Conv1dOptions(4, 6, 3).padding(1).groups(2).
class Conv1dOptions {
 public:
  Conv1dOptions(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  XGRAD_ARG(std::size_t, in_channels);
  XGRAD_ARG(std::size_t, out_channels);
  XGRAD_ARG(std::size_t, kernel_size);
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;

 public:
  Conv1dOptions& stride(std::size_t v) { return chain(func_.stride(v)); }
  Conv1dOptions& padding(std::size_t v) { return chain(func_.padding(v)); }
  Conv1dOptions& dilation(std::size_t v) { return chain(func_.dilation(v)); }
  Conv1dOptions& groups(std::size_t v) { return chain(func_.groups(v)); }
  std::size_t stride() const { return func_.stride(); }
  std::size_t padding() const { return func_.padding(); }
  std::size_t dilation() const { return func_.dilation(); }
  std::size_t groups() const { return func_.groups(); }
  const Conv1dFuncOptions& func() const { return func_; }

 private:
  Conv1dOptions& chain(const Conv1dFuncOptions&) { return *this; }
  Conv1dFuncOptions func_;
};

/// y = conv1d(x, weight, bias) over (N, C, L), weight (out, in / groups, k), initialized as
/// PyTorch's (uniform in +-1/sqrt(in / groups k)).
class Conv1d : public Module {
 public:
  explicit Conv1d(const Conv1dOptions& options, Generator& gen = default_generator());
  Conv1d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size,
         Generator& gen = default_generator())
      : Conv1d(Conv1dOptions(in_channels, out_channels, kernel_size), gen) {}
  Tensor forward(const Tensor& x) override { return conv1d(x, weight, bias, options.func()); }
  std::string extra_repr() const override;
  /// 2 (in / groups) k per output entry.
  double flops(const Shape&, const Shape& output) const override {
    return 2.0 * static_cast<double>(weight.numel() / options.out_channels()) *
           static_cast<double>(shape_numel(output));
  }

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  Conv1dOptions options;
};

/// A pooling window's options, as LibTorch's MaxPool2dOptions / AvgPool2dOptions:
/// MaxPool2dOptions(3).stride(2).padding(1); the stride is the kernel's unless given.
class Pool2dOptions {
 public:
  explicit Pool2dOptions(ExpandingArray<2> kernel_size)
      : kernel_(kernel_size.value()), stride_(kernel_) {}
  /// 0 is the kernel's.
  Pool2dOptions& stride(ExpandingArray<2> v) {
    stride_ = v[0] == 0 && v[1] == 0 ? kernel_ : v.value();
    return *this;
  }
  Pool2dOptions& padding(ExpandingArray<2> v) {
    padding_ = v.value();
    return *this;
  }
  const std::array<std::size_t, 2>& kernel_size() const { return kernel_; }
  const std::array<std::size_t, 2>& stride() const { return stride_; }
  const std::array<std::size_t, 2>& padding() const { return padding_; }

 private:
  std::array<std::size_t, 2> kernel_, stride_, padding_{0, 0};
};
using MaxPool2dOptions = Pool2dOptions;
using AvgPool2dOptions = Pool2dOptions;

/// A pooling window: a kernel, a stride (the kernel's unless given) and padding.
class Pool2d : public Module {
 public:
  explicit Pool2d(const Pool2dOptions& options) : options(options) {}
  std::string extra_repr() const override;
  Pool2dOptions options;
};

/// max_pool2d over each window: MaxPool2d(2), MaxPool2d({3, 2}),
/// MaxPool2d(MaxPool2dOptions(3).stride(2).padding(1)).
class MaxPool2d : public Pool2d {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : Pool2d(options) {}
  explicit MaxPool2d(ExpandingArray<2> kernel_size) : Pool2d(Pool2dOptions(kernel_size)) {}
  Tensor forward(const Tensor& x) override {
    return max_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
};

/// avg_pool2d over each window (padding counted as zeros, as PyTorch's default).
class AvgPool2d : public Pool2d {
 public:
  explicit AvgPool2d(const Pool2dOptions& options) : Pool2d(options) {}
  explicit AvgPool2d(ExpandingArray<2> kernel_size) : Pool2d(Pool2dOptions(kernel_size)) {}
  Tensor forward(const Tensor& x) override {
    return avg_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
};

/// adaptive_avg_pool2d to an (oh, ow) grid: {1, 1} is global average pooling.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(ExpandingArray<2> output_size) : size_(output_size.value()) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, size_); }
  std::string name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;

 private:
  std::array<std::size_t, 2> size_;
};

/// The pools over one axis, as torch's MaxPool1d(kernel, stride, padding), AvgPool1d(...) and
/// AdaptiveAvgPool1d(output_size): inputs (N, C, L) or (C, L); stride 0 is the kernel's.
class MaxPool1d : public Module {
 public:
  explicit MaxPool1d(std::size_t kernel_size, std::size_t stride = 0, std::size_t padding = 0)
      : kernel_(kernel_size), stride_(stride ? stride : kernel_size), padding_(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool1d(x, kernel_, stride_, padding_); }
  std::string name() const override { return "MaxPool1d"; }
  std::string extra_repr() const override;

 private:
  std::size_t kernel_, stride_, padding_;
};

class AvgPool1d : public Module {
 public:
  explicit AvgPool1d(std::size_t kernel_size, std::size_t stride = 0, std::size_t padding = 0)
      : kernel_(kernel_size), stride_(stride ? stride : kernel_size), padding_(padding) {}
  Tensor forward(const Tensor& x) override { return avg_pool1d(x, kernel_, stride_, padding_); }
  std::string name() const override { return "AvgPool1d"; }
  std::string extra_repr() const override;

 private:
  std::size_t kernel_, stride_, padding_;
};

class AdaptiveAvgPool1d : public Module {
 public:
  explicit AdaptiveAvgPool1d(std::size_t output_size) : size_(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool1d(x, size_); }
  std::string name() const override { return "AdaptiveAvgPool1d"; }
  std::string extra_repr() const override { return "output_size=" + std::to_string(size_); }

 private:
  std::size_t size_;
};

/// GroupNorm's options, as LibTorch's GroupNormOptions(num_groups, num_channels).eps(1e-5)
/// .affine(true).
class GroupNormOptions {
 public:
  GroupNormOptions(std::size_t num_groups, std::size_t num_channels)
      : num_groups_(num_groups), num_channels_(num_channels) {}
  XGRAD_ARG(std::size_t, num_groups);
  XGRAD_ARG(std::size_t, num_channels);
  XGRAD_ARG(double, eps) = 1e-5;
  XGRAD_ARG(bool, affine) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// group_norm with a learned weight (1) and bias (0) per channel (with affine), as torch's
/// GroupNorm(num_groups, num_channels): the same in training and evaluation.
class GroupNorm : public Module {
 public:
  explicit GroupNorm(const GroupNormOptions& options);
  GroupNorm(std::size_t num_groups, std::size_t num_channels)
      : GroupNorm(GroupNormOptions(num_groups, num_channels)) {}
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "GroupNorm"; }
  std::string extra_repr() const override;
  Tensor weight, bias;  ///< undefined without affine

 protected:
  GroupNormOptions options_;
};

/// InstanceNorm2d's options, as LibTorch's InstanceNorm2dOptions(num_features).eps(1e-5)
/// .affine(false); track_running_stats(true) is not supported (a ValueError when the layer is
/// made): each image is normalized by its own statistics, in training and evaluation alike.
class InstanceNormOptions {
 public:
  explicit InstanceNormOptions(std::size_t num_features) : num_features_(num_features) {}
  XGRAD_ARG(std::size_t, num_features);
  XGRAD_ARG(double, eps) = 1e-5;
  XGRAD_ARG(double, momentum) = 0.1;
  XGRAD_ARG(bool, affine) = false;
  XGRAD_ARG(bool, track_running_stats) = false;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};
using InstanceNorm2dOptions = InstanceNormOptions;

/// Each channel of each image (N, C, H, W) normalized by its own mean and biased variance, as
/// torch's InstanceNorm2d: group_norm with one group per channel.
class InstanceNorm2d : public GroupNorm {
 public:
  explicit InstanceNorm2d(const InstanceNormOptions& options);
  explicit InstanceNorm2d(std::size_t num_features)
      : InstanceNorm2d(InstanceNormOptions(num_features)) {}
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "InstanceNorm2d"; }
};

/// Upsample's options, as LibTorch's UpsampleOptions().scale_factor({2, 2}).mode(...)
/// .align_corners(false): those of interpolate.
using UpsampleOptions = InterpolateFuncOptions;

/// interpolate of images (N, C, H, W) by the options (nearest by default), as torch's Upsample.
class Upsample : public Module {
 public:
  explicit Upsample(const UpsampleOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override { return interpolate(x, options_); }
  std::string name() const override { return "Upsample"; }

 private:
  UpsampleOptions options_;
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
/// BatchNorm1d's and BatchNorm2d's options, as LibTorch's: BatchNorm2dOptions(64).eps(1e-3)
/// .momentum(0.01).affine(false); dtype is the parameters' and buffers' (xgrad's).
class BatchNormOptions {
 public:
  BatchNormOptions(std::size_t num_features)  // NOLINT: implicit, as LibTorch's
      : num_features_(num_features) {}
  XGRAD_ARG(std::size_t, num_features);
  XGRAD_ARG(double, eps) = 1e-5;
  XGRAD_ARG(double, momentum) = 0.1;
  XGRAD_ARG(bool, affine) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};
using BatchNorm1dOptions = BatchNormOptions;
using BatchNorm2dOptions = BatchNormOptions;

class BatchNorm : public Module {
 public:
  BatchNorm(std::size_t channels, std::size_t input_rank, double eps = 1e-5, double momentum = 0.1,
            bool affine = true, Dtype dtype = Dtype::float32);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return rank_ == 2 ? "BatchNorm1d" : "BatchNorm2d"; }
  std::string extra_repr() const override;

  Tensor weight, bias;  ///< undefined without affine
  Tensor running_mean, running_var, num_batches_tracked;
  /// An activation applied in the same op (batch_norm(..., epilogue)), as Linear's: the ReLU after
  /// a BatchNorm2d without a pass of its own. none by default.
  Epilogue epilogue = Epilogue::none;

 private:
  std::size_t channels_, rank_;
  double eps_, momentum_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(std::size_t channels, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, Dtype dtype = Dtype::float32)
      : BatchNorm(channels, 2, eps, momentum, affine, dtype) {}
  explicit BatchNorm1d(const BatchNormOptions& o)
      : BatchNorm(o.num_features(), 2, o.eps(), o.momentum(), o.affine(), o.dtype()) {}
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(std::size_t channels, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, Dtype dtype = Dtype::float32)
      : BatchNorm(channels, 4, eps, momentum, affine, dtype) {}
  explicit BatchNorm2d(const BatchNormOptions& o)
      : BatchNorm(o.num_features(), 4, o.eps(), o.momentum(), o.affine(), o.dtype()) {}
};

/// dropout(x, p) in training mode (train()), the identity in evaluation (eval()); masks drawn
/// from `gen`, which must outlive the module.
/// Dropout's options, as LibTorch's DropoutOptions(0.2) / DropoutOptions().p(0.2).
class DropoutOptions {
 public:
  DropoutOptions(double p = 0.5) : p_(p) {}  // NOLINT: implicit, as LibTorch's
  XGRAD_ARG(double, p);
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  explicit Dropout(const DropoutOptions& options, Generator& gen = default_generator())
      : Dropout(options.p(), gen) {}
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), *gen_); }
  std::string name() const override { return "Dropout"; }
  std::string extra_repr() const override;

 private:
  double p_;
  Generator* gen_;
};

}  // namespace xgrad::nn
