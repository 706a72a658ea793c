// The backward sweep. Seeds go into the gradient slots of the outputs' nodes; then one loop walks
// the tape from the newest of those nodes down to the oldest. A node whose slot stayed empty is
// not on a path to the outputs and is skipped. Otherwise its backward turns the slot into input
// gradients, which are summed back to each input's shape (undoing broadcasting, in this one place)
// and added into the producing node's slot, or into the leaf's .grad.

#include "autograd/engine.hpp"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <string>

#include "autograd/anomaly.hpp"
#include "autograd/detail/anomaly.hpp"
#include "autograd/detail/forward.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/probe.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "autograd/profiler.hpp"
#include "autograd/tape.hpp"

namespace xgrad {

// What grad() asked for: gradients of chosen tensors instead of .grad accumulation.
struct Capture {
  std::vector<const TensorImpl*> leaves;  // inputs that are leaves (else nullptr)
  std::vector<const Node*> nodes;         // inputs produced by an op (else nullptr)
  std::vector<Tensor> grads;
};

class Engine {
 public:
  static void run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                  bool retain_graph, bool create_graph, Capture* capture);

 private:
  struct Sweep;
  class HeldLeaves;
  class PendingLeaves;
  static void deliver_to_leaf(const std::shared_ptr<TensorImpl>& leaf, Tensor g, bool create_graph,
                              Capture* capture, HeldLeaves* held);
  static void deliver_region_to_leaf(const std::shared_ptr<TensorImpl>& leaf, const Edge& edge,
                                     const GradRegion& region, const Tensor& g, Capture* capture,
                                     HeldLeaves* held);
};

namespace {
std::atomic<bool> hooks_registered{false};
// The callbacks queued during the backward() running on this thread (nullptr outside one).
thread_local std::vector<std::function<void()>>* queued_callbacks = nullptr;
}  // namespace

void detail::note_post_accumulate_grad_hook() {
  hooks_registered.store(true, std::memory_order_relaxed);
}

namespace {

void accumulate(Tensor& slot, Tensor g) { slot = slot.defined() ? add(slot, g) : std::move(g); }

bool held_by_no_one_else(const Tensor& g) {
  return g.impl_ptr().use_count() == 1 && g.impl()->value.use_count() == 1 && !g.requires_grad();
}

// A gradient that no one else holds, so that a leaf may keep it and later add to it in place.
Tensor owned(Tensor g) {
  if (held_by_no_one_else(g)) return g;
  return std::visit([](const auto& a) { return Tensor(a); }, g.storage());  // a copy
}

// slot += g placed at `region` of an input of `shape` (a slice's gradient), in place: the slot
// becomes a zero buffer of the input's shape the first time, and a copy when someone else holds
// it (a gradient handed to two inputs), so that later regions are added where they belong.
void accumulate_region(Tensor& slot, const Shape& shape, const GradRegion& region,
                       const Tensor& g) {
  if (!slot.defined())
    slot = zeros(shape, {.dtype = g.dtype()});
  else
    slot = owned(std::move(slot));
  detail::add_into_region(slot, region, g);
}

void add_in_place(Tensor& dst, const Tensor& src) {
  std::visit(
      [&](auto& d) {
        using T = typename std::decay_t<decltype(d)>::value_type;
        const T* s = detail::values<T>(src).data();
        T* p = d.data();
        for (std::size_t i = 0, n = d.size(); i < n; ++i) p[i] += s[i];
      },
      detail::plain(*dst.impl()->value));
  if (dst.impl()->version) dst.impl()->version->fetch_add(1, std::memory_order_relaxed);
}

// g through the register_hook hooks of `impl`, in order: a hook's defined result replaces it.
Tensor through_hooks(const TensorImpl& impl, Tensor g) {
  for (const auto& [handle, hook] : impl.hooks) {
    Tensor replaced = hook(g);
    if (!replaced.defined()) continue;
    if (replaced.shape() != g.shape() || replaced.dtype() != g.dtype())
      throw AutogradError("register_hook: a hook returned a gradient of shape " +
                          shape_str(replaced.shape()) + " and dtype " +
                          std::string(dtype_name(replaced.dtype())) +
                          "; the tensor's gradient has shape " + shape_str(g.shape()) +
                          " and dtype " + std::string(dtype_name(g.dtype())));
    g = std::move(replaced);
  }
  return g;
}

// A node's output gradient after the hooks of the outputs that registered some, then kept in
// grad() by those that retain it (added to what an earlier backward kept).
Tensor through_output_hooks(const std::vector<std::weak_ptr<TensorImpl>>& hooked, Tensor g) {
  std::vector<std::shared_ptr<TensorImpl>> alive;
  for (const std::weak_ptr<TensorImpl>& h : hooked)
    if (std::shared_ptr<TensorImpl> impl = h.lock()) alive.push_back(std::move(impl));
  for (const auto& impl : alive) g = through_hooks(*impl, std::move(g));
  for (const auto& impl : alive)
    if (impl->retains_grad) impl->grad = impl->grad.defined() ? add(impl->grad, g) : g;
  return g;
}

Tensor seed_for(const Tensor& out, const std::vector<Tensor>& grad_outputs, std::size_t i) {
  const Tensor& given = i < grad_outputs.size() ? grad_outputs[i] : Tensor();
  if (!given.defined()) {
    if (out.numel() != 1)
      throw AutogradError("backward: output " + std::to_string(i) + " has shape " +
                          shape_str(out.shape()) +
                          "; a gradient (seed) of that shape is needed unless the output has "
                          "exactly one element");
    return ones_like(out);
  }
  if (given.shape() != out.shape() || given.dtype() != out.dtype())
    throw AutogradError("backward: the gradient for output " + std::to_string(i) + " has shape " +
                        shape_str(given.shape()) + " and dtype " +
                        std::string(dtype_name(given.dtype())) + "; expected shape " +
                        shape_str(out.shape()) + " and dtype " +
                        std::string(dtype_name(out.dtype())));
  // In anomaly mode a NaN or Inf in the caller's seed is named as such, not blamed on the
  // backward of the op that receives it.
  if (DetectAnomalyGuard::is_enabled()) {
    if (const std::ptrdiff_t at = detail::first_non_finite(given); at >= 0)
      throw AnomalyError("anomaly: the gradient given to backward for output " +
                         std::to_string(i) + " is not finite at " +
                         index_str(static_cast<std::size_t>(at), given.shape()));
  }
  return given;
}

}  // namespace

