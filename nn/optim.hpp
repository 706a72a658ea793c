#pragma once
/// \file
/// Optimizers, as torch::optim: built on a list of parameters, step() updates them in place from
/// their .grad (parameters without a gradient are skipped), zero_grad() clears the gradients.
/// Updates run under NoGradGuard: they are not recorded.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::nn {

/// Some of the parameters with a learning rate and a weight decay of their own (the optimizer's
/// where unset), as a PyTorch parameter group: SGD({{backbone}, {head, 0.1}}, {.lr = 0.01}).
struct ParamGroup {
  ParamGroup(std::vector<Tensor> params, std::optional<double> lr = std::nullopt,
             std::optional<double> weight_decay = std::nullopt)
      : params(std::move(params)), lr(lr), weight_decay(weight_decay) {}
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

/// What an optimizer's next steps depend on, copied out of it (Optimizer::state_dict()) and back
/// in (load_state_dict()) in memory, as PyTorch's optimizer.state_dict(): the step count, each
/// group's learning rate and weight decay, the momentum where the optimizer has one, and each
/// per-parameter buffer by name (slot i for parameter i; undefined where not made yet).
struct OptimizerState {
  std::string optimizer;  ///< the name() of the optimizer it came from
  std::int64_t steps = 0;
  std::vector<double> lrs, weight_decays;
  std::optional<double> momentum;
  std::map<std::string, std::vector<Tensor>> buffers;
};

class Optimizer {
 public:
  /// One group of all the parameters, or several; a tensor may be in one group only.
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  virtual std::string name() const = 0;  ///< "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"
  void zero_grad();
  double lr() const { return group_lr_.front(); }  ///< the first group's
  /// Sets every group's learning rate. ValueError unless lr is finite and >= 0.
  void set_lr(double lr);
  std::size_t num_groups() const { return group_lr_.size(); }
  double lr(std::size_t group) const { return group_lr_.at(group); }
  void set_lr(std::size_t group, double lr);  ///< one group's (IndexError past the last)
  double weight_decay(std::size_t group) const { return group_wd_.at(group); }
  std::size_t group_of(std::size_t parameter) const { return group_of_.at(parameter); }
  const std::vector<Tensor>& parameters() const { return parameters_; }  ///< the groups' in order
  /// Adds a group, as PyTorch's add_param_group (a layer unfrozen later): its learning rate and
  /// weight decay are the optimizer's own (those it was built with) where the group has none.
  /// ValueError for a parameter already in a group.
  void add_param_group(ParamGroup group);

  /// The momentum OneCycleLR cycles: SGD's and RMSprop's momentum, Adam's and AdamW's beta1;
  /// nullopt for an optimizer without one (Adagrad).
  virtual std::optional<double> momentum() const { return std::nullopt; }
  /// ValueError for an optimizer without one, or a value out of its range.
  virtual void set_momentum(double momentum);

  /// A copy of the state (the buffers copied too: later steps leave it alone), and back: after
  /// load_state_dict(s), the steps continue as they did from where s was taken. ValueError for
  /// another optimizer's state, or other groups; ShapeError for a buffer not shaped as its
  /// parameter.
  OptimizerState state_dict() const;
  void load_state_dict(const OptimizerState& state);

  /// Per-parameter state by name ("momentum_buffer", "exp_avg", ...), slot i for parameter i,
  /// undefined until first used; and the number of steps taken. With lr, what a checkpoint keeps
  /// to resume exactly (nn/serialize.hpp).
  const std::map<std::string, std::vector<Tensor>>& state() const { return state_; }
  /// Replaces state slot `index` of buffer `name` (ValueError for an unknown name, ShapeError for a
  /// tensor not shaped like its parameter).
  void set_state(const std::string& name, std::size_t index, const Tensor& value);
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps);  ///< ValueError for a negative count

 protected:
  /// The buffer of parameter i in state `name`, created as zeros on first use.
  Tensor& buffer(const std::string& name, std::size_t i);
  bool has_buffer(const std::string& name, std::size_t i) const;

  double lr_of(std::size_t parameter) const { return group_lr_[group_of_[parameter]]; }
  double wd_of(std::size_t parameter) const { return group_wd_[group_of_[parameter]]; }

  std::vector<Tensor> parameters_;
  std::vector<std::size_t> group_of_;        // parameter -> its group
  std::vector<double> group_lr_, group_wd_;  // per group
  double default_lr_, default_wd_;           // for groups without their own
  std::int64_t steps_ = 0;
  std::map<std::string, std::vector<Tensor>> state_;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  ///< L2: adds weight_decay * p to the gradient
  bool nesterov = false;
};

