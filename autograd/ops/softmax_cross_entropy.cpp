// softmax_cross_entropy: for logits z (B, C), labels y, class weights w, smoothing s,
//   q_ic = (1 - s) [c = y_i] + s / C          the target distribution
//   loss_i = -sum_c w_c q_ic log p_ic,        p_i = softmax(z_i), log p_ic = z_ic - lse(z_i)
//   mean: sum_i loss_i / sum_i w_{y_i};  sum: sum_i loss_i;  none: loss_i
//   A sample labelled ignore_index has q_i = 0: loss 0, gradient 0, no part in the mean. A mean
//   over a batch whose labels are all ignore_index is 0 / 0 = NaN (as PyTorch), its gradient 0.
//   d loss_i / d z_ic = p_ic t_i - w_c q_ic,  t_i = sum_c w_c q_ic
// With no weights and no smoothing, t_i = 1 and the gradient of the mean is (p - onehot) / B.
// Saves p, the target matrix (w_c q_ic) and t; the logits too, for gradients of gradients.
// JVP, from the logits' tangent u:  dloss_i = sum_c (p_ic t_i - w_c q_ic) u_ic, reduced as above.
// NOTE: a primitive for stability (the log-sum-exp is shifted by each row's maximum) and speed
// (e^ over the whole batch at once, not row by row; the backward reuses p in one loop).
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// d loss_i / d z_ic (before the reduction's 1 / denominator).
Tensor slope(const Tensor& p, const Tensor& target, const Tensor& total) {
  return sub(mul(p, total), target);
}

// The gradient slope(p, target, total) g / denominator in one loop, in the same arithmetic as the
// ops: ((p t - target) g) / denominator, g one per row (reduction none) or one for all.
Tensor gradient(const Tensor& p, const Tensor& target, const Tensor& total, const Tensor& g,
                bool per_sample, double denominator) {
  detail::check_same_dtype("softmax_cross_entropy", p, g);
  return detail::dispatch(p.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const std::size_t batch = p.size(0), classes = p.size(1);
    xt::xarray<T> out = detail::empty<T>(p.shape());
    const T* pp = detail::data<T>(p);
    const T* pt = detail::data<T>(target);
    const T* tot = detail::data<T>(total);
    const T* pg = detail::data<T>(g);
    const T d = static_cast<T>(denominator);
    for (std::size_t i = 0; i < batch; ++i) {
      const T t = tot[i], scale = pg[per_sample ? i : 0];
      for (std::size_t k = i * classes; k < (i + 1) * classes; ++k)
        out.data()[k] = ((pp[k] * t - pt[k]) * scale) / d;
    }
    return Tensor(std::move(out));
  });
}

struct SoftmaxCrossEntropyNode final : Node {
  // target and total go to the rule (jvp), which runs inside record(), before save(): target_ and
  // total_ hold them until then.
  SoftmaxCrossEntropyNode(double denominator, bool per_sample, const Tensor& target,
                          const Tensor& total)
      : denominator_(denominator), per_sample_(per_sample), target_(target), total_(total) {}
  std::string_view name() const override { return "softmax_cross_entropy"; }
  double averaged_over() const override { return per_sample_ ? 0.0 : denominator_; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    // With create_graph, p is recomputed by the softmax op so that its own derivative is recorded.
    // Nothing counted (every label ignore_index, mean): the loss is 0 / 0 = NaN, as PyTorch's,
    // but no sample has a part in it, so the gradient is 0, in every order (a constant).
    if (denominator_ == 0) {
      grads[0] = zeros_like(saved(3));
      return;
    }
    if (!detail::differentiable_backward()) {
      grads[0] = gradient(saved(0), saved(1), saved(2), g, per_sample_, denominator_);
      return;
    }
    const Tensor p = softmax(saved(3), 1);
    const Tensor scale = per_sample_ ? reshape(g, {-1, 1}) : g;
    grads[0] = div(mul(slope(p, saved(1), saved(2)), scale), detail::scalar_like(g, denominator_));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    if (denominator_ == 0) return zeros_like(in.out);
    const Tensor p = softmax(in.primal(0), 1);
    const Tensor rows = sum(mul(slope(p, target_, total_), in.tangent(0)), {1});
    return per_sample_ ? rows : div(sum(rows), denominator_);
  }
  double denominator_;
  bool per_sample_;
  Tensor target_, total_;
};