// Keeps tape positions fixed while the sweep runs, and empties every slot it may have filled
// even when a backward throws.
struct Engine::Sweep {
  Tape& tape;
  std::size_t top = 0;
  explicit Sweep(Tape& t) : tape(t) { ++tape.sweeps_; }
  ~Sweep() {
    for (std::size_t i = 0; i < top && i < tape.entries_.size(); ++i)
      if (Node* n = tape.entries_[i]) n->grad_ = Tensor();
    if (--tape.sweeps_ == 0) {
      tape.tidy();
      tape.collect_foreign();
    }
  }
};

// The gradients one backward sends to leaves with register_hook hooks, held until the sweep has
// passed every use of the leaf (or ends), then given to the hooks whole and added into .grad.
class Engine::HeldLeaves {
 public:
  explicit HeldLeaves(bool create_graph) : create_graph_(create_graph) {}
  Tensor& slot(const std::shared_ptr<TensorImpl>& leaf) {
    for (auto& [held, g] : held_)
      if (held == leaf) return g;
    return held_.emplace_back(leaf, Tensor()).second;
  }
  // The leaf's held gradient, through its hooks, into .grad (nothing when none was sent).
  void release(const TensorImpl* leaf) {
    for (std::size_t i = 0; i < held_.size(); ++i)
      if (held_[i].first.get() == leaf) {
        auto [impl, g] = std::move(held_[i]);
        held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
        if (g.defined())
          deliver_to_leaf(impl, through_hooks(*impl, std::move(g)), create_graph_, nullptr,
                          nullptr);
        return;
      }
  }
  void release_all() {
    while (!held_.empty()) release(held_.front().first.get());
  }

 private:
  bool create_graph_;
  std::vector<std::pair<std::shared_ptr<TensorImpl>, Tensor>> held_;  // in the order first sent
};