/// p <- p - lr * d, with d = g + weight_decay p, then with momentum
/// b <- momentum b + (1 - dampening) d (b = d at the first step), d = nesterov ? d + momentum b :
/// b. With momentum 0 it is plain gradient descent: p <- p - lr grad p.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> parameters, SGDOptions options)
      : SGD(std::vector<ParamGroup>{{std::move(parameters)}}, options) {}
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
  void step() override;
  std::string name() const override { return "SGD"; }
  const SGDOptions& options() const { return options_; }
  std::optional<double> momentum() const override { return options_.momentum; }
  void set_momentum(double momentum) override;

 private:
  SGDOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  ///< Adam: added to the gradient (L2); AdamW: decoupled
};

/// m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
/// p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> parameters, AdamOptions options = {})
      : Adam(std::vector<ParamGroup>{{std::move(parameters)}}, options) {}
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  void step() override;
  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  std::optional<double> momentum() const override { return options_.beta1; }  ///< beta1
  void set_momentum(double beta1) override;

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled);

 private:
  AdamOptions options_;
  bool decoupled_;
};

/// Adam with decoupled weight decay: p <- p - lr weight_decay p before the Adam step
/// (weight_decay defaults to 0.01, as in PyTorch).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, AdamOptions options = {.weight_decay = 0.01})
      : AdamW(std::vector<ParamGroup>{{std::move(parameters)}}, options) {}
  AdamW(std::vector<ParamGroup> groups, AdamOptions options = {.weight_decay = 0.01});
};

struct RMSpropOptions {
  double lr = 0.01;
  double alpha = 0.99;  ///< smoothing of the squared gradients' average
  double eps = 1e-8;
  double weight_decay = 0.0;  ///< L2: added to the gradient
  double momentum = 0.0;
  bool centered = false;  ///< divide by the gradients' estimated variance instead
};

/// As torch.optim.RMSprop: v <- alpha v + (1 - alpha) g^2, (centered: m <- alpha m + (1 - alpha) g,
/// v - m^2 in place of v), a = sqrt(v) + eps; p <- p - lr g / a, or with momentum
/// b <- momentum b + g / a, p <- p - lr b.
class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<Tensor> parameters, RMSpropOptions options = {})
      : RMSprop(std::vector<ParamGroup>{{std::move(parameters)}}, options) {}
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  void step() override;
  std::string name() const override { return "RMSprop"; }
  std::optional<double> momentum() const override { return options_.momentum; }
  void set_momentum(double momentum) override;

 private:
  RMSpropOptions options_;
};

struct AdagradOptions {
  double lr = 0.01;
  double lr_decay = 0.0;
  double weight_decay = 0.0;  ///< L2: added to the gradient
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

/// As torch.optim.Adagrad: s <- s + g^2, p <- p - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps).
class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<Tensor> parameters, AdagradOptions options = {})
      : Adagrad(std::vector<ParamGroup>{{std::move(parameters)}}, options) {}
  Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});
  void step() override;
  std::string name() const override { return "Adagrad"; }

 private:
  AdagradOptions options_;
};

/// Scales every gradient by one factor so that their joint norm (2, or any p >= 1, or infinity)
/// is at most max_norm, as torch.nn.utils.clip_grad_norm_; returns the norm before clipping.
/// Parameters without a gradient are skipped. A non-finite norm is a ValueError when
/// error_if_nonfinite, else the gradients are left as they are.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm,
                       double norm_type = 2.0, bool error_if_nonfinite = false);
/// Clamps every gradient entry into [-clip_value, clip_value], as clip_grad_value_.
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

/// Learning-rate schedules: call step() once per epoch; the optimizer's lr follows, each parameter
/// group's from its own (as PyTorch's).
class LRScheduler {
 public:
  /// Each parameter group follows the schedule from its own learning rate at this moment.
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  virtual void step();
  std::int64_t epoch() const { return epoch_; }         ///< steps taken
  double base_lr() const { return base_lrs_.front(); }  ///< the first group's
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// Restores what epoch() and base_lr() returned (a checkpoint's), and the optimizer's lr with it
  /// (one group).
  void restore(std::int64_t epoch, double base_lr);
  /// Everything a checkpoint keeps to resume the schedule exactly, by name ("epoch", "base_lr",
  /// and a schedule's own), and back (ValueError naming a missing or invalid entry).
  virtual std::map<std::string, double> state() const;
  virtual void set_state(const std::map<std::string, double>& state);

 protected:
  friend class SequentialLR;
  friend class ChainedScheduler;
  /// The learning rate at `epoch` of a group that started at `base`.
  virtual double lr_at(std::int64_t epoch, double base) const = 0;
  void apply();  // every group's lr from lr_at(epoch_, its base)
  /// Goes to `epoch` and applies it (OneCycleLR: its momentum too).
  virtual void restart_at(std::int64_t epoch);
  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  std::int64_t epoch_ = 0;
};

/// lr = base * gamma^(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr = base * factor(epoch), as torch's LambdaLR: nn::LambdaLR(opt, [](std::int64_t epoch) {
/// return 0.95 ^ epoch; }). ValueError when the factor is negative or not finite.
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(Optimizer& optimizer, std::function<double(std::int64_t)> factor);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  std::function<double(std::int64_t)> factor_;
};

