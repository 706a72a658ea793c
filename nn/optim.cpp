#include "nn/optim.hpp"

#include <cmath>
#include <cstdio>
#include <numbers>

#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profiler.hpp"

namespace xgrad::nn {

namespace {
// "0.01", "1e+30": a number as a person writes it, not std::to_string's 300 digits.
std::string number_str(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

// Calls f(p, g, i) with the value and gradient arrays of each parameter that has a gradient.
template <class F>
void for_each_with_grad(const std::vector<Tensor>& params, F&& f) {
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor g = params[i].grad();
    if (!g.defined()) continue;
    if (params[i].dtype() == Dtype::float32)
      f(params[i].mutable_value<float>(), g.value<float>(), i);
    else
      f(params[i].mutable_value<double>(), g.value<double>(), i);
  }
}

// ValueError unless `value` is finite and in [low, high] (high_open: below high).
void check_hyperparameter(const char* op, const char* name, double value, double low,
                          double high = INFINITY, bool high_open = false) {
  const bool ok =
      std::isfinite(value) && value >= low && (high_open ? value < high : value <= high);
  if (ok) return;
  std::string rule = "must be a finite number >= " + number_str(low);
  if (std::isfinite(high))
    rule += std::string(high_open ? " and < " : " and <= ") + number_str(high);
  throw ValueError(std::string(op) + ": " + name + " " + rule + ", got " + number_str(value));
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr)
    : parameters_(std::move(parameters)), lr_(lr) {
  check_hyperparameter("optimizer", "the learning rate", lr, 0);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].defined() || !parameters_[i].is_leaf() || !parameters_[i].requires_grad())
      throw ValueError("optimizer: parameter " + std::to_string(i) +
                       " must be a leaf tensor that requires grad");
    for (std::size_t j = 0; j < i; ++j)
      if (parameters_[j].impl() == parameters_[i].impl())
        throw ValueError("optimizer: parameters " + std::to_string(j) + " and " +
                         std::to_string(i) + " are the same tensor; each must be given once");
  }
}

void Optimizer::set_lr(double lr) {
  check_hyperparameter("optimizer", "the learning rate", lr, 0);
  lr_ = lr;
}

void Optimizer::set_steps(std::int64_t steps) {
  if (steps < 0)
    throw ValueError("optimizer: the step count must be >= 0, got " + std::to_string(steps));
  steps_ = steps;
}

void Optimizer::zero_grad() {
  for (const Tensor& p : parameters_) p.zero_grad();
}

Tensor& Optimizer::buffer(const std::string& name, std::size_t i) {
  std::vector<Tensor>& slots = state_[name];
  slots.resize(parameters_.size());
  if (!slots[i].defined())
    slots[i] = zeros(parameters_[i].shape(), {.dtype = parameters_[i].dtype()});
  return slots[i];
}

bool Optimizer::has_buffer(const std::string& name, std::size_t i) const {
  const auto it = state_.find(name);
  return it != state_.end() && i < it->second.size() && it->second[i].defined();
}

void Optimizer::set_state(const std::string& name, std::size_t index, const Tensor& value) {
  const auto it = state_.find(name);
  if (it == state_.end())
    throw ValueError("optimizer: no state named '" + name + "' (is it another optimizer's?)");
  if (index >= parameters_.size())
    throw IndexError("optimizer: state " + name + "." + std::to_string(index) +
                     " for a parameter " + "that does not exist (" +
                     std::to_string(parameters_.size()) + " parameters)");
  const Tensor& p = parameters_[index];
  if (value.shape() != p.shape())
    throw ShapeError("optimizer: state " + name + "." + std::to_string(index) + " has shape " +
                     shape_str(value.shape()) + "; its parameter has shape " +
                     shape_str(p.shape()));
  it->second[index] = value.dtype() == p.dtype() ? value : cast(value, p.dtype());
}

// ---- SGD --------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  check_hyperparameter("SGD", "momentum", options.momentum, 0);
  check_hyperparameter("SGD", "dampening", options.dampening, 0, 1);
  check_hyperparameter("SGD", "weight_decay", options.weight_decay, 0);
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
    throw ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0");
  if (options.momentum != 0) state_["momentum_buffer"].resize(parameters_.size());
}