// A leaf's gradient is final once the sweep has passed every op of the tape that uses it: for each
// leaf with post-accumulate-grad hooks, how many such ops are still ahead.
class Engine::PendingLeaves {
 public:
  // Counts the uses below `top` (the sweep visits all of them) and the leaves among the outputs.
  PendingLeaves(const Tape& tape, bool enabled, std::size_t top, const std::vector<Tensor>& outputs,
                HeldLeaves& held)
      : held_(held) {
    if (!enabled || !hooks_registered.load(std::memory_order_relaxed)) return;
    for (std::size_t i = 0; i < top; ++i)
      if (const Node* node = tape.entries_[i])
        for (const Edge& edge : node->edges_)
          if (edge.leaf && !edge.leaf->post_accumulate_grad_hooks.empty()) ++left_[edge.leaf.get()];
    for (const Tensor& out : outputs)
      if (!out.grad_fn() && !out.impl()->post_accumulate_grad_hooks.empty()) ++left_[out.impl()];
  }
  // One use of `leaf` passed: when it was the last, its hooks run.
  void passed(const std::shared_ptr<TensorImpl>& leaf) {
    if (left_.empty() || leaf->post_accumulate_grad_hooks.empty()) return;
    const auto it = left_.find(leaf.get());
    if (it == left_.end() || --it->second > 0) return;
    left_.erase(it);
    held_.release(leaf.get());  // its register_hook hooks first
    const Tensor handle(leaf);
    for (const auto& hook : leaf->post_accumulate_grad_hooks) hook(handle);
  }
  void passed(const Node& node) {
    if (left_.empty()) return;
    for (const Edge& edge : node.edges_)
      if (edge.leaf) passed(edge.leaf);
  }

 private:
  std::unordered_map<const TensorImpl*, std::size_t> left_;
  HeldLeaves& held_;
};

void Engine::deliver_region_to_leaf(const std::shared_ptr<TensorImpl>& leaf, const Edge& edge,
                                    const GradRegion& region, const Tensor& g, Capture* capture,
                                    HeldLeaves* held) {
  if (capture) {
    for (std::size_t j = 0; j < capture->leaves.size(); ++j)
      if (capture->leaves[j] == leaf.get()) accumulate_region(capture->grads[j], edge.shape, region, g);
    return;
  }
  if (held && !leaf->hooks.empty())
    return accumulate_region(held->slot(leaf), edge.shape, region, g);
  Tensor& grad = leaf->grad;
  if (grad.defined() && !grad.requires_grad() && !grad.is_view())
    detail::add_into_region(grad, region, g);  // in place, as add_in_place: .grad's handles see it
  else
    accumulate_region(grad, edge.shape, region, g);
}

void Engine::deliver_to_leaf(const std::shared_ptr<TensorImpl>& leaf, Tensor g, bool create_graph,
                             Capture* capture, HeldLeaves* held) {
  if (capture) {
    for (std::size_t j = 0; j < capture->leaves.size(); ++j)
      if (capture->leaves[j] == leaf.get()) accumulate(capture->grads[j], g);
    return;
  }
  if (held && !leaf->hooks.empty()) return accumulate(held->slot(leaf), std::move(g));
  Tensor& grad = leaf->grad;
  // In a dual level g carries its tangent (forward over reverse): ops keep it, out of place.
  const bool tangent = detail::carrying_tangents();
  if (!grad.defined())
    grad = create_graph ? std::move(g) : tangent ? clone(g) : owned(std::move(g));
  else if (create_graph || tangent || grad.requires_grad() || grad.is_view())
    grad = add(grad, g);
  else
    add_in_place(grad, g);
}

