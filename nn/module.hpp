#pragma once
/// \file
/// Module: the base of every layer, as torch::nn::Module. A module registers its parameters and its
/// child modules by name; the base collects them (parameters(), named_parameters() with dotted
/// names such as "layers.0.weight") and buffers, zeroes their gradients, switches train/eval mode,
/// gives and takes its state by name (state_dict), converts its dtype, and prints itself as a tree.

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

/// One option of a layer's options class, as LibTorch's TORCH_ARG: `XGRAD_ARG(bool, bias) = true;`
/// declares bias(v) (sets it and returns the options, for chaining), bias() (reads it) and the
/// member bias_ with its default.
#define XGRAD_ARG(T, name)                  \
 public:                                    \
  auto& name(const T& value) {              \
    name##_ = value;                        \
    return *this;                           \
  }                                         \
  const T& name() const { return name##_; } \
                                            \
 private:                                   \
  T name##_

namespace xgrad::nn {

/// The number of elements of a tensor of `shape`.
inline std::size_t shape_numel(const Shape& shape) {
  std::size_t n = 1;
  for (const std::size_t d : shape) n *= d;
  return n;
}

/// Named tensors in order: a module's parameters and buffers (Module::state_dict).
using StateDict = std::vector<std::pair<std::string, Tensor>>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  /// Not copied: the registry points at the module's own fields (register_parameter).
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  /// Modules that map one tensor to one tensor override forward; operator() runs the forward
  /// pre-hooks, forward, then the forward hooks (call modules through it, as PyTorch's).
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input);

  /// Every parameter of this module and (recurse) its children, each once: a tensor registered
  /// twice (tied weights: an output layer sharing an embedding's matrix) is listed under its
  /// first name.
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  /// Buffers: tensors of the module's state that are not trained (batch norm's running
  /// statistics). Saved, loaded and converted with the parameters; not in parameters().
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;

  /// The direct children, in registration order; with their names.
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  /// This module (include_self) and every module below it, depth first, each once; with their
  /// dotted names ("" for this one, "layers.0", ...). A module not held by a shared_ptr is
  /// given as a handle that does not own it.
  std::vector<std::shared_ptr<Module>> modules(bool include_self = true);
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(
      bool include_self = true);
  /// fn(module) for this module, then every module below it (as LibTorch's apply): custom
  /// initialization, for one.
  Module& apply(const std::function<void(Module&)>& fn);

  /// Called by operator() with the input before forward (a returned tensor replaces the input),
  /// and with the input and output after it (a returned tensor replaces the output), as
  /// PyTorch's register_forward_pre_hook / register_forward_hook. Returns the hook's number,
  /// for remove_hook.
  using ForwardPreHook = std::function<std::optional<Tensor>(Module&, const Tensor& input)>;
  using ForwardHook =
      std::function<std::optional<Tensor>(Module&, const Tensor& input, const Tensor& output)>;
  std::size_t register_forward_pre_hook(ForwardPreHook hook);
  std::size_t register_forward_hook(ForwardHook hook);
  void remove_hook(std::size_t handle);

  /// Parameters then buffers by dotted name, as PyTorch's state_dict: the tensors themselves (copy
  /// them to keep a snapshot). A tied tensor is there under each of its names.
  StateDict state_dict() const;
  /// Copies each entry's values into the tensor of that name, converting the dtype to the
  /// module's. strict: every tensor of the module must be given (a tied one under any of its
  /// names) and no other name (ValueError listing the missing and unexpected ones); otherwise
  /// the names in common are loaded. ShapeError for a shape that differs, naming the entry;
  /// ValueError for two names of one tied tensor given different values. Nothing is changed
  /// when an error is thrown.
  void load_state_dict(const StateDict& state, bool strict = true);

  /// Converts every parameter and buffer to dtype in place (the layers' own handles follow), so
  /// that a custom module can be gradchecked in float64. Gradients are dropped.
  Module& to(Dtype dtype);
  /// Turns gradients on or off for every parameter: requires_grad_(false) freezes the module.
  Module& requires_grad_(bool on = true);
  /// Every parameter's gradient dropped (set_to_none, as LibTorch's default) or set to zeros.
  void zero_grad(bool set_to_none = true);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// "Linear": by default the name of the module's C++ type, without its namespace.
  virtual std::string name() const;
  virtual std::string extra_repr() const { return ""; }  ///< "in_features=3, out_features=2"
  /// The tree, as PyTorch prints modules. operator<< adds each module's own parameters (shapes
  /// and count) to its line, and the total at the end.
  std::string str() const;
  /// Floating-point operations of one forward from an input of shape `input` to one of shape
  /// `output`, for summary(): the matrix products' 2 m n k (Linear, Conv2d, Conv1d say theirs;
  /// 0 by default, for a module whose work is elementwise or is its children's).
  virtual double flops(const Shape& /*input*/, const Shape& /*output*/) const { return 0; }

 protected:
  /// Registers a leaf tensor as a parameter (it is made to require grad) and returns it.
  Tensor register_parameter(std::string name, Tensor tensor);
  /// The same, stored in `field` (a Tensor member of this module) and read from it: assigning
  /// the field later (`head->weight = emb->weight`, tied weights) is what parameters() and
  /// state_dict() then list. The layers register their weights so.
  void register_parameter(std::string name, Tensor& field, Tensor tensor);
  /// Registers a tensor of state that is not trained (it never requires grad) and returns it.
  Tensor register_buffer(std::string name, Tensor tensor);
  void register_buffer(std::string name, Tensor& field, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  // A registered tensor: held here, or read from a field of the module.
  struct Registered {
    std::string name;
    Tensor held;
    const Tensor* field = nullptr;
    const Tensor& tensor() const { return field ? *field : held; }
  };
  void collect(const std::string& prefix, bool buffers, bool recurse, bool tied_again,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void print(std::string& out, const std::string& indent, bool annotated) const;
  friend std::ostream& operator<<(std::ostream& os, const Module& module);

  std::vector<Registered> parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<std::size_t, ForwardPreHook>> pre_hooks_;
  std::vector<std::pair<std::size_t, ForwardHook>> hooks_;
  std::size_t next_hook_ = 0;
  bool training_ = true;
};

/// Prints the module's tree (str()), each line with the module's own parameters' shapes and
/// count, then the total count.
std::ostream& operator<<(std::ostream& os, const Module& module);

/// As torchinfo's summary: runs one forward of zeros of `input_shape` (dtype: int64 for a model
/// that starts with an Embedding) without recording, and gives a table of every module, indented
/// by depth: its type, output shape, own parameter count and FLOPs (Module::flops), then the
/// totals. A module called twice shows its last output and the sum of its FLOPs.
std::string summary(Module& module, const Shape& input_shape, Dtype dtype = Dtype::float32);

}  // namespace xgrad::nn
