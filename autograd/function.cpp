#include "autograd/function.hpp"

#include "autograd/detail/kernels.hpp"

namespace xgrad {

std::vector<Tensor> FunctionContext::saved() const {
  if (!node_) return pending_;  // still in forward
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < saved_count_; ++i) out.push_back(node_->saved(i));
  return out;
}

namespace detail {

namespace {
// A gradient may come back with the input's shape or one it broadcasts to (the engine sums it).
bool fits(const Shape& grad, const Shape& input) {
  if (grad == input) return true;
  if (grad.size() < input.size()) return false;
  try {
    return broadcast_shapes("", input, grad) == grad;
  } catch (const ShapeError&) {
    return false;
  }
}
}  // namespace

void CustomNode::adopt(FunctionContext&& ctx) {
  ctx_ = std::move(ctx);
  for (const Tensor& t : ctx_.pending_) save({t});
  ctx_.saved_count_ = ctx_.pending_.size();
  ctx_.pending_.clear();  // the node holds them now, as it holds any op's saved tensors
  ctx_.node_ = this;
}

void CustomNode::backward(const Tensor& grad, std::span<Tensor> grads) {
  std::vector<Tensor> result = backward_(ctx_, grad);
  if (result.size() != grads.size())
    throw AutogradError(name_ + ": backward returned " + std::to_string(result.size()) +
                        " gradients for " + std::to_string(grads.size()) +
                        " tensor inputs (return an undefined Tensor for an input that gets none)");
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (!result[i].defined() || !needs_grad(i)) continue;
    if (result[i].dtype() != edge(i).dtype)
      throw DtypeError(name_ + ": backward returned a " +
                       std::string(dtype_name(result[i].dtype())) + " gradient for input " +
                       std::to_string(i) + " of dtype " +
                       std::string(dtype_name(edge(i).dtype)));
    if (!fits(result[i].shape(), edge(i).shape))
      throw ShapeError(name_ + ": backward returned a gradient of shape " +
                       shape_str(result[i].shape()) + " for input " + std::to_string(i) +
                       " of shape " + shape_str(edge(i).shape));
    grads[i] = std::move(result[i]);
  }
}

void record_custom(Tensor& out, std::span<const Tensor* const> inputs, std::string name,
                   FunctionContext&& ctx, CustomNode::Backward backward) {
  if (!out.defined()) throw AutogradError(name + ": forward returned an undefined tensor");
  // A forward that returns an input as it is: the output is a new tensor over the same values,
  // so that the input stays what it was (a leaf stays a leaf) and no cycle is made.
  for (const Tensor* t : inputs)
    if (t->impl() == out.impl()) {
      auto alias = std::make_shared<TensorImpl>();
      alias->value = out.impl()->value;
      alias->version = out.impl()->version;
      alias->view = out.impl()->view;
      out = Tensor(std::move(alias));
      break;
    }
  if (auto* node = record_node<CustomNode>(out, inputs, std::move(name), std::move(backward)))
    node->adopt(std::move(ctx));
}

}  // namespace detail

Tensor custom_op(
    std::string name, const std::vector<Tensor>& inputs,
    const std::function<Tensor(const std::vector<Tensor>&)>& forward,
    std::function<std::vector<Tensor>(const std::vector<Tensor>&, const Tensor&, const Tensor&)>
        backward) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = forward(inputs);
  }
  std::vector<const Tensor*> pointers;
  for (const Tensor& t : inputs) pointers.push_back(&t);
  FunctionContext ctx;
  std::vector<Tensor> keep = inputs;
  keep.push_back(out);
  ctx.save_for_backward(std::move(keep));
  detail::record_custom(out, pointers, std::move(name), std::move(ctx),
                        [backward = std::move(backward)](FunctionContext& c, const Tensor& g) {
                          std::vector<Tensor> saved = c.saved();
                          const Tensor output = saved.back();
                          saved.pop_back();
                          return backward(saved, output, g);
                        });
  return out;
}

}  // namespace xgrad
