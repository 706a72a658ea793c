#pragma once
// The reference CNN of the issue on convolutional networks, on (N, 1, 28, 28) inputs, which
// cnn_step, ddp_step and LibTorch's peer (torch_step cnn) train:
//   conv 1->32 3x3 pad 1, BN, ReLU; conv 32->32, BN, ReLU; max pool 2
//   conv 32->64, BN, ReLU; conv 64->64, BN, ReLU; max pool 2
//   flatten 3136 -> Linear 256, ReLU, dropout 0.5 -> Linear 10

#include <memory>

#include "nn/activation.hpp"
#include "nn/conv.hpp"
#include "nn/layers.hpp"

namespace bench {

inline std::shared_ptr<xgrad::nn::Sequential> reference_cnn(xgrad::Generator& gen) {
  auto net = std::make_shared<xgrad::nn::Sequential>();
  const auto block = [&](std::size_t in, std::size_t out) {
    net->push_back(std::make_shared<xgrad::nn::Conv2d>(
        xgrad::nn::Conv2dOptions(in, out, 3).padding(1), gen));
    auto norm = std::make_shared<xgrad::nn::BatchNorm2d>(out);
    norm->epilogue = xgrad::Epilogue::relu;  // ReLU fused, as a user asks for the fastest
    net->push_back(norm);
  };
  block(1, 32);
  block(32, 32);
  net->push_back(std::make_shared<xgrad::nn::MaxPool2d>(2));
  block(32, 64);
  block(64, 64);
  net->push_back(std::make_shared<xgrad::nn::MaxPool2d>(2));
  net->push_back(std::make_shared<xgrad::nn::Flatten>());
  auto hidden = std::make_shared<xgrad::nn::Linear>(3136, 256, true, xgrad::Dtype::float32, gen);
  hidden->epilogue = xgrad::Epilogue::relu;  // ReLU fused, as a user asks for the fastest
  net->push_back(hidden);
  net->push_back(std::make_shared<xgrad::nn::Dropout>(0.5, gen));
  net->push_back(std::make_shared<xgrad::nn::Linear>(256, 10, true, xgrad::Dtype::float32, gen));
  return net;
}

}  // namespace bench
