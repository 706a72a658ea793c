#pragma once
/// \file
/// The activation table: every activation of xgrad, declared once, with its name, its op, and its
/// parameters and their defaults. The activation modules, make_activation, activation_names, the
/// programs' flags and the walkthrough's network specs all read it; a test checks that
/// docs/ops.md lists each one. Adding an activation: docs/adding_an_op.md.
///
///   auto act = nn::make_activation("leaky_relu");    // LeakyReLU(negative_slope=0.01)
///   nn::LeakyReLU act2(0.2);                          // the same module, typed as in PyTorch
///   nn::Activation act3("elu", {0.5});                // by name, with its parameters

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

struct ActivationParameter {
  std::string_view name;  ///< "negative_slope"
  double default_value;   ///< 0.01
};

/// One line of the table.
struct ActivationInfo {
  std::string_view name;    ///< "leaky_relu": the op's name, as make_activation and specs take it
  std::string_view module;  ///< "LeakyReLU": the module's name, as PyTorch prints it
  std::vector<ActivationParameter> parameters;  ///< in the order the op takes them
  /// The op applied to x with the given parameters (one value per entry of `parameters`).
  Tensor (*apply)(const Tensor& x, std::span<const double> parameters);
};

/// The table, in a fixed order: identity first.
const std::vector<ActivationInfo>& activations();
/// The line named `name` (ValueError listing the known names otherwise).
const ActivationInfo& find_activation(std::string_view name);
/// The names of the table, in its order.
const std::vector<std::string>& activation_names();

/// The module of one activation: applies its op elementwise. Missing parameters take the table's
/// defaults; more parameters than the activation has is a ValueError.
class Activation : public Module {
 public:
  explicit Activation(std::string_view name, std::vector<double> parameters = {});
  Tensor forward(const Tensor& x) override { return info_->apply(x, arguments_); }
  std::string name() const override { return std::string(info_->module); }
  std::string extra_repr() const override;  ///< "negative_slope=0.01"
  std::string_view op() const { return info_->name; }  ///< "leaky_relu"
  const std::vector<double>& arguments() const { return arguments_; }

 private:
  const ActivationInfo* info_;
  std::vector<double> arguments_;
};

/// The activation named `name`, with its parameters (defaults where not given).
std::shared_ptr<Activation> make_activation(std::string_view name,
                                            std::vector<double> parameters = {});

/// A compile-time name, for the typed modules below.
template <std::size_t N>
struct ActivationName {
  char text[N];
  constexpr ActivationName(const char (&s)[N]) { std::copy_n(s, N, text); }  // NOLINT: implicit
  constexpr std::string_view view() const { return {text, N - 1}; }
};

/// The module of the activation `Name` as a type of its own, so that code reads as in PyTorch:
/// nn::ReLU(), nn::LeakyReLU(0.2). Its arguments are the activation's parameters, in order.
template <ActivationName Name>
class ActivationOf : public Activation {
 public:
  template <class... Args>
  explicit ActivationOf(Args... parameters)
      : Activation(Name.view(), {static_cast<double>(parameters)...}) {}
};

using Identity = ActivationOf<"identity">;
using ReLU = ActivationOf<"relu">;
using LeakyReLU = ActivationOf<"leaky_relu">;
using Sigmoid = ActivationOf<"sigmoid">;
using Tanh = ActivationOf<"tanh">;
using GELU = ActivationOf<"gelu">;
using Softplus = ActivationOf<"softplus">;
using ELU = ActivationOf<"elu">;
using SiLU = ActivationOf<"silu">;
using Mish = ActivationOf<"mish">;

}  // namespace xgrad::nn
