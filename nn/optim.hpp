#pragma once
/// \file
/// Optimizers, as torch::optim: built on a list of parameters, step() updates them in place from
/// their .grad (parameters without a gradient are skipped), zero_grad() clears the gradients.
/// Updates run under NoGradGuard: they are not recorded.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::nn {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> parameters, double lr);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  virtual std::string name() const = 0;  ///< "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"
  void zero_grad();
  double lr() const { return lr_; }
  /// ValueError unless lr is finite and >= 0, as the constructors require.
  void set_lr(double lr);
  const std::vector<Tensor>& parameters() const { return parameters_; }

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

  std::vector<Tensor> parameters_;
  double lr_;
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
  SGD(std::vector<Tensor> parameters, SGDOptions options);
  void step() override;
  std::string name() const override { return "SGD"; }
  const SGDOptions& options() const { return options_; }

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
  Adam(std::vector<Tensor> parameters, AdamOptions options = {});
  void step() override;
  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled);

 private:
  AdamOptions options_;
  bool decoupled_;
};

/// Adam with decoupled weight decay: p <- p - lr weight_decay p before the Adam step
/// (weight_decay defaults to 0.01, as in PyTorch).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, AdamOptions options = {.weight_decay = 0.01});
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
  RMSprop(std::vector<Tensor> parameters, RMSpropOptions options = {});
  void step() override;
  std::string name() const override { return "RMSprop"; }

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
  Adagrad(std::vector<Tensor> parameters, AdagradOptions options = {});
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

/// Learning-rate schedules: call step() once per epoch; the optimizer's lr follows.
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}
  virtual ~LRScheduler() = default;
  virtual void step();
  std::int64_t epoch() const { return epoch_; }  ///< steps taken
  double base_lr() const { return base_lr_; }
  /// Restores what epoch() and base_lr() returned (a checkpoint's), and the optimizer's lr with it.
  void restore(std::int64_t epoch, double base_lr);
  /// Everything a checkpoint keeps to resume the schedule exactly, by name ("epoch", "base_lr",
  /// and a schedule's own), and back (ValueError naming a missing or invalid entry).
  virtual std::map<std::string, double> state() const;
  virtual void set_state(const std::map<std::string, double>& state);

 protected:
  virtual double lr_at(std::int64_t epoch) const = 0;
  Optimizer& optimizer_;
  double base_lr_;
  std::int64_t epoch_ = 0;
};

/// lr = base_lr * gamma^(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(std::int64_t epoch) const override;

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
  double lr_at(std::int64_t epoch) const override;

 private:
  double start_factor_, end_factor_;
  std::int64_t total_iters_;
};

struct ReduceLROnPlateauOptions {
  bool maximize = false;  ///< the metric is better when larger (accuracy), not smaller (loss)
  double factor = 0.1;    ///< lr <- max(lr factor, min_lr) on a plateau
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
  double lr_at(std::int64_t) const override { return lr_; }

 private:
  ReduceLROnPlateauOptions options_;
  double lr_, best_;
  std::int64_t bad_epochs_ = 0, cooldown_left_ = 0;
};

}  // namespace xgrad::nn
