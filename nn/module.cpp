#include "nn/module.hpp"

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
  collect("", out);
  return out;
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, p] : parameters_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
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