/// lr = base * gamma^(the milestones reached: those <= epoch), as torch's MultiStepLR; the
/// milestones increasing (ValueError otherwise).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

/// lr = base * gamma^epoch, as torch's ExponentialLR.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  double gamma_;
};

/// lr = eta_min + (base - eta_min) (1 + cos(pi epoch / t_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

/// A linear ramp of the learning rate, as torch's LinearLR (a warm-up from a small start_factor):
/// lr = base_lr (start_factor + (end_factor - start_factor) min(epoch, total_iters) / total_iters).
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
           std::int64_t total_iters = 5);

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  double start_factor_, end_factor_;
  std::int64_t total_iters_;
};

struct OneCycleLROptions {
  double pct_start = 0.3;               ///< the share of the steps spent rising to max_lr
  std::string anneal_strategy = "cos";  ///< "cos" or "linear"
  bool cycle_momentum = true;  ///< momentum from max_momentum down to base_momentum and back
  double base_momentum = 0.85, max_momentum = 0.95;
  double div_factor = 25;         ///< the first lr is max_lr / div_factor
  double final_div_factor = 1e4;  ///< the last is that / final_div_factor
  bool three_phase = false;       ///< down to the first lr, then to the last (fast.ai's)
};

/// The one-cycle policy, as torch's OneCycleLR (its defaults above): the lr rises from max_lr /
/// div_factor to max_lr over pct_start of total_steps, then falls to max_lr / div_factor /
/// final_div_factor, by a cosine (or linearly); the momentum (Optimizer::momentum: SGD's, Adam's
/// beta1) moves the other way. Call step() after every batch; more than total_steps steps is a
/// ValueError, as cycle_momentum with an optimizer without momentum.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps,
             OneCycleLROptions options = {});
  void step() override;
  void set_state(const std::map<std::string, double>& state) override;

 protected:
  double lr_at(std::int64_t epoch, double base) const override;
  void restart_at(std::int64_t epoch) override;

 private:
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };
  double anneal(double start, double end, double pct) const;
  const Phase& phase_at(std::int64_t step, double& pct) const;
  void apply_momentum();
  std::int64_t total_steps_;
  OneCycleLROptions options_;
  std::vector<Phase> phases_;
};

/// Schedules one after another, as torch's SequentialLR: schedulers[i + 1] takes over, from its
/// own epoch 0, at step milestones[i]. All of them must drive this optimizer; each follows from
/// the learning rates the optimizer had when the first was made. (One milestone fewer than
/// schedulers, increasing: ValueError otherwise.)
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::reference_wrapper<LRScheduler>> schedulers,
               std::vector<std::int64_t> milestones);
  void step() override;
  void set_state(const std::map<std::string, double>& state) override;

 protected:
  double lr_at(std::int64_t, double base) const override { return base; }  // not used: see step

 private:
  std::vector<std::reference_wrapper<LRScheduler>> schedulers_;
  std::vector<std::int64_t> milestones_;
};

/// Several schedules at once, as torch's ChainedScheduler: step() steps each; the learning rate
/// is the base times the product of their factors (each one's lr over its base), which is what
/// chaining PyTorch's multiplicative schedules (StepLR, MultiStepLR, ExponentialLR, LinearLR)
/// gives.
class ChainedScheduler : public LRScheduler {
 public:
  ChainedScheduler(Optimizer& optimizer,
                   std::vector<std::reference_wrapper<LRScheduler>> schedulers);
  void step() override;

 protected:
  double lr_at(std::int64_t epoch, double base) const override;

 private:
  std::vector<std::reference_wrapper<LRScheduler>> schedulers_;
};

struct ReduceLROnPlateauOptions {
  bool maximize = false;       ///< the metric is better when larger (accuracy), not smaller (loss)
  double factor = 0.1;         ///< lr <- max(lr factor, min_lr) on a plateau
  std::int64_t patience = 10;  ///< epochs without improvement tolerated
  double threshold = 1e-4;     ///< improvement: relative to the best by this much
  std::int64_t cooldown = 0;   ///< epochs to wait after a reduction
  double min_lr = 0.0;
};

/// Reduces the lr when a metric stops improving, as torch's ReduceLROnPlateau: call step(metric)
/// once per epoch with the validation loss (or accuracy, with maximize). step() without the
/// metric is a ValueError.
class ReduceLROnPlateau : public LRScheduler {
 public:
  ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  void step() override;
  void step(double metric);
  std::map<std::string, double> state() const override;
  void set_state(const std::map<std::string, double>& state) override;

 protected:
  double lr_at(std::int64_t, double) const override { return 0; }  // not used: see step

 private:
  ReduceLROnPlateauOptions options_;
  std::vector<double> lrs_;  // per group
  double best_;
  std::int64_t bad_epochs_ = 0, cooldown_left_ = 0;
};

}  // namespace xgrad::nn
