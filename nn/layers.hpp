#pragma once
/// \file
/// The layers: Linear, Sequential, and the MLP builder. The activation modules are in
/// nn/activation.hpp.

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "xgrad/autograd/ops.hpp"
#include "xgrad/nn/activation.hpp"
#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

/// Linear's options, as LibTorch's nn::LinearOptions(in, out).bias(false); dtype is the
/// parameters' (xgrad's).
class LinearOptions {
 public:
  LinearOptions(std::size_t in_features, std::size_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  XGRAD_ARG(std::size_t, in_features);
  XGRAD_ARG(std::size_t, out_features);
  XGRAD_ARG(bool, bias) = true;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// y = x W^T + b, W of shape (out_features, in_features) (rows are output units), b of shape
/// (out_features). x has one row per sample, or is one sample.
/// Initialized as PyTorch does: W and b uniform in +-1/sqrt(in_features).
class Linear : public Module {
 public:
  Linear(std::size_t in_features, std::size_t out_features, bool bias = true,
         Dtype dtype = Dtype::float32, Generator& gen = default_generator());
  explicit Linear(const LinearOptions& options, Generator& gen = default_generator())
      : Linear(options.in_features(), options.out_features(), options.bias(), options.dtype(),
               gen) {}
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Linear"; }
  std::string extra_repr() const override;
  /// 2 in out per output row.
  double flops(const Shape&, const Shape& output) const override {
    return 2.0 * static_cast<double>(in_) * static_cast<double>(shape_numel(output));
  }

  Tensor weight;
  Tensor bias;  ///< undefined without bias
  /// An activation applied in the same op (linear(x, weight, bias, epilogue)): over the output
  /// while it is in cache, no pre-activation stored. none by default.
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
  std::size_t size() const { return named_children().size(); }
  const std::shared_ptr<Module>& operator[](std::size_t i) const {
    return named_children().at(i).second;
  }
};

/// Holds modules in order, as LibTorch's ModuleList: registered as children "0", "1", ... (their
/// parameters are the list's), iterated as shared_ptr<Module>; no forward of its own.
/// Axis `dim` of the input unfolded into `sizes` (whose product is its length), as torch's
/// Unflatten: Unflatten(1, {2, 3}) takes (N, 6, L) to (N, 2, 3, L).
class Unflatten : public Module {
 public:
  Unflatten(std::ptrdiff_t dim, Shape sizes);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Unflatten"; }
  std::string extra_repr() const override;

 private:
  std::ptrdiff_t dim_;
  Shape sizes_;
};

/// softmax along dim, as torch's Softmax(dim).
class Softmax : public Module {
 public:
  explicit Softmax(std::ptrdiff_t dim) : dim_(dim) {}
  Tensor forward(const Tensor& x) override { return softmax(x, dim_); }
  std::string name() const override { return "Softmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim_); }

 private:
  std::ptrdiff_t dim_;
};

/// log_softmax along dim, as torch's LogSoftmax(dim).
class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(std::ptrdiff_t dim) : dim_(dim) {}
  Tensor forward(const Tensor& x) override { return log_softmax(x, dim_); }
  std::string name() const override { return "LogSoftmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim_); }

 private:
  std::ptrdiff_t dim_;
};

/// PReLU's options, as LibTorch's PReLUOptions().num_parameters(3).init(0.1).
class PReLUOptions {
 public:
  XGRAD_ARG(std::size_t, num_parameters) = 1;
  XGRAD_ARG(double, init) = 0.25;
  XGRAD_ARG(Dtype, dtype) = Dtype::float32;
};

/// prelu with a learned slope for x <= 0: one, or one per channel (axis 1), all starting at init.
class PReLU : public Module {
 public:
  explicit PReLU(const PReLUOptions& options = {});
  Tensor forward(const Tensor& x) override { return prelu(x, weight); }
  std::string name() const override { return "PReLU"; }
  std::string extra_repr() const override;
  Tensor weight;
};

class ModuleList : public Module {
 public:
  ModuleList() = default;
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);
  ModuleList& push_back(std::shared_ptr<Module> module);
  std::size_t size() const { return items_.size(); }
  bool is_empty() const { return items_.empty(); }
  /// Entry i (IndexError past the end).
  const std::shared_ptr<Module>& operator[](std::size_t i) const;
  /// Entry i as a module of type M (ValueError when it is another type).
  template <class M>
  std::shared_ptr<M> at(std::size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m)
      throw ValueError("ModuleList: entry " + std::to_string(i) + " is a " + (*this)[i]->name());
    return m;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

/// Modules by name, in insertion order, as LibTorch's ModuleDict: each registered as a child
/// under its key; iterated as (key, module) pairs; no forward of its own.
class ModuleDict : public Module {
 public:
  ModuleDict() = default;
  explicit ModuleDict(const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& items);
  /// Adds a module under a new key (ValueError for a key already there).
  ModuleDict& insert(const std::string& key, std::shared_ptr<Module> module);
  /// The module under key (ValueError naming the keys there are).
  const std::shared_ptr<Module>& operator[](const std::string& key) const;
  bool contains(const std::string& key) const;
  std::size_t size() const { return named_children().size(); }
  std::vector<std::string> keys() const;
  std::vector<std::shared_ptr<Module>> values() const { return children(); }
  auto begin() const { return named_children().begin(); }
  auto end() const { return named_children().end(); }
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