void check_arguments(const Tensor& logits, const xt::xarray<std::int64_t>& labels,
                     const CrossEntropyOptions& o) {
  const char* op = "softmax_cross_entropy";
  if (logits.dim() != 2 || logits.size(0) == 0 || logits.size(1) == 0)
    throw ShapeError(std::string(op) + ": logits must be 2-D (batch, classes) and non-empty, got " +
                     shape_str(logits.shape()));
  const std::size_t batch = logits.size(0), classes = logits.size(1);
  if (labels.dimension() != 1 || labels.size() != batch)
    throw ShapeError(std::string(op) + ": " + std::to_string(labels.size()) + " labels of shape " +
                     shape_str(labels.shape()) + " for a batch of " + std::to_string(batch) +
                     " (logits " + shape_str(logits.shape()) + "); expected shape [" +
                     std::to_string(batch) + "]");
  for (std::size_t i = 0; i < batch; ++i)
    if (labels(i) != o.ignore_index &&
        (labels(i) < 0 || static_cast<std::size_t>(labels(i)) >= classes))
      throw IndexError(std::string(op) + ": label " + std::to_string(labels(i)) + " of sample " +
                       std::to_string(i) + " is out of range for " + std::to_string(classes) +
                       " classes (expected 0 <= label < " + std::to_string(classes) + ")");
  if (o.weight.defined()) {
    detail::check_same_dtype(op, logits, o.weight);
    if (o.weight.shape() != Shape{classes})
      throw ShapeError(std::string(op) + ": class weights of shape " + shape_str(o.weight.shape()) +
                       "; expected [" + std::to_string(classes) + "]");
  }
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0))
    throw ValueError(std::string(op) + ": label_smoothing must be in [0, 1], got " +
                     std::to_string(o.label_smoothing));
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& label_tensor,
                             const CrossEntropyOptions& o) {
  const ProfileScope profiled("softmax_cross_entropy");
  const xt::xarray<std::int64_t>& labels = detail::indices("softmax_cross_entropy", label_tensor);
  check_arguments(logits, labels, o);
  const std::size_t batch = logits.size(0), classes = logits.size(1);
  const double s = o.label_smoothing;
  Tensor p, target, total;
  double denominator = o.reduction == Reduction::mean ? 0.0 : 1.0;
  Tensor out = detail::dispatch(logits.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* z = detail::data<T>(logits);
    const T* w = o.weight.defined() ? detail::data<T>(o.weight) : nullptr;
    xt::xarray<T> probs = detail::empty<T>(logits.shape());
    xt::xarray<T> targets = xt::zeros<T>(logits.shape());
    xt::xarray<T> totals = detail::empty<T>({batch, 1});
    std::vector<double> losses(batch);
    // Each row shifted by its maximum, then e^ of the whole array at once (vectorized in float32
    // across rows: a row of ten classes is shorter than one vector) and each row's log-sum; then
    // log p = (z - m) - log_sum in the same array, the loss read from it, and p = e^(log p), again
    // at once.
    std::vector<T> maxima(batch);
    T* pp = probs.data();
    for (std::size_t i = 0; i < batch; ++i) {
      const T* row = z + i * classes;
      T m = row[0];
      for (std::size_t c = 1; c < classes; ++c) m = std::max(m, row[c]);
      maxima[i] = m;
      for (std::size_t c = 0; c < classes; ++c) pp[i * classes + c] = row[c] - m;
    }
    detail::exp_in_place(pp, batch * classes);
    for (std::size_t i = 0; i < batch; ++i) {
      T* prow = pp + i * classes;
      T sum = 0;
      for (std::size_t c = 0; c < classes; ++c) sum += prow[c];
      const T log_sum = std::log(sum);  // log p = (z - m) - log_sum: never z - (m + log_sum),
                                        // which rounds to 0 in float32 for large logits
      for (std::size_t c = 0; c < classes; ++c)
        prow[c] = (z[i * classes + c] - maxima[i]) - log_sum;
    }
    for (std::size_t i = 0; i < batch; ++i) {
      const T* log_p = pp + i * classes;
      const bool ignored = labels(i) == o.ignore_index;
      const auto y = static_cast<std::size_t>(labels(i));
      double loss = 0, t = 0;
      if (s == 0) {  // q is the label's one-hot row: only its entry counts
        if (!ignored) {
          t = w ? static_cast<double>(w[y]) : 1.0;
          targets.data()[i * classes + y] = static_cast<T>(t);
          if (t != 0) loss = -t * static_cast<double>(log_p[y]);
        }
      } else {
        for (std::size_t c = 0; c < classes; ++c) {
          const double q =
              ignored ? 0.0 : (c == y ? 1.0 - s : 0.0) + s / static_cast<double>(classes);
          const double wq = (w ? static_cast<double>(w[c]) : 1.0) * q;
          targets.data()[i * classes + c] = static_cast<T>(wq);
          t += wq;
          if (wq != 0) loss -= wq * static_cast<double>(log_p[c]);
        }
      }
      totals.data()[i] = static_cast<T>(t);
      losses[i] = loss;
      if (o.reduction == Reduction::mean && !ignored)
        denominator += w ? static_cast<double>(w[y]) : 1.0;
    }
    detail::exp_in_place(pp, batch * classes);  // p = e^(log p)
    p = Tensor(std::move(probs));
    target = Tensor(std::move(targets));
    total = Tensor(std::move(totals));
    if (o.reduction == Reduction::none) {
      xt::xarray<T> result = detail::empty<T>({batch});
      for (std::size_t i = 0; i < batch; ++i) result.data()[i] = static_cast<T>(losses[i]);
      return Tensor(std::move(result));
    }
    double sum = 0;
    for (double l : losses) sum += l;
    return scalar(sum / denominator, {.dtype = logits.dtype()});
  });
  auto* node = record<SoftmaxCrossEntropyNode>(out, {logits}, denominator,
                                               o.reduction == Reduction::none, target, total);
  if (node) {
    node->save({p, target, total, logits});
    node->target_ = node->total_ = Tensor();  // saved now
  }
  return out;
}

}  // namespace xgrad
