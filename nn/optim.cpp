#include "nn/optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "autograd/optim_kernels.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profiler.hpp"

namespace xgrad::nn {

namespace {
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

// ValueError unless p, the parameter at `index`, is a defined floating-point leaf that none of
// `earlier` is. A frozen one (requires_grad false) is taken, and skipped while it has no
// gradient, as PyTorch's: unfrozen later, it trains.
void check_parameter(const std::vector<Tensor>& earlier, const Tensor& p, std::size_t index) {
  if (!p.defined() || !p.is_leaf() || !is_floating_point(p.dtype()))
    throw ValueError("optimizer: parameter " + std::to_string(index) +
                     " must be a defined floating-point leaf tensor");
  for (std::size_t j = 0; j < earlier.size(); ++j)
    if (earlier[j].impl() == p.impl())
      throw ValueError("optimizer: parameters " + std::to_string(j) + " and " +
                       std::to_string(index) + " are the same tensor; each must be given once");
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay)
    : default_lr_(lr), default_wd_(weight_decay) {
  check_hyperparameter("optimizer", "the learning rate", lr, 0);
  if (groups.empty()) throw ValueError("optimizer: no parameter groups");
  for (ParamGroup& group : groups) add_param_group(std::move(group));
}

void Optimizer::add_param_group(ParamGroup group) {
  const std::string which = "group " + std::to_string(group_lr_.size()) + "'s ";
  const double group_lr = group.lr.value_or(default_lr_);
  const double group_wd = group.weight_decay.value_or(default_wd_);
  check_hyperparameter("optimizer", (which + "learning rate").c_str(), group_lr, 0);
  check_hyperparameter("optimizer", (which + "weight_decay").c_str(), group_wd, 0);
  std::vector<Tensor> all = parameters_;  // checked before anything changes
  for (Tensor& p : group.params) {
    check_parameter(all, p, all.size());
    all.push_back(std::move(p));
  }
  group_of_.resize(all.size(), group_lr_.size());
  parameters_ = std::move(all);
  group_lr_.push_back(group_lr);
  group_wd_.push_back(group_wd);
  for (auto& [name, slots] : state_) slots.resize(parameters_.size());
}

void Optimizer::set_momentum(double) {
  throw ValueError(name() + ": has no momentum to set (SGD, RMSprop, Adam and AdamW have one)");
}

OptimizerState Optimizer::state_dict() const {
  NoGradGuard no_grad;
  OptimizerState s{name(), steps_, group_lr_, group_wd_, momentum(), {}};
  for (const auto& [buffer_name, slots] : state_) {
    std::vector<Tensor>& copies = s.buffers[buffer_name];
    for (const Tensor& t : slots) copies.push_back(t.defined() ? t.clone() : Tensor());
  }
  return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  if (s.optimizer != name())
    throw ValueError("load_state_dict: the state is " + s.optimizer + "'s; this optimizer is " +
                     name());
  if (s.lrs.size() != group_lr_.size() || s.weight_decays.size() != group_wd_.size())
    throw ValueError("load_state_dict: the state has " + std::to_string(s.lrs.size()) +
                     " parameter groups; this optimizer has " + std::to_string(group_lr_.size()));
  if (s.steps < 0) throw ValueError("load_state_dict: a negative step count");
  for (std::size_t g = 0; g < s.lrs.size(); ++g) {
    check_hyperparameter("load_state_dict", "a group's learning rate", s.lrs[g], 0);
    check_hyperparameter("load_state_dict", "a group's weight_decay", s.weight_decays[g], 0);
  }
  for (const auto& [buffer_name, slots] : s.buffers) {
    if (slots.size() != parameters_.size())
      throw ValueError("load_state_dict: state " + buffer_name + " has " +
                       std::to_string(slots.size()) + " slots; this optimizer has " +
                       std::to_string(parameters_.size()) + " parameters");
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (slots[i].defined() && slots[i].shape() != parameters_[i].shape())
        throw ShapeError("load_state_dict: state " + buffer_name + "." + std::to_string(i) +
                         " has shape " + shape_str(slots[i].shape()) +
                         "; its parameter has shape " + shape_str(parameters_[i].shape()));
  }
  if (s.momentum) set_momentum(*s.momentum);  // checked by the optimizer: first
  NoGradGuard no_grad;
  state_.clear();
  for (const auto& [buffer_name, slots] : s.buffers) {
    std::vector<Tensor>& mine = state_[buffer_name];
    for (std::size_t i = 0; i < slots.size(); ++i)
      mine.push_back(!slots[i].defined() ? Tensor()
                     : slots[i].dtype() == parameters_[i].dtype()
                         ? slots[i].clone()
                         : cast(slots[i], parameters_[i].dtype()));
  }
  group_lr_ = s.lrs;
  group_wd_ = s.weight_decays;
  steps_ = s.steps;
}

void Optimizer::set_lr(double lr) {
  check_hyperparameter("optimizer", "the learning rate", lr, 0);
  for (double& group_lr : group_lr_) group_lr = lr;
}

void Optimizer::set_lr(std::size_t group, double lr) {
  if (group >= group_lr_.size())
    throw IndexError("optimizer: no parameter group " + std::to_string(group) + " (there are " +
                     std::to_string(group_lr_.size()) + ")");
  check_hyperparameter("optimizer", "the learning rate", lr, 0);
  group_lr_[group] = lr;
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

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_hyperparameter("SGD", "momentum", options.momentum, 0);
  check_hyperparameter("SGD", "dampening", options.dampening, 0, 1);
  check_hyperparameter("SGD", "weight_decay", options.weight_decay, 0);
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
    throw ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0");
  if (options.momentum != 0) state_["momentum_buffer"].resize(parameters_.size());
}

void SGD::set_momentum(double momentum) {
  check_hyperparameter("SGD", "momentum", momentum, 0);
  if (options_.nesterov && momentum <= 0)
    throw ValueError("SGD: Nesterov momentum needs momentum > 0, got " + number_str(momentum));
  options_.momentum = momentum;
}

void SGD::step() {
  const ProfileScope profiled("SGD.step");
  const SGDOptions& o = options_;
  for_each_with_grad(parameters_, [&](auto& p, const auto& g, std::size_t i) {
    using T = typename std::decay_t<decltype(p)>::value_type;
    const T lr = static_cast<T>(lr_of(i)), wd = static_cast<T>(wd_of(i));
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
      const FlushDenormals flush;  // decaying state must not crawl through denormals
      if constexpr (std::is_same_v<T, float>) {  // the same loops in vector lanes, bit for bit
        const SgdStep c{lr, wd, mu, damp, o.nesterov, first};
        sgd_update(pp + begin, pg + begin, b ? b + begin : nullptr, end - begin, c);
        return;
      }
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

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), options, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled)
    : Optimizer(std::move(groups), options.lr, options.weight_decay),
      options_(options),
      decoupled_(decoupled) {
  const char* op = decoupled ? "AdamW" : "Adam";
  check_hyperparameter(op, "beta1", options.beta1, 0, 1, true);
  check_hyperparameter(op, "beta2", options.beta2, 0, 1, true);
  check_hyperparameter(op, "eps", options.eps, 0);
  check_hyperparameter(op, "weight_decay", options.weight_decay, 0);
  state_["exp_avg"].resize(parameters_.size());
  state_["exp_avg_sq"].resize(parameters_.size());
}

void Adam::set_momentum(double beta1) {
  check_hyperparameter(name().c_str(), "beta1", beta1, 0, 1, true);
  options_.beta1 = beta1;
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
    const T lr = static_cast<T>(lr_of(i)), wd = static_cast<T>(wd_of(i));
    const T step_size = static_cast<T>(lr_of(i) / c1), root_c2 = static_cast<T>(std::sqrt(c2));
    const T eps = static_cast<T>(o.eps);
    const T l2 = decoupled_ ? T{0} : wd;  // Adam: weight decay as an L2 term of the gradient
    const bool decay_first = decoupled_ && wd != 0;
    parallel_for(p.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      const FlushDenormals flush;  // decaying state must not crawl through denormals
      if constexpr (std::is_same_v<T, float>) {  // the same loop in vector lanes, bit for bit
        const AdamStep c{b1, b2, lr, wd, step_size, root_c2, eps, l2, decay_first};
        adam_update(pp + begin, pg + begin, m + begin, v + begin, end - begin, c);
        return;
      }
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

AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), options, true) {}

// ---- RMSprop, Adagrad -------------------------------------------------------------------------

void RMSprop::set_momentum(double momentum) {
  check_hyperparameter("RMSprop", "momentum", momentum, 0);
  options_.momentum = momentum;
}

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options)
    : Optimizer(std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_hyperparameter("RMSprop", "alpha", options.alpha, 0, 1);
  check_hyperparameter("RMSprop", "eps", options.eps, 0);
  check_hyperparameter("RMSprop", "weight_decay", options.weight_decay, 0);
  check_hyperparameter("RMSprop", "momentum", options.momentum, 0);
  state_["square_avg"].resize(parameters_.size());
  if (options.momentum != 0) state_["momentum_buffer"].resize(parameters_.size());
  if (options.centered) state_["grad_avg"].resize(parameters_.size());
}

void RMSprop::step() {
  const ProfileScope profiled("RMSprop.step");
  const RMSpropOptions& o = options_;
  for_each_with_grad(parameters_, [&](auto& p, const auto& g, std::size_t i) {
    using T = typename std::decay_t<decltype(p)>::value_type;
    T* pp = p.data();
    const T* pg = g.data();
    T* v = buffer("square_avg", i).template mutable_value<T>().data();
    T* b =
        o.momentum != 0 ? buffer("momentum_buffer", i).template mutable_value<T>().data() : nullptr;
    T* m = o.centered ? buffer("grad_avg", i).template mutable_value<T>().data() : nullptr;
    const T lr = static_cast<T>(lr_of(i)), alpha = static_cast<T>(o.alpha);
    const T eps = static_cast<T>(o.eps), wd = static_cast<T>(wd_of(i));
    const T mu = static_cast<T>(o.momentum);
    const bool centered = o.centered, momentum = o.momentum != 0;
    parallel_for(p.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      const FlushDenormals flush;  // decaying state must not crawl through denormals
      if constexpr (std::is_same_v<T, float>) {  // the same loop in vector lanes, bit for bit
        const RmspropStep c{lr, alpha, eps, wd, mu};
        const auto at = [begin](float* a) { return a ? a + begin : nullptr; };
        rmsprop_update(pp + begin, pg + begin, v + begin, at(m), at(b), end - begin, c);
        return;
      }
      for (std::size_t j = begin; j < end; ++j) {
        const T d = pg[j] + wd * pp[j];
        v[j] = alpha * v[j] + (1 - alpha) * d * d;
        T var = v[j];
        if (centered) {
          m[j] = alpha * m[j] + (1 - alpha) * d;
          var -= m[j] * m[j];
        }
        const T a = std::sqrt(var) + eps;
        if (momentum) {
          b[j] = mu * b[j] + d / a;
          pp[j] -= lr * b[j];
        } else {
          pp[j] -= lr * d / a;
        }
      }
    });
  });
  ++steps_;
}

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options)
    : Optimizer(std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_hyperparameter("Adagrad", "lr_decay", options.lr_decay, 0);
  check_hyperparameter("Adagrad", "weight_decay", options.weight_decay, 0);
  check_hyperparameter("Adagrad", "initial_accumulator_value", options.initial_accumulator_value,
                       0);
  check_hyperparameter("Adagrad", "eps", options.eps, 0);
  state_["sum"].resize(parameters_.size());
}

