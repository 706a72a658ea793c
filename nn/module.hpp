#pragma once
/// \file
/// Module: the base of every layer, as torch::nn::Module. A module registers its parameters and its
/// child modules by name; the base collects them (parameters(), named_parameters() with dotted
/// names such as "layers.0.weight"), zeroes their gradients, switches train/eval mode, and prints
/// itself as a tree.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace xgrad::nn {

class Module {
 public:
  virtual ~Module() = default;

  /// Modules that map one tensor to one tensor override forward; operator() calls it.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  void zero_grad();

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  virtual std::string name() const = 0;                  ///< "Linear"
  virtual std::string extra_repr() const { return ""; }  ///< "in_features=3, out_features=2"
  std::string str() const;                               ///< the tree, as PyTorch prints modules

 protected:
  /// Registers a leaf tensor as a parameter (it is made to require grad) and returns it.
  Tensor register_parameter(std::string name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  void print(std::string& out, const std::string& indent) const;

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace xgrad::nn
