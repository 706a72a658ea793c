#pragma once
/// \file
/// The layers: Linear, one module per activation op, Sequential, and the MLP builder.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace xgrad::nn {

/// y = x W^T + b, W of shape (out_features, in_features) as in the document (W_l in
/// R^{d_l x d_{l-1}}), b of shape (out_features). x has one row per sample, or is one sample.
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

 private:
  std::size_t in_, out_;
};

/// One module per activation op. Each applies its op elementwise.
class Activation : public Module {
 public:
  Activation(std::string name, std::string op, std::function<Tensor(const Tensor&)> f)
      : name_(std::move(name)), op_(std::move(op)), f_(std::move(f)) {}
  Tensor forward(const Tensor& x) override { return f_(x); }
  std::string name() const override { return name_; }
  const std::string& op() const { return op_; }  ///< "relu", as make_activation takes it

 private:
  std::string name_, op_;
  std::function<Tensor(const Tensor&)> f_;
};

struct Identity : Activation {
  Identity();
};
struct ReLU : Activation {
  ReLU();
};
struct LeakyReLU : Activation {
  explicit LeakyReLU(double negative_slope = 0.01);
};
struct Sigmoid : Activation {
  Sigmoid();
};
struct Tanh : Activation {
  Tanh();
};
struct GELU : Activation {
  GELU();
};
struct Softplus : Activation {
  Softplus();
};
struct ELU : Activation {
  explicit ELU(double alpha = 1.0);
};
struct SiLU : Activation {
  SiLU();
};

/// The activation named as the op: "identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
/// "softplus", "elu", "silu" (ValueError listing them for anything else).
std::shared_ptr<Activation> make_activation(const std::string& op);
const std::vector<std::string>& activation_names();

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

/// The document's network: Linear layers of the given sizes (sizes[0] inputs, ..., sizes.back()
/// outputs), each followed by the activation except the last, whose outputs are the logits.
/// Parameters are named "0.weight", "0.bias", "2.weight", ... as in a PyTorch Sequential.
class MLP : public Sequential {
 public:
  MLP(const std::vector<std::size_t>& sizes, const std::string& activation = "relu",
      Dtype dtype = Dtype::float32, Generator& gen = default_generator());
  std::string name() const override { return "MLP"; }
  const std::vector<std::shared_ptr<Linear>>& linears() const { return linears_; }
  const std::string& activation() const { return activation_; }

 private:
  std::vector<std::shared_ptr<Linear>> linears_;
  std::string activation_;
};

}  // namespace xgrad::nn