void Adagrad::step() {
  const ProfileScope profiled("Adagrad.step");
  const AdagradOptions& o = options_;
  ++steps_;
  const double decay = 1 + static_cast<double>(steps_ - 1) * o.lr_decay;
  for_each_with_grad(parameters_, [&](auto& p, const auto& g, std::size_t i) {
    const double clr = lr_of(i) / decay;
    using T = typename std::decay_t<decltype(p)>::value_type;
    const bool first = !has_buffer("sum", i);
    auto& acc = buffer("sum", i).template mutable_value<T>();
    if (first) acc.fill(static_cast<T>(o.initial_accumulator_value));
    T* s = acc.data();
    T* pp = p.data();
    const T* pg = g.data();
    const T lr = static_cast<T>(clr), eps = static_cast<T>(o.eps);
    const T wd = static_cast<T>(wd_of(i));
    parallel_for(p.size(), kParallelGrain, [=](std::size_t begin, std::size_t end) {
      const FlushDenormals flush;  // decaying state must not crawl through denormals
      if constexpr (std::is_same_v<T, float>) {  // the same loop in vector lanes, bit for bit
        adagrad_update(pp + begin, pg + begin, s + begin, end - begin, AdagradStep{lr, eps, wd});
        return;
      }
      for (std::size_t j = begin; j < end; ++j) {
        const T d = pg[j] + wd * pp[j];
        s[j] += d * d;
        pp[j] -= lr * d / (std::sqrt(s[j]) + eps);
      }
    });
  });
}

