#pragma once
/// \file
/// Custom differentiable ops without touching the library, in two forms.
///
/// 1. A struct with forward and backward and a context for what backward needs, as PyTorch's
///    torch::autograd::Function:
///
///      struct Cube : xgrad::Function<Cube> {
///        static Tensor forward(FunctionContext& ctx, const Tensor& x) {
///          ctx.save_for_backward({x});
///          return x * x * x;
///        }
///        static std::vector<Tensor> backward(FunctionContext& ctx, const Tensor& grad) {
///          const Tensor x = ctx.saved()[0];
///          return {grad * 3.0 * x * x};
///        }
///      };
///      Tensor y = Cube::apply(x);
///
///    forward runs with grad mode off (its ops are not recorded: the struct is one tape entry).
///    backward returns one gradient per Tensor argument of forward, in order (an undefined Tensor
///    for an input that gets none), written with tensor ops so that create_graph and gradgradcheck
///    work through it. For second derivatives, compute backward from saved inputs and outputs:
///    an intermediate saved in forward is a constant to the tape. Other arguments (numbers,
///    options) are passed through to forward; keep what backward needs of them in ctx.saved_data.
///
/// 2. A closure for one-liners, which saves the inputs and the output itself:
///
///      Tensor y = custom_op("cube", {x}, [](const auto& in) { return in[0] * in[0] * in[0]; },
///                           [](const auto& in, const Tensor& out, const Tensor& g) {
///                             return std::vector<Tensor>{g * 3.0 * in[0] * in[0]}; });
///
/// Both are checked with gradcheck and gradgradcheck like the built-in ops (docs/adding_an_op.md).

#include <any>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "xgrad/autograd/grad_mode.hpp"
#include "xgrad/autograd/node.hpp"

namespace xgrad {

namespace detail {
class CustomNode;
}

class FunctionContext {
 public:
  /// Tensors backward needs: inputs, or the output (kept as its value only, so no cycle forms).
  void save_for_backward(std::initializer_list<Tensor> tensors) { pending_.assign(tensors); }
  void save_for_backward(std::vector<Tensor> tensors) { pending_ = std::move(tensors); }
  /// The saved tensors, in the order given (AutogradError after a backward released them).
  std::vector<Tensor> saved() const;
  /// Anything else backward needs: numbers, flags, shapes.
  std::map<std::string, std::any> saved_data;

 private:
  friend class detail::CustomNode;
  std::vector<Tensor> pending_;  ///< saved during forward; moved onto the node once it exists
  std::size_t saved_count_ = 0;
  const Node* node_ = nullptr;
};

namespace detail {
/// The node behind a custom op: it owns the context and calls the user's backward with it.
class CustomNode : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(FunctionContext&, const Tensor&)>;
  CustomNode(std::string name, Backward backward)
      : name_(std::move(name)), backward_(std::move(backward)) {}
  std::string_view name() const override { return name_; }
  void backward(const Tensor& grad, std::span<Tensor> grads) override;
  /// Takes over the context of the forward call; its tensors become this node's saved tensors.
  void adopt(FunctionContext&& ctx);

 private:
  FunctionContext ctx_;
  std::string name_;
  Backward backward_;
};

/// Records `out` as the result of a custom op on `inputs`, moving the context's saved tensors onto
/// the node. Does nothing when nothing requires grad or grad mode is off.
void record_custom(Tensor& out, std::span<const Tensor* const> inputs, std::string name,
                   FunctionContext&& ctx, CustomNode::Backward backward);

template <class T>
constexpr bool is_tensor = std::is_same_v<std::decay_t<T>, Tensor>;
}  // namespace detail

template <class F>
class Function {
 public:
  template <class... Args>
  static Tensor apply(Args&&... args) {
    std::vector<const Tensor*> inputs;
    (collect(inputs, args), ...);
    FunctionContext ctx;
    Tensor out;
    {
      NoGradGuard no_grad;
      out = F::forward(ctx, args...);
    }
    detail::record_custom(out, inputs, op_name(), std::move(ctx),
                          [](FunctionContext& c, const Tensor& g) { return F::backward(c, g); });
    return out;
  }

 private:
  template <class A>
  static void collect(std::vector<const Tensor*>& inputs, const A& arg) {
    if constexpr (detail::is_tensor<A>) inputs.push_back(&arg);
  }
  /// F::name when F declares one (static constexpr const char* name = "swish"), else "custom".
  static std::string op_name() {
    if constexpr (requires { std::string_view(F::name); })
      return std::string(F::name);
    else
      return "custom";
  }
};

/// The closure form: forward(inputs) -> output; backward(inputs, output, grad) -> one gradient per
/// input. Both the inputs and the output are saved.
Tensor custom_op(std::string name, const std::vector<Tensor>& inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& forward,
                 std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs,
                                                   const Tensor& output, const Tensor& grad)>
                     backward);

}  // namespace xgrad
