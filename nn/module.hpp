#pragma once
/// \file
/// Module: the base of every layer, as torch::nn::Module. A module registers its parameters and its
/// child modules by name; the base collects them (parameters(), named_parameters() with dotted
/// names such as "layers.0.weight") and buffers, zeroes their gradients, switches train/eval mode,
/// gives and takes its state by name (state_dict), converts its dtype, and prints itself as a tree.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::nn {

/// Named tensors in order: a module's parameters and buffers (Module::state_dict).
using StateDict = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;

  /// Modules that map one tensor to one tensor override forward; operator() calls it.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  /// Every parameter of this module and its children, each once: a tensor registered twice (tied
  /// weights: an output layer sharing an embedding's matrix) is listed under its first name.
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  /// Buffers: tensors of the module's state that are not trained (batch norm's running
  /// statistics). Saved, loaded and converted with the parameters; not in parameters().
  std::vector<Tensor> buffers() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;

  /// Parameters then buffers by dotted name, as PyTorch's state_dict: the tensors themselves (copy
  /// them to keep a snapshot).
  StateDict state_dict() const;
  /// Copies each entry's values into the tensor of that name, converting the dtype to the
  /// module's. strict: every name of the module must be given and no other (ValueError listing
  /// the missing and unexpected ones); otherwise the names in common are loaded. ShapeError for a
  /// shape that differs, naming the entry. Nothing is changed when an error is thrown.
  void load_state_dict(const StateDict& state, bool strict = true);

  /// Converts every parameter and buffer to dtype in place (the layers' own handles follow), so
  /// that a custom module can be gradchecked in float64. Gradients are dropped.
  Module& to(Dtype dtype);
  /// Turns gradients on or off for every parameter: requires_grad_(false) freezes the module.
  Module& requires_grad_(bool on = true);
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
  /// Registers a tensor of state that is not trained (it never requires grad) and returns it.
  Tensor register_buffer(std::string name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  void collect(const std::string& prefix, bool buffers,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void print(std::string& out, const std::string& indent) const;

  std::vector<std::pair<std::string, Tensor>> parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace xgrad::nn