// ---- gradient clipping ------------------------------------------------------------------------

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  check_hyperparameter("clip_grad_norm_", "max_norm", max_norm, 0);
  if (!(norm_type >= 1))  // inf allowed
    throw ValueError("clip_grad_norm_: norm_type must be >= 1 (or infinity), got " +
                     number_str(norm_type));
  const bool inf_norm = std::isinf(norm_type);
  double total = 0;  // sum of |g|^p, or the largest |g| for the infinity norm
  for_each_with_grad(parameters, [&](auto&, const auto& g, std::size_t) {
    for (auto v : g) {
      const double a = std::abs(static_cast<double>(v));
      if (inf_norm)
        total = std::max(total, a) + (a != a ? a : 0);  // a NaN stays
      else
        total += norm_type == 2 ? a * a : std::pow(a, norm_type);
    }
  });
  const double norm = inf_norm         ? total
                      : norm_type == 2 ? std::sqrt(total)
                                       : std::pow(total, 1 / norm_type);
  if (!std::isfinite(norm)) {
    if (error_if_nonfinite)
      throw ValueError("clip_grad_norm_: the gradients' total norm is " + number_str(norm) +
                       "; nothing was clipped");
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);  // as PyTorch's
  if (coef < 1)
    for_each_with_grad(parameters, [&](auto&, const auto& g, std::size_t) {
      using T = typename std::decay_t<decltype(g)>::value_type;
      for (auto& v : const_cast<std::decay_t<decltype(g)>&>(g)) v *= static_cast<T>(coef);
    });
  return norm;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  check_hyperparameter("clip_grad_value_", "clip_value", clip_value, 0);
  for_each_with_grad(parameters, [&](auto&, const auto& g, std::size_t) {
    using T = typename std::decay_t<decltype(g)>::value_type;
    const T c = static_cast<T>(clip_value);
    for (auto& v : const_cast<std::decay_t<decltype(g)>&>(g)) v = std::clamp(v, -c, c);
  });
}

