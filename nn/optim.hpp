#pragma once
/// \file
/// Optimizers, as torch::optim: built on a list of parameters, step() updates them in place from
/// their .grad (parameters without a gradient are skipped), zero_grad() clears the gradients.
/// Updates run under NoGradGuard: they are not recorded.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace xgrad::nn {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> parameters, double lr);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  virtual std::string name() const = 0;  ///< "SGD", "Adam", "AdamW"
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

/// Learning-rate schedules: call step() once per epoch; the optimizer's lr follows.
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}
  virtual ~LRScheduler() = default;
  void step();
  std::int64_t epoch() const { return epoch_; }  ///< steps taken
  double base_lr() const { return base_lr_; }
  /// Restores what epoch() and base_lr() returned (a checkpoint's), and the optimizer's lr with it.
  void restore(std::int64_t epoch, double base_lr);

 protected:
  virtual double lr_at(std::int64_t epoch) const = 0;
  Optimizer& optimizer_;
  double base_lr_;

 private:
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

}  // namespace xgrad::nn
