#pragma once
/// \file
/// The layers: Linear, Sequential, and the MLP builder. The activation modules are in
/// nn/activation.hpp.

#include <memory>
#include <string>
#include <vector>

#include "xgrad/autograd/ops.hpp"
#include "xgrad/nn/activation.hpp"
#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

/// y = x W^T + b, W of shape (out_features, in_features) (rows are output units), b of shape
/// (out_features). x has one row per sample, or is one sample.
/// Initialized as PyTorch does: W and b uniform in +-1/sqrt(in_features).
class Linear : public Module {
 public:
  Linear(std::size_t in_features, std::size_t out_features, bool bias = true,
         Dtype dtype = Dtype::float32, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Linear"; }
  std::string extra_repr() const override;

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  /// An activation applied in the same op (linear(x, weight, bias, epilogue)): one oneDNN
  /// primitive in float32, no pre-activation stored. none by default.
  Epilogue epilogue = Epilogue::none;

 private:
  std::size_t in_, out_;
};

/// Runs its children in order; they are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential& push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Sequential"; }
  std::size_t size() const { return children().size(); }
  const std::shared_ptr<Module>& operator[](std::size_t i) const { return children().at(i).second; }
};

/// A multilayer perceptron: Linear layers of the given sizes (sizes[0] inputs, ..., sizes.back()
/// outputs), each followed by the activation except the last, whose outputs are the logits.
/// Parameters are named "0.weight", "0.bias", "2.weight", ... as in a PyTorch Sequential.
class MLP : public Sequential {
 public:
  MLP(const std::vector<std::size_t>& sizes, const std::string& activation = "relu",
      Dtype dtype = Dtype::float32, Generator& gen = default_generator());
  std::string name() const override { return "MLP"; }
  const std::vector<std::shared_ptr<Linear>>& linears() const { return linears_; }
  const std::string& activation() const { return activation_; }
  /// Runs each hidden layer's activation inside its Linear (Linear::epilogue) instead of as a
  /// module of its own: same values to float rounding, same parameters and names, faster. Only
  /// relu, tanh and sigmoid fuse (ValueError for the others). fuse(false) undoes it.
  MLP& fuse(bool on = true);
  bool fused() const { return fused_; }
  Tensor forward(const Tensor& x) override;

 private:
  std::vector<std::shared_ptr<Linear>> linears_;
  std::vector<std::shared_ptr<Module>> activations_;
  std::string activation_;
  bool fused_ = false;
};

}  // namespace xgrad::nn