// ---- schedules --------------------------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::apply() {
  for (std::size_t g = 0; g < base_lrs_.size(); ++g)
    optimizer_.set_lr(g, lr_at(epoch_, base_lrs_[g]));
}

void LRScheduler::restore(std::int64_t epoch, double base_lr) {
  if (epoch < 0 || !(base_lr >= 0 && std::isfinite(base_lr)))
    throw ValueError("LRScheduler: cannot restore epoch " + std::to_string(epoch) +
                     " with base lr " + std::to_string(base_lr) +
                     "; expected epoch >= 0 and a finite base lr >= 0");
  epoch_ = epoch;
  base_lrs_.assign(base_lrs_.size(), base_lr);
  apply();
}

void LRScheduler::step() {
  ++epoch_;
  apply();
}

void LRScheduler::restart_at(std::int64_t epoch) {
  epoch_ = epoch;
  apply();
}

namespace {
// "base_lr" for the first group, "base_lr.1", "base_lr.2", ... for the others.
std::string group_key(const std::string& key, std::size_t group) {
  return group == 0 ? key : key + "." + std::to_string(group);
}
}  // namespace

std::map<std::string, double> LRScheduler::state() const {
  std::map<std::string, double> s{{"epoch", static_cast<double>(epoch_)}};
  for (std::size_t g = 0; g < base_lrs_.size(); ++g) s[group_key("base_lr", g)] = base_lrs_[g];
  return s;
}

