#include "nn/conv.hpp"

#include <cmath>

#include "nn/init.hpp"

namespace xgrad::nn {

namespace {
std::string pair_str(const std::array<std::size_t, 2>& v) {
  std::string out(1, '(');  // not "(" + ...: g++ 12 warns on it, wrongly (-Wrestrict)
  out += std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
  return out;
}
}  // namespace

namespace {
// Channels and a kernel > 0, groups dividing both channel counts (ValueError naming op).
void check_conv(const char* op, std::size_t in, std::size_t out, std::size_t kernel_taps,
                std::size_t groups, const std::string& kernel) {
  if (in == 0 || out == 0 || kernel_taps == 0 || groups == 0 || in % groups != 0 ||
      out % groups != 0)
    throw ValueError(std::string(op) +
                     ": needs channels and a kernel > 0 and groups dividing both channel "
                     "counts, got in " +
                     std::to_string(in) + ", out " + std::to_string(out) + ", kernel " + kernel +
                     ", groups " + std::to_string(groups));
}
}  // namespace

Conv2d::Conv2d(const Conv2dOptions& opts, Generator& gen) : options(opts) {
  const auto [kh, kw] = opts.kernel_size();
  check_conv("Conv2d", opts.in_channels(), opts.out_channels(), kh * kw, opts.groups(),
             pair_str(opts.kernel_size()));
  const std::size_t fan_in = opts.in_channels() / opts.groups() * kh * kw;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  register_parameter("weight", weight,
                     zeros({opts.out_channels(), opts.in_channels() / opts.groups(), kh, kw},
                           {.dtype = opts.dtype()}));
  init::uniform_(weight, -bound, bound, gen);
  if (opts.bias()) {
    register_parameter("bias", bias, zeros({opts.out_channels()}, {.dtype = opts.dtype()}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, options.func()); }

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& opts, Generator& gen)
    : options(opts) {
  const auto [kh, kw] = opts.kernel_size();
  check_conv("ConvTranspose2d", opts.in_channels(), opts.out_channels(), kh * kw, opts.groups(),
             pair_str(opts.kernel_size()));
  const std::size_t fan_in = opts.out_channels() / opts.groups() * kh * kw;  // weight's axis 1
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  register_parameter("weight", weight,
                     zeros({opts.in_channels(), opts.out_channels() / opts.groups(), kh, kw},
                           {.dtype = opts.dtype()}));
  init::uniform_(weight, -bound, bound, gen);
  if (opts.bias()) {
    register_parameter("bias", bias, zeros({opts.out_channels()}, {.dtype = opts.dtype()}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

std::string ConvTranspose2d::extra_repr() const {
  const ConvTranspose2dFuncOptions& f = options.func();
  std::string s =
      std::to_string(options.in_channels()) + ", " + std::to_string(options.out_channels()) +
      ", kernel_size=" + pair_str(options.kernel_size()) + ", stride=" + pair_str(f.stride());
  if (f.padding()[0] || f.padding()[1]) s += ", padding=" + pair_str(f.padding());
  if (f.output_padding()[0] || f.output_padding()[1])
    s += ", output_padding=" + pair_str(f.output_padding());
  if (f.groups() != 1) s += ", groups=" + std::to_string(f.groups());
  if (!bias.defined()) s += ", bias=false";
  return s;
}

std::string Conv2d::extra_repr() const {
  std::string s =
      std::to_string(options.in_channels()) + ", " + std::to_string(options.out_channels()) +
      ", kernel_size=" + pair_str(options.kernel_size()) + ", stride=" + pair_str(options.stride());
  if (options.padding()[0] || options.padding()[1]) s += ", padding=" + pair_str(options.padding());
  if (options.dilation()[0] != 1 || options.dilation()[1] != 1)
    s += ", dilation=" + pair_str(options.dilation());
  if (options.groups() != 1) s += ", groups=" + std::to_string(options.groups());
  if (!bias.defined()) s += ", bias=false";
  return s;
}

Conv1d::Conv1d(const Conv1dOptions& opts, Generator& gen) : options(opts) {
  check_conv("Conv1d", opts.in_channels(), opts.out_channels(), opts.kernel_size(), opts.groups(),
             std::to_string(opts.kernel_size()));
  const double bound =
      1.0 / std::sqrt(static_cast<double>(opts.in_channels() / opts.groups() * opts.kernel_size()));
  register_parameter(
      "weight", weight,
      zeros({opts.out_channels(), opts.in_channels() / opts.groups(), opts.kernel_size()},
            {.dtype = opts.dtype()}));
  init::uniform_(weight, -bound, bound, gen);
  if (opts.bias()) {
    register_parameter("bias", bias, zeros({opts.out_channels()}, {.dtype = opts.dtype()}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

std::string Conv1d::extra_repr() const {
  std::string s = std::to_string(options.in_channels()) + ", " +
                  std::to_string(options.out_channels()) +
                  ", kernel_size=" + std::to_string(options.kernel_size()) +
                  ", stride=" + std::to_string(options.stride());
  if (options.padding()) s += ", padding=" + std::to_string(options.padding());
  if (options.dilation() != 1) s += ", dilation=" + std::to_string(options.dilation());
  if (options.groups() != 1) s += ", groups=" + std::to_string(options.groups());
  if (!bias.defined()) s += ", bias=false";
  return s;
}

std::string Pool2d::extra_repr() const {
  return "kernel_size=" + pair_str(options.kernel_size()) +
         ", stride=" + pair_str(options.stride()) + ", padding=" + pair_str(options.padding());
}

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + pair_str(size_); }

BatchNorm::BatchNorm(std::size_t channels, std::size_t input_rank, double eps, double momentum,
                     bool affine, Dtype dtype)
    : channels_(channels), rank_(input_rank), eps_(eps), momentum_(momentum) {
  if (channels == 0 || !(eps > 0) || !(momentum >= 0 && momentum <= 1))
    throw ValueError("BatchNorm: needs channels > 0, eps > 0 and momentum in [0, 1], got " +
                     std::to_string(channels) + ", " + number_str(eps) + ", " +
                     number_str(momentum));
  if (affine) {
    register_parameter("weight", weight, ones({channels}, {.dtype = dtype}));
    register_parameter("bias", bias, zeros({channels}, {.dtype = dtype}));
  }
  register_buffer("running_mean", running_mean, zeros({channels}, {.dtype = dtype}));
  register_buffer("running_var", running_var, ones({channels}, {.dtype = dtype}));
  register_buffer("num_batches_tracked", num_batches_tracked, zeros({}, {.dtype = dtype}));
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (x.dim() != rank_ && !(rank_ == 2 && x.dim() == 3))
    throw ShapeError(
        name() + ": needs " +
        (rank_ == 2 ? std::string("(N, C) or (N, C, L)") : std::string("(N, C, H, W)")) +
        " input, got " + shape_str(x.shape()));
  if (is_training()) {
    const Tensor counter = num_batches_tracked;
    if (counter.dtype() == Dtype::float32)
      counter.mutable_value<float>()() += 1;
    else
      counter.mutable_value<double>()() += 1;
  }
  return batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum_, eps_,
                    epilogue);
}

std::string BatchNorm::extra_repr() const {
  return std::to_string(channels_) + ", eps=" + number_str(eps_) +
         ", momentum=" + number_str(momentum_) +
         ", affine=" + (weight.defined() ? "true" : "false");
}

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  if (!(p >= 0 && p <= 1)) throw ValueError("Dropout: p must be in [0, 1], got " + number_str(p));
}

std::string Dropout::extra_repr() const { return "p=" + number_str(p_); }

// ---- one-axis pools, group and instance norm ---------------------------------------------------

std::string MaxPool1d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_);
}

std::string AvgPool1d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_);
}

GroupNorm::GroupNorm(const GroupNormOptions& o) : options_(o) {
  if (o.num_groups() == 0 || o.num_channels() % o.num_groups() != 0)
    throw ValueError("GroupNorm: num_channels (" + std::to_string(o.num_channels()) +
                     ") must be divisible by num_groups (" + std::to_string(o.num_groups()) + ")");
  if (o.affine()) {
    register_parameter("weight", weight, ones({o.num_channels()}, {.dtype = o.dtype()}));
    register_parameter("bias", bias, zeros({o.num_channels()}, {.dtype = o.dtype()}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != options_.num_channels())
    throw ShapeError(name() + ": needs x (N, " + std::to_string(options_.num_channels()) +
                     ", ...), got " + shape_str(x.shape()));
  return group_norm(x, options_.num_groups(), weight, bias, options_.eps());
}

std::string GroupNorm::extra_repr() const {
  return std::to_string(options_.num_groups()) + ", " + std::to_string(options_.num_channels()) +
         ", eps=" + number_str(options_.eps()) +
         ", affine=" + (options_.affine() ? "true" : "false");
}

InstanceNorm2d::InstanceNorm2d(const InstanceNormOptions& o)
    : GroupNorm(GroupNormOptions(o.num_features(), o.num_features())
                    .eps(o.eps())
                    .affine(o.affine())
                    .dtype(o.dtype())) {
  if (o.track_running_stats())
    throw ValueError(
        "InstanceNorm2d: track_running_stats(true) is not supported; each image is normalized by "
        "its own statistics");
}

Tensor InstanceNorm2d::forward(const Tensor& x) {
  if (x.dim() != 4)
    throw ShapeError("InstanceNorm2d: needs images (N, C, H, W), got " + shape_str(x.shape()));
  return GroupNorm::forward(x);
}

}  // namespace xgrad::nn