void SGD::step() {
  const ProfileScope profiled("SGD.step");
  const SGDOptions& o = options_;
  for_each_with_grad(parameters_, [&](auto& p, const auto& g, std::size_t i) {
    using T = typename std::decay_t<decltype(p)>::value_type;
    const T lr = static_cast<T>(lr_), wd = static_cast<T>(o.weight_decay);
    const T mu = static_cast<T>(o.momentum), damp = static_cast<T>(1 - o.dampening);
    T* pp = p.data();
    const T* pg = g.data();
    // One plain loop per case, so that each vectorizes: d = g + wd p is recomputed where needed.
    // Large parameters are split across the threads (each element is updated once, on one).
    const bool first = o.momentum != 0 && !has_buffer("momentum_buffer", i);  // b = d at first
    T* b =
        o.momentum != 0 ? buffer("momentum_buffer", i).template mutable_value<T>().data() : nullptr;
    // By value: pointers captured by reference would be reloaded at each store, unvectorized.
    parallel_for(p.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      if (o.momentum == 0 && wd == 0) {  // plain gradient descent, the common case
        for (std::size_t j = begin; j < end; ++j) pp[j] -= lr * pg[j];
        return;
      }
      if (o.momentum == 0) {
        for (std::size_t j = begin; j < end; ++j) pp[j] -= lr * (pg[j] + wd * pp[j]);
        return;
      }
      if (first)
        for (std::size_t j = begin; j < end; ++j) b[j] = pg[j] + wd * pp[j];
      else
        for (std::size_t j = begin; j < end; ++j) b[j] = mu * b[j] + damp * (pg[j] + wd * pp[j]);
      if (o.nesterov)
        for (std::size_t j = begin; j < end; ++j) pp[j] -= lr * (pg[j] + wd * pp[j] + mu * b[j]);
      else
        for (std::size_t j = begin; j < end; ++j) pp[j] -= lr * b[j];
    });
  });
  ++steps_;
}

// ---- Adam, AdamW ------------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, false) {}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled)
    : Optimizer(std::move(parameters), options.lr), options_(options), decoupled_(decoupled) {
  const char* op = decoupled ? "AdamW" : "Adam";
  check_hyperparameter(op, "beta1", options.beta1, 0, 1, true);
  check_hyperparameter(op, "beta2", options.beta2, 0, 1, true);
  check_hyperparameter(op, "eps", options.eps, 0);
  check_hyperparameter(op, "weight_decay", options.weight_decay, 0);
  state_["exp_avg"].resize(parameters_.size());
  state_["exp_avg_sq"].resize(parameters_.size());
}

void Adam::step() {
  const ProfileScope profiled(decoupled_ ? "AdamW.step" : "Adam.step");
  const AdamOptions& o = options_;
  ++steps_;
  const double c1 = 1 - std::pow(o.beta1, static_cast<double>(steps_));
  const double c2 = 1 - std::pow(o.beta2, static_cast<double>(steps_));
  for_each_with_grad(parameters_, [&](auto& p, const auto& g, std::size_t i) {
    using T = typename std::decay_t<decltype(p)>::value_type;
    T* pp = p.data();
    const T* pg = g.data();
    T* m = buffer("exp_avg", i).mutable_value<T>().data();
    T* v = buffer("exp_avg_sq", i).mutable_value<T>().data();
    const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
    const T lr = static_cast<T>(lr_), wd = static_cast<T>(o.weight_decay);
    const T step_size = static_cast<T>(lr_ / c1), root_c2 = static_cast<T>(std::sqrt(c2));
    const T eps = static_cast<T>(o.eps);
    const T l2 = decoupled_ ? T{0} : wd;  // Adam: weight decay as an L2 term of the gradient
    const bool decay_first = decoupled_ && wd != 0;
    parallel_for(p.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      if (decay_first)  // AdamW: decay the weights first, apart from the gradient
        for (std::size_t j = begin; j < end; ++j) pp[j] -= lr * wd * pp[j];
      for (std::size_t j = begin; j < end; ++j) {
        const T d = pg[j] + l2 * pp[j];
        m[j] = b1 * m[j] + (1 - b1) * d;
        v[j] = b2 * v[j] + (1 - b2) * d * d;
        pp[j] -= step_size * m[j] / (std::sqrt(v[j]) / root_c2 + eps);
      }
    });
  });
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, true) {}

// ---- schedules --------------------------------------------------------------------------------

void LRScheduler::restore(std::int64_t epoch, double base_lr) {
  if (epoch < 0 || !(base_lr >= 0 && std::isfinite(base_lr)))
    throw ValueError("LRScheduler: cannot restore epoch " + std::to_string(epoch) +
                     " with base lr " + std::to_string(base_lr) +
                     "; expected epoch >= 0 and a finite base lr >= 0");
  epoch_ = epoch;
  base_lr_ = base_lr;
  optimizer_.set_lr(lr_at(epoch_));
}

void LRScheduler::step() {
  ++epoch_;
  optimizer_.set_lr(lr_at(epoch_));
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0)
    throw ValueError("StepLR: step_size must be > 0, got " + std::to_string(step_size));
}

double StepLR::lr_at(std::int64_t epoch) const {
  return base_lr_ * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0)
    throw ValueError("CosineAnnealingLR: t_max must be > 0, got " + std::to_string(t_max));
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
  const double t = static_cast<double>(std::min(epoch, t_max_)) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr_ - eta_min_) * (1 + std::cos(std::numbers::pi * t)) / 2;
}

}  // namespace xgrad::nn