namespace {
double entry(const std::map<std::string, double>& state, const std::string& name) {
  const auto it = state.find(name);
  if (it == state.end() || !std::isfinite(it->second))
    throw ValueError("scheduler: the state has no finite '" + name + "'");
  return it->second;
}
}  // namespace

void LRScheduler::set_state(const std::map<std::string, double>& state) {
  const double epoch = entry(state, "epoch");
  std::vector<double> bases;
  for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
    bases.push_back(entry(state, group_key("base_lr", g)));
    if (bases.back() < 0) throw ValueError("scheduler: a negative base learning rate");
  }
  if (epoch < 0) throw ValueError("scheduler: a negative epoch");
  epoch_ = static_cast<std::int64_t>(epoch);
  base_lrs_ = bases;
  apply();
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   std::int64_t total_iters)
    : LRScheduler(optimizer),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  check_hyperparameter("LinearLR", "start_factor", start_factor, 0, 1);
  check_hyperparameter("LinearLR", "end_factor", end_factor, 0, 1);
  if (start_factor == 0) throw ValueError("LinearLR: start_factor must be > 0 (and <= 1), got 0");
  if (total_iters <= 0)
    throw ValueError("LinearLR: total_iters must be > 0, got " + std::to_string(total_iters));
  apply();
}

double LinearLR::lr_at(std::int64_t epoch, double base) const {
  const double t =
      static_cast<double>(std::min(epoch, total_iters_)) / static_cast<double>(total_iters_);
  return base * (start_factor_ + (end_factor_ - start_factor_) * t);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : LRScheduler(optimizer),
      options_(options),
      lrs_(base_lrs_),
      best_(options.maximize ? -INFINITY : INFINITY) {
  check_hyperparameter("ReduceLROnPlateau", "factor", options.factor, 0, 1, true);
  check_hyperparameter("ReduceLROnPlateau", "threshold", options.threshold, 0);
  check_hyperparameter("ReduceLROnPlateau", "min_lr", options.min_lr, 0);
  if (options.patience < 0 || options.cooldown < 0)
    throw ValueError("ReduceLROnPlateau: patience and cooldown must be >= 0, got " +
                     std::to_string(options.patience) + " and " + std::to_string(options.cooldown));
}

void ReduceLROnPlateau::step() {
  throw ValueError("ReduceLROnPlateau: step needs the metric, step(validation_loss)");
}

void ReduceLROnPlateau::step(double metric) {
  if (std::isnan(metric)) throw ValueError("ReduceLROnPlateau: the metric is NaN");
  ++epoch_;
  const double t = options_.threshold;  // relative, as PyTorch's default threshold_mode "rel"
  const bool better = options_.maximize ? metric > best_ * (1 + t) : metric < best_ * (1 - t);
  if (better) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > options_.patience) {
    for (std::size_t g = 0; g < lrs_.size(); ++g) {
      lrs_[g] = std::max(lrs_[g] * options_.factor, options_.min_lr);
      optimizer_.set_lr(g, lrs_[g]);
    }
    cooldown_left_ = options_.cooldown;
    bad_epochs_ = 0;
  }
}

