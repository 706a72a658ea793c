// Forward mode: dual levels, tangents on tensors, and the step every recorded op takes to give
// its output a tangent (detail::forward_tangent, called by record_node).
#include "autograd/forward_ad.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "autograd/detail/forward.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/view.hpp"
#include "autograd/engine.hpp"
#include "autograd/error.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"

namespace xgrad {
namespace {
std::atomic<std::uint64_t> levels_opened{0};  // level ids, unique across threads
thread_local std::uint64_t open_level = 0;    // 0: none open on this thread
thread_local int suspended = 0;               // inside a rule: its ops carry no tangents
// The tangents made in the open level: emptied when it closes. (Not only dropped from their
// tensors: a node that saved its output shares the output's, and a pending one holds that node.)
thread_local std::vector<std::weak_ptr<detail::ForwardGrad>> duals;
thread_local std::size_t compact_at = 1024;  // the list drops its expired entries at this size
thread_local std::set<std::string>* transposed_log = nullptr;

void set_tangent(const Tensor& t, std::unique_ptr<detail::ForwardGrad> forward) {
  forward->level = open_level;
  std::shared_ptr<detail::ForwardGrad> shared = std::move(forward);
  t.impl()->forward = shared;
  if (duals.size() >= compact_at) {  // a long level: tangents that died are let go
    std::erase_if(duals, [](const std::weak_ptr<detail::ForwardGrad>& w) { return w.expired(); });
    compact_at = std::max<std::size_t>(1024, 2 * duals.size());
  }
  duals.push_back(shared);
}

void set_tangent(const Tensor& t, Tensor tangent) {
  auto forward = std::make_unique<detail::ForwardGrad>();
  forward->tangent = std::move(tangent);
  set_tangent(t, std::move(forward));
}

// The tangent at the open level, made now if it waits on its op's node.
Tensor tangent_of(const Tensor& t) {
  if (open_level == 0 || !t.defined()) return {};
  detail::ForwardGrad* forward = t.impl()->forward.get();
  if (!forward || forward->level != open_level) return {};
  if (forward->pending) {
    const detail::ForwardSuspend suspend;
    if (transposed_log) transposed_log->insert(std::string(forward->pending->name()));
    forward->tangent = transposed_jvp(*forward->pending.get(), t, forward->input_tangents);
    forward->pending = NodeRef();
    forward->input_tangents.clear();
  }
  return forward->tangent;
}
}  // namespace

detail::ForwardSuspend::ForwardSuspend() { ++suspended; }
detail::ForwardSuspend::~ForwardSuspend() { --suspended; }

detail::TransposedJvpLog::TransposedJvpLog(std::set<std::string>& names)
    : previous_(transposed_log) {
  transposed_log = &names;
}
detail::TransposedJvpLog::~TransposedJvpLog() { transposed_log = previous_; }

Tensor ForwardInputs::tangent_or_zeros(std::size_t i) const {
  return has(i) ? tangents[i] : zeros_like(primal(i));
}

bool detail::carrying_tangents() { return open_level != 0 && suspended == 0; }

Tensor detail::add_defined(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  return b.defined() ? add(a, b) : a;
}

bool detail::has_tangent(std::span<const Tensor* const> inputs) {
  if (open_level == 0 || suspended) return false;
  for (const Tensor* t : inputs) {
    const detail::ForwardGrad* forward = t->impl()->forward.get();
    if (forward && forward->level == open_level) return true;
  }
  return false;
}

bool detail::forward_tangent(Tensor& out, Node& node, std::span<const Tensor* const> inputs) {
  std::vector<Tensor> tangents(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) tangents[i] = tangent_of(*inputs[i]);
  auto forward = std::make_unique<ForwardGrad>();
  {
    const ForwardSuspend suspend;
    forward->tangent = node.jvp(ForwardInputs{inputs, tangents, out});
  }
  const bool pending = !forward->tangent.defined();
  if (pending) {
    forward->pending = NodeRef(&node);
    // Copies: an in-place op may write into an input's tangent before this one is read.
    for (Tensor& t : tangents)
      if (t.defined()) t = clone(t);
    forward->input_tangents = std::move(tangents);
  } else {
    if (forward->tangent.dtype() != out.dtype())
      forward->tangent = forward->tangent.to(out.dtype());
    if (forward->tangent.shape() != out.shape())  // a copy, so that in-place ops can write it
      forward->tangent = expand(forward->tangent, detail::spec(out.shape())).contiguous();
  }
  set_tangent(out, std::move(forward));
  return pending;
}

// J u = d/dw <J^T w, u>: the node's backward recorded with a free cotangent w (its result is
// linear in w, so w's value does not matter: zeros), then one backward of that, to w.
Tensor transposed_jvp(Node& node, const Tensor& out, std::span<const Tensor> tangents) {
  const bool create_graph = GradMode::is_enabled();
  std::vector<bool> needs(tangents.size());
  for (std::size_t i = 0; i < tangents.size(); ++i) needs[i] = tangents[i].defined();
  const GradModeGuard recording(true);
  const Tensor w = zeros(out.shape(), {.dtype = out.dtype(), .requires_grad = true});
  std::vector<Tensor> grads(tangents.size());
  struct Needs {  // needs_grad answers for the inputs with tangents while the backward runs
    Node& node;
    ~Needs() { node.forward_needs_ = nullptr; }
  } restore{node};
  node.forward_needs_ = &needs;
  node.backward(w, grads);
  Tensor inner;
  for (std::size_t i = 0; i < tangents.size(); ++i) {
    if (!needs[i] || !grads[i].defined()) continue;
    const Tensor term = sum(mul(sum_to(grads[i], node.edge(i).shape), tangents[i]));
    inner = inner.defined() ? add(inner, term) : term;
  }
  if (!inner.defined() || !inner.requires_grad()) return zeros(out.shape(), {.dtype = out.dtype()});
  return grad({inner}, {w}, {}, /*retain_graph=*/true, create_graph, true)[0];
}

void detail::write_tangent(const Tensor& x, const Tensor& result) {
  if (open_level == 0 || suspended) return;
  assign_tangent(x, tangent_of(result));
}

void detail::assign_tangent(const Tensor& x, Tensor now) {
  if (open_level == 0 || suspended) return;
  Tensor tangent = tangent_of(x);
  if (!now.defined() && !tangent.defined()) return;
  const ForwardSuspend suspend;
  const NoGradGuard plain;  // a tangent's values, written as an optimizer step is
  if (!now.defined()) now = zeros_like(x);
  if (!tangent.defined() && x.is_view()) {
    // The view of the base's tangent with x's layout: the base's tangent must be its own
    // row-major storage for that (zeros when it has none).
    const Tensor base = x.base();
    Tensor whole = tangent_of(base);
    if (!whole.defined() || whole.is_view()) {
      whole = whole.defined() ? whole.to(base.dtype()).clone() : zeros_like(base);
      set_tangent(base, whole);
    }
    tangent = detail::make_view(whole, detail::layout(x));
    set_tangent(x, tangent);
  }
  if (tangent.defined()) {
    tangent.copy_(now);
  } else {
    set_tangent(x, now);
  }
}

void attach_forward(Node* node, std::span<const Tensor* const> inputs) {
  node->forward_only_ = true;
  node->edges_.reserve(inputs.size());
  for (const Tensor* t : inputs) {
    Edge edge;
    edge.shape = t->shape();
    edge.dtype = t->dtype();
    node->edges_.push_back(std::move(edge));
  }
}

namespace forward_ad {

dual_level::dual_level() {
  if (open_level != 0)
    throw AutogradError(
        "forward_ad::dual_level: a dual level is already open on this thread; levels do not nest "
        "(close the first one before opening another)");
  open_level = levels_opened.fetch_add(1, std::memory_order_relaxed) + 1;
}

dual_level::~dual_level() {
  for (const std::weak_ptr<detail::ForwardGrad>& weak : duals)
    if (const std::shared_ptr<detail::ForwardGrad> forward = weak.lock())
      if (forward->level == open_level) *forward = detail::ForwardGrad{};
  duals.clear();
  compact_at = 1024;
  open_level = 0;
}

bool is_active() { return open_level != 0; }

Tensor make_dual(const Tensor& primal, const Tensor& tangent) {
  if (open_level == 0)
    throw AutogradError(
        "make_dual: no dual level is open; open one first (forward_ad::dual_level level;)");
  if (!primal.defined() || !tangent.defined())
    throw ValueError("make_dual: the primal and the tangent must both be defined tensors");
  if (!is_floating_point(primal.dtype()))
    throw DtypeError("make_dual: the primal is " + std::string(dtype_name(primal.dtype())) +
                     "; only floating-point tensors have tangents");
  if (tangent.dtype() != primal.dtype())
    throw DtypeError("make_dual: the tangent is " + std::string(dtype_name(tangent.dtype())) +
                     " and the primal " + std::string(dtype_name(primal.dtype())) +
                     "; they must match");
  if (tangent.shape() != primal.shape())
    throw ShapeError("make_dual: the tangent has shape " + shape_str(tangent.shape()) +
                     " and the primal " + shape_str(primal.shape()) + "; they must match");
  Tensor dual;
  {
    const detail::ForwardSuspend suspend;
    dual = detail::alias(primal);
  }
  set_tangent(dual, tangent);
  return dual;
}

UnpackedDual unpack_dual(const Tensor& tensor) {
  UnpackedDual unpacked;
  unpacked.tangent = tangent_of(tensor);
  const detail::ForwardSuspend suspend;
  unpacked.primal = detail::alias(tensor);
  return unpacked;
}

}  // namespace forward_ad
}  // namespace xgrad