void Engine::run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                 bool retain_graph, bool create_graph, Capture* capture) {
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
    throw AutogradError("backward: " + std::to_string(outputs.size()) + " outputs but " +
                        std::to_string(grad_outputs.size()) + " gradients");
  Tape& tape = Tape::current();
  GradModeGuard mode(create_graph);
  const bool whole_gradients = detail::differentiable_backward();
  Sweep sweep(tape);
  HeldLeaves held(create_graph);

  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!out.defined() || !out.requires_grad())
      throw AutogradError("backward: output " + std::to_string(i) +
                          " does not require grad (no input of the ops that made it requires "
                          "grad, or it was computed under NoGradGuard)");
    Tensor seed = seed_for(out, grad_outputs, i);
    Node* node = out.grad_fn();
    if (!node) {
      deliver_to_leaf(out.impl_ptr(), std::move(seed), create_graph, capture, &held);
      continue;
    }
    if (node->tape_.load(std::memory_order_relaxed) != &tape)
      throw AutogradError("backward: output " + std::to_string(i) +
                          " was computed on another thread; run backward on the thread that "
                          "built the graph");
    accumulate(node->grad_, std::move(seed));
    sweep.top = std::max(sweep.top, node->index_ + 1);
  }

  // grad() fills no .grad, so it calls no hook: nothing counted.
  PendingLeaves pending(tape, capture == nullptr, sweep.top, outputs, held);
  std::vector<std::function<void()>> callbacks;
  struct Queue {  // this backward's callbacks; an outer backward's again when it ends
    std::vector<std::function<void()>>* outer = queued_callbacks;
    explicit Queue(std::vector<std::function<void()>>* mine) { queued_callbacks = mine; }
    ~Queue() { queued_callbacks = outer; }
  } queue(capture ? nullptr : &callbacks);
  for (const Tensor& out : outputs)
    if (!out.grad_fn()) pending.passed(out.impl_ptr());
  std::vector<Tensor> grads;
  detail::GraphProbe* const probe = detail::graph_probe();
  for (std::size_t i = sweep.top; i-- > 0;) {
    Node* node = tape.entries_[i];
    if (!node) continue;
    if (!node->grad_.defined()) {
      pending.passed(*node);
      continue;
    }
    Tensor g = std::move(node->grad_);  // leaves the slot empty
    if (!node->hooked_.empty()) g = through_output_hooks(node->hooked_, std::move(g));
    if (capture) {
      for (std::size_t j = 0; j < capture->nodes.size(); ++j)
        if (capture->nodes[j] == node) capture->grads[j] = g;
    }
    grads.assign(node->num_inputs(), Tensor());
    {
      const ProfileScope profiled(node->name(), true);
      if (!probe || !probe->backward(*node, g, grads)) node->backward(g, grads);
    }
    const bool anomaly = DetectAnomalyGuard::is_enabled();
    for (std::size_t k = 0; k < grads.size(); ++k) {
      const Edge& edge = node->edges_[k];
      if (!edge.requires_grad() || !grads[k].defined()) continue;
      if (anomaly) detail::check_gradient(*node, k, grads[k]);
      Tensor gk = std::move(grads[k]);
      // (Under create_graph, or carrying tangents, every gradient is whole and written in ops.)
      if (const std::optional<GradRegion> region =
              whole_gradients ? std::nullopt : node->grad_region(k)) {
        if (edge.fn)
          accumulate_region(edge.fn->grad_, edge.shape, *region, gk);
        else
          deliver_region_to_leaf(edge.leaf, edge, *region, gk, capture, &held);
        continue;
      }
      if (gk.shape() != edge.shape) {  // undoing a broadcast: profiled as backward work
        const ProfileScope profiled("sum_to", true);
        gk = sum_to(gk, edge.shape);
      }
      if (edge.fn)
        accumulate(edge.fn->grad_, std::move(gk));
      else
        deliver_to_leaf(edge.leaf, std::move(gk), create_graph, capture, &held);
    }
    pending.passed(*node);
    if (!retain_graph) node->release();
  }
  held.release_all();
  for (std::size_t i = 0; i < callbacks.size(); ++i) {  // a callback may queue more
    const std::function<void()> callback = std::move(callbacks[i]);
    callback();
  }
}

void queue_backward_callback(std::function<void()> callback) {
  if (!queued_callbacks)
    throw AutogradError(
        "queue_backward_callback: called outside a backward() (queue from a tensor's hook)");
  queued_callbacks->push_back(std::move(callback));
}

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
              std::optional<bool> retain_graph, bool create_graph) {
  Engine::run(outputs, grad_outputs, retain_graph.value_or(create_graph), create_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
  Capture capture;
  for (std::size_t j = 0; j < inputs.size(); ++j) {
    const Tensor& in = inputs[j];
    if (!in.defined() || !in.requires_grad())
      throw AutogradError("grad: input " + std::to_string(j) + " does not require grad");
    capture.leaves.push_back(in.grad_fn() ? nullptr : in.impl());
    capture.nodes.push_back(in.grad_fn());
  }
  capture.grads.resize(inputs.size());
  Engine::run(outputs, grad_outputs, retain_graph.value_or(create_graph), create_graph, &capture);
  if (!allow_unused) {
    for (std::size_t j = 0; j < inputs.size(); ++j)
      if (!capture.grads[j].defined())
        throw AutogradError("grad: input " + std::to_string(j) +
                            " was not used to compute the outputs; pass allow_unused=true to get "
                            "an undefined gradient for it instead");
  }
  return capture.grads;
}

}  // namespace xgrad