std::map<std::string, double> ReduceLROnPlateau::state() const {
  auto s = LRScheduler::state();
  for (std::size_t g = 0; g < lrs_.size(); ++g) s[group_key("lr", g)] = lrs_[g];
  if (std::isfinite(best_)) s["best"] = best_;  // none before the first step
  s["bad_epochs"] = static_cast<double>(bad_epochs_);
  s["cooldown_left"] = static_cast<double>(cooldown_left_);
  return s;
}

void ReduceLROnPlateau::set_state(const std::map<std::string, double>& state) {
  std::vector<double> lrs;
  for (std::size_t g = 0; g < lrs_.size(); ++g) lrs.push_back(entry(state, group_key("lr", g)));
  const auto best = state.find("best");  // none before the first step
  const double bad = entry(state, "bad_epochs"), cooldown = entry(state, "cooldown_left");
  LRScheduler::set_state(state);  // epoch and bases
  lrs_ = lrs;
  best_ = best != state.end() ? best->second : options_.maximize ? -INFINITY : INFINITY;
  bad_epochs_ = static_cast<std::int64_t>(bad);
  cooldown_left_ = static_cast<std::int64_t>(cooldown);
  for (std::size_t g = 0; g < lrs_.size(); ++g) optimizer_.set_lr(g, lrs_[g]);
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0)
    throw ValueError("StepLR: step_size must be > 0, got " + std::to_string(step_size));
}

double StepLR::lr_at(std::int64_t epoch, double base) const {
  return base * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::function<double(std::int64_t)> factor)
    : LRScheduler(optimizer), factor_(std::move(factor)) {
  if (!factor_) throw ValueError("LambdaLR: the factor function is empty");
  apply();
}

double LambdaLR::lr_at(std::int64_t epoch, double base) const {
  const double f = factor_(epoch);
  if (!std::isfinite(f) || f < 0)
    throw ValueError("LambdaLR: the factor at epoch " + std::to_string(epoch) +
                     " must be a finite number >= 0, got " + number_str(f));
  return base * f;
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  check_hyperparameter("MultiStepLR", "gamma", gamma, 0);
  for (std::size_t i = 1; i < milestones_.size(); ++i)
    if (milestones_[i] <= milestones_[i - 1])
      throw ValueError("MultiStepLR: the milestones must increase, got " +
                       std::to_string(milestones_[i - 1]) + " then " +
                       std::to_string(milestones_[i]));
}

double MultiStepLR::lr_at(std::int64_t epoch, double base) const {
  const auto reached = std::upper_bound(milestones_.begin(), milestones_.end(), epoch) -
                       milestones_.begin();
  return base * std::pow(gamma_, static_cast<double>(reached));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer), gamma_(gamma) {
  check_hyperparameter("ExponentialLR", "gamma", gamma, 0);
}

double ExponentialLR::lr_at(std::int64_t epoch, double base) const {
  return base * std::pow(gamma_, static_cast<double>(epoch));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0)
    throw ValueError("CosineAnnealingLR: t_max must be > 0, got " + std::to_string(t_max));
}

double CosineAnnealingLR::lr_at(std::int64_t epoch, double base) const {
  const double t = static_cast<double>(std::min(epoch, t_max_)) / static_cast<double>(t_max_);
  return eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * t)) / 2;
}

