#include "nn/activation.hpp"

#include <sstream>

#include "autograd/ops.hpp"

namespace xgrad::nn {

namespace {
using Args = std::span<const double>;
}  // namespace

const std::vector<ActivationInfo>& activations() {
  static const std::vector<ActivationInfo> table = {
      {"identity", "Identity", {}, [](const Tensor& x, Args) { return x; }},
      {"relu", "ReLU", {}, [](const Tensor& x, Args) { return relu(x); }},
      {"leaky_relu", "LeakyReLU", {{"negative_slope", 0.01}},
       [](const Tensor& x, Args p) { return leaky_relu(x, p[0]); }},
      {"sigmoid", "Sigmoid", {}, [](const Tensor& x, Args) { return sigmoid(x); }},
      {"tanh", "Tanh", {}, [](const Tensor& x, Args) { return tanh(x); }},
      {"gelu", "GELU", {}, [](const Tensor& x, Args) { return gelu(x); }},
      {"softplus", "Softplus", {}, [](const Tensor& x, Args) { return softplus(x); }},
      {"elu", "ELU", {{"alpha", 1.0}}, [](const Tensor& x, Args p) { return elu(x, p[0]); }},
      {"silu", "SiLU", {}, [](const Tensor& x, Args) { return silu(x); }},
      {"mish", "Mish", {}, [](const Tensor& x, Args) { return mish(x); }},
  };
  return table;
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ActivationInfo& a : activations()) out.emplace_back(a.name);
    return out;
  }();
  return names;
}

const ActivationInfo& find_activation(std::string_view name) {
  for (const ActivationInfo& a : activations())
    if (a.name == name) return a;
  throw ValueError("unknown activation '" + std::string(name) +
                   "'; expected one of: " + join(activation_names(), ", "));
}

Activation::Activation(std::string_view name, std::vector<double> parameters)
    : info_(&find_activation(name)), arguments_(std::move(parameters)) {
  const std::size_t expected = info_->parameters.size();
  if (arguments_.size() > expected)
    throw ValueError(std::string(info_->module) + ": takes " + std::to_string(expected) +
                     " parameter(s), got " + std::to_string(arguments_.size()));
  for (std::size_t i = arguments_.size(); i < expected; ++i)
    arguments_.push_back(info_->parameters[i].default_value);
}

std::string Activation::extra_repr() const {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < arguments_.size(); ++i) {
    std::ostringstream value;
    value << arguments_[i];
    parts.push_back(std::string(info_->parameters[i].name) + "=" + value.str());
  }
  return join(parts, ", ");
}

std::shared_ptr<Activation> make_activation(std::string_view name, std::vector<double> parameters) {
  return std::make_shared<Activation>(name, std::move(parameters));
}

}  // namespace xgrad::nn
