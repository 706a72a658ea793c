#pragma once
/// \file
/// Parameter initialization, as torch::nn::init: each fills a tensor in place and returns it.
/// fan_in and fan_out of a weight of shape (out, in) are in and out.

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::nn::init {

Tensor uniform_(const Tensor& t, double low, double high, Generator& gen = default_generator());
Tensor normal_(const Tensor& t, double mean, double std, Generator& gen = default_generator());
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
/// Glorot: uniform in +-gain sqrt(6 / (fan_in + fan_out)), or normal with std gain sqrt(2 / (fan_in
/// + fan_out)).
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, Generator& gen = default_generator());
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, Generator& gen = default_generator());
/// He, for ReLU networks (fan_in mode, gain sqrt 2): uniform in +-sqrt(6 / fan_in), normal with
/// std sqrt(2 / fan_in).
Tensor kaiming_uniform_(const Tensor& t, Generator& gen = default_generator());
Tensor kaiming_normal_(const Tensor& t, Generator& gen = default_generator());

}  // namespace xgrad::nn::init