// ---- OneCycleLR, SequentialLR, ChainedScheduler
// --------------------------------------------------

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps,
                       OneCycleLROptions options)
    : LRScheduler(optimizer), total_steps_(total_steps), options_(std::move(options)) {
  const OneCycleLROptions& o = options_;
  if (!(max_lr > 0 && std::isfinite(max_lr)))
    throw ValueError("OneCycleLR: max_lr must be a finite number > 0, got " + number_str(max_lr));
  if (total_steps <= 0)
    throw ValueError("OneCycleLR: total_steps must be > 0, got " + std::to_string(total_steps));
  check_hyperparameter("OneCycleLR", "pct_start", o.pct_start, 0, 1);
  check_hyperparameter("OneCycleLR", "base_momentum", o.base_momentum, 0);
  check_hyperparameter("OneCycleLR", "max_momentum", o.max_momentum, 0);
  if (!(o.div_factor > 0 && std::isfinite(o.div_factor) && o.final_div_factor > 0 &&
        std::isfinite(o.final_div_factor)))
    throw ValueError("OneCycleLR: div_factor and final_div_factor must be finite numbers > 0");
  if (o.anneal_strategy != "cos" && o.anneal_strategy != "linear")
    throw ValueError("OneCycleLR: anneal_strategy must be \"cos\" or \"linear\", got \"" +
                     o.anneal_strategy + "\"");
  if (o.cycle_momentum && !optimizer.momentum())
    throw ValueError(
        "OneCycleLR: cycle_momentum needs an optimizer with a momentum (SGD, RMSprop, "
        "Adam, AdamW); " +
        optimizer.name() + " has none: set cycle_momentum = false");
  const double initial = max_lr / o.div_factor, last = initial / o.final_div_factor;
  const double rise = o.pct_start * static_cast<double>(total_steps),
               end = static_cast<double>(total_steps) - 1;
  const double low = o.base_momentum, high = o.max_momentum;
  if (o.three_phase)
    phases_ = {{rise - 1, initial, max_lr, high, low},
               {2 * rise - 2, max_lr, initial, low, high},
               {end, initial, last, high, high}};
  else
    phases_ = {{rise - 1, initial, max_lr, high, low}, {end, max_lr, last, low, high}};
  restart_at(0);
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (options_.anneal_strategy == "linear") return start + (end - start) * pct;
  return end + (start - end) / 2 * (1 + std::cos(std::numbers::pi * pct));
}

// The phase that `step` is in, and how far along it (0 at its start, 1 at its end; past the end
// of the last phase beyond 1, as PyTorch's). A phase of no length is at its end.
const OneCycleLR::Phase& OneCycleLR::phase_at(std::int64_t step, double& pct) const {
  const auto at = static_cast<double>(step);
  double start = 0;
  for (std::size_t i = 0; i < phases_.size(); ++i) {
    const Phase& phase = phases_[i];
    if (at <= phase.end_step || i + 1 == phases_.size()) {
      pct = phase.end_step == start ? 1 : (at - start) / (phase.end_step - start);
      return phase;
    }
    start = phase.end_step;
  }
  return phases_.back();  // not reached
}

double OneCycleLR::lr_at(std::int64_t epoch, double) const {
  double pct = 0;
  const Phase& phase = phase_at(epoch, pct);
  return anneal(phase.start_lr, phase.end_lr, pct);
}

void OneCycleLR::restart_at(std::int64_t epoch) {
  LRScheduler::restart_at(epoch);
  if (!options_.cycle_momentum) return;
  double pct = 0;
  const Phase& phase = phase_at(epoch, pct);
  optimizer_.set_momentum(anneal(phase.start_momentum, phase.end_momentum, pct));
}

void OneCycleLR::step() {
  if (epoch_ + 1 > total_steps_)
    throw ValueError("OneCycleLR: stepped " + std::to_string(epoch_ + 1) +
                     " times; total_steps is " + std::to_string(total_steps_));
  restart_at(epoch_ + 1);
}

