#include "nn/module.hpp"

#include <algorithm>

#include "autograd/error.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"

namespace xgrad::nn {

Tensor Module::forward(const Tensor&) {
  throw ValueError(name() + ": this module has no single-input forward()");
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [name, b] : named_buffers()) out.push_back(b);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

// Depth first, own tensors before the children's; a tensor met again (tied) is left out.
void Module::collect(const std::string& prefix, bool buffers,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : buffers ? buffers_ : parameters_) {
    const bool seen = std::any_of(
        out.begin(), out.end(), [&](const auto& entry) { return entry.second.impl() == t.impl(); });
    if (!seen) out.emplace_back(prefix + name, t);
  }
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

StateDict Module::state_dict() const {
  StateDict out = named_parameters();
  for (auto& entry : named_buffers()) out.push_back(std::move(entry));
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict mine = state_dict();
  const auto find = [](const StateDict& d, const std::string& name) -> const Tensor* {
    for (const auto& [n, t] : d)
      if (n == name) return &t;
    return nullptr;
  };
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : mine)
    if (!find(state, name)) missing.push_back(name);
  for (const auto& [name, t] : state)
    if (!find(mine, name)) unexpected.push_back(name);
  if (strict && (!missing.empty() || !unexpected.empty()))
    throw ValueError("load_state_dict: " + this->name() + ": missing " +
                     (missing.empty() ? std::string("none") : join(missing, ", ")) +
                     "; unexpected " +
                     (unexpected.empty() ? std::string("none") : join(unexpected, ", ")));
  for (const auto& [name, t] : mine)  // check every entry before changing any
    if (const Tensor* given = find(state, name); given && given->shape() != t.shape())
      throw ShapeError("load_state_dict: '" + name + "' has shape " + shape_str(t.shape()) +
                       " in " + this->name() + " but " + shape_str(given->shape()) + " given");
  NoGradGuard no_grad;
  for (const auto& [name, t] : mine)
    if (const Tensor* given = find(state, name))
      t.set_data(given->dtype() == t.dtype() ? *given : cast(given->detach(), t.dtype()));
}

Module& Module::to(Dtype dtype) {
  NoGradGuard no_grad;
  for (const auto& [name, t] : state_dict())
    if (t.dtype() != dtype) t.set_data(cast(t.detach(), dtype));
  return *this;
}

Module& Module::requires_grad_(bool on) {
  for (Tensor p : parameters()) p.requires_grad_(on);
  return *this;
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

Tensor Module::register_parameter(std::string name, Tensor tensor) {
  if (!tensor.is_leaf())
    throw ValueError(this->name() + ": parameter '" + name +
                     "' must be a leaf tensor (detach() it first)");
  tensor.requires_grad_(true);
  parameters_.emplace_back(std::move(name), tensor);
  return tensor;
}

Tensor Module::register_buffer(std::string name, Tensor tensor) {
  if (!tensor.is_leaf() || tensor.requires_grad())
    throw ValueError(this->name() + ": buffer '" + name +
                     "' must be a leaf that does not require grad (detach() it first)");
  buffers_.emplace_back(std::move(name), tensor);
  return tensor;
}

std::string Module::str() const {
  std::string out;
  print(out, "");
  return out;
}

void Module::print(std::string& out, const std::string& indent) const {
  out += name() + "(" + extra_repr();
  if (children_.empty()) {
    out += ")";
    return;
  }
  out += "\n";
  for (const auto& [child_name, child] : children_) {
    out += indent + "  (" + child_name + "): ";
    child->print(out, indent + "  ");
    out += "\n";
  }
  out += indent + ")";
}

}  // namespace xgrad::nn