void OneCycleLR::set_state(const std::map<std::string, double>& state) {
  LRScheduler::set_state(state);
  restart_at(epoch_);
}

namespace {
// ValueError unless every scheduler drives `optimizer`.
void check_drives(const char* op, const Optimizer& optimizer, const Optimizer& driven,
                  std::size_t i) {
  if (&driven != &optimizer)
    throw ValueError(std::string(op) + ": scheduler " + std::to_string(i) +
                     " drives another optimizer than this one");
}
}  // namespace

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::reference_wrapper<LRScheduler>> schedulers,
                           std::vector<std::int64_t> milestones)
    : LRScheduler(optimizer),
      schedulers_(std::move(schedulers)),
      milestones_(std::move(milestones)) {
  if (schedulers_.empty()) throw ValueError("SequentialLR: no schedulers");
  if (milestones_.size() + 1 != schedulers_.size())
    throw ValueError("SequentialLR: " + std::to_string(schedulers_.size()) + " schedulers take " +
                     std::to_string(schedulers_.size() - 1) + " milestones, got " +
                     std::to_string(milestones_.size()));
  for (std::size_t i = 0; i < milestones_.size(); ++i)
    if (milestones_[i] <= (i == 0 ? 0 : milestones_[i - 1]))
      throw ValueError("SequentialLR: the milestones must be > 0 and increasing, got " +
                       std::to_string(milestones_[i]) + " at position " + std::to_string(i));
  for (std::size_t i = 0; i < schedulers_.size(); ++i)
    check_drives("SequentialLR", optimizer, schedulers_[i].get().optimizer_, i);
  // The first was made before any of them changed the learning rates: everyone starts from its.
  base_lrs_ = schedulers_.front().get().base_lrs_;
  for (LRScheduler& s : schedulers_) s.base_lrs_ = base_lrs_;
  schedulers_.front().get().restart_at(0);
}

void SequentialLR::step() {
  ++epoch_;
  const auto next = std::upper_bound(milestones_.begin(), milestones_.end(), epoch_);
  const auto i = static_cast<std::size_t>(next - milestones_.begin());
  LRScheduler& current = schedulers_[i];
  if (i > 0 && milestones_[i - 1] == epoch_)
    current.restart_at(0);  // its first epoch
  else
    current.step();
}

void SequentialLR::set_state(const std::map<std::string, double>& state) {
  LRScheduler::set_state(state);
  for (LRScheduler& s : schedulers_) s.base_lrs_ = base_lrs_;
  const auto next = std::upper_bound(milestones_.begin(), milestones_.end(), epoch_);
  const auto i = static_cast<std::size_t>(next - milestones_.begin());
  schedulers_[i].get().restart_at(i == 0 ? epoch_ : epoch_ - milestones_[i - 1]);
}

ChainedScheduler::ChainedScheduler(Optimizer& optimizer,
                                   std::vector<std::reference_wrapper<LRScheduler>> schedulers)
    : LRScheduler(optimizer), schedulers_(std::move(schedulers)) {
  if (schedulers_.empty()) throw ValueError("ChainedScheduler: no schedulers");
  for (std::size_t i = 0; i < schedulers_.size(); ++i)
    check_drives("ChainedScheduler", optimizer, schedulers_[i].get().optimizer_, i);
  base_lrs_ = schedulers_.front().get().base_lrs_;
  for (LRScheduler& s : schedulers_) s.base_lrs_ = base_lrs_;
  apply();
}

void ChainedScheduler::step() {
  for (LRScheduler& s : schedulers_) s.step();
  ++epoch_;
  apply();
}

double ChainedScheduler::lr_at(std::int64_t, double base) const {
  if (base == 0) return 0;
  double lr = base;
  for (const LRScheduler& s : schedulers_) lr *= s.lr_at(s.epoch_, base) / base;
  return lr;
}

}  // namespace xgrad::nn
