#include "autograd/node.hpp"

#include <string>

#include "autograd/anomaly.hpp"
#include "autograd/detail/anomaly.hpp"
#include "autograd/detail/probe.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/tape.hpp"

namespace xgrad {

namespace {
// Nodes whose last reference went, waiting to be deleted. Deleting a node drops its references to
// older nodes; doing that in this loop rather than recursively lets a chain of a million nodes go
// without overflowing the stack. Both are trivially destructible, so safe during thread exit.
thread_local Node* dead_head = nullptr;
thread_local bool collecting = false;
}  // namespace

// ---- NodeRef ----------------------------------------------------------------------------------

NodeRef::NodeRef(Node* node) : node_(node) {
  if (node_) node_->refs_.fetch_add(1, std::memory_order_relaxed);
}

NodeRef::~NodeRef() {
  if (!node_ || node_->refs_.fetch_sub(1, std::memory_order_acq_rel) > 1) return;
  Tape* owner = node_->tape_.load(std::memory_order_acquire);
  if (owner && owner != Tape::of_this_thread() && Tape::adopt_foreign(node_)) return;
  collect_dead(node_);
}

void collect_dead(Node* node) {
  node->next_dead_ = dead_head;
  dead_head = node;
  if (collecting) return;
  collecting = true;
  while (Node* n = dead_head) {
    dead_head = n->next_dead_;
    delete n;
  }
  collecting = false;
}

// ---- Node -------------------------------------------------------------------------------------

Node::~Node() {
  if (Tape* tape = tape_.load(std::memory_order_relaxed)) tape->remove(this);
}

void Node::save(std::initializer_list<std::reference_wrapper<const Tensor>> tensors) {
  for (const Tensor& t : tensors) {
    if (!t.defined()) throw AutogradError(std::string(name()) + ": saves an undefined tensor");
    TensorImpl* impl = t.impl();
    const std::uint64_t at = impl->version ? impl->version->load(std::memory_order_relaxed) : 0;
    if (impl->grad_fn.get() == this) {
      if (impl->view)  // its layout would be lost: a view op saves its input, never its output
        throw AutogradError(std::string(name()) + ": saves its own output, which is a view");
      saved_.push_back({nullptr, impl->value, impl->forward, impl->version, at});
    }
    else
      saved_.push_back({t.impl_ptr(), nullptr, nullptr, impl->version, at});
  }
}

Tensor Node::saved(std::size_t i) const {
  if (released_)
    throw AutogradError(std::string(name()) +
                        ": backward through this graph a second time, but its saved tensors were "
                        "released by the first backward; pass retain_graph=true to the first one");
  const Saved& s = saved_.at(i);
  if (s.version && s.version->load(std::memory_order_relaxed) != s.at)
    throw AutogradError(
        std::string(name()) + ": " + (s.tensor ? "an input" : "the output") +
        " that it saved for backward was changed in place after the forward (version " +
        std::to_string(s.version->load()) + ", saved at version " + std::to_string(s.at) +
        "), so its gradient would be wrong; change tensors only after backward, or compute with "
        "a copy");
  if (s.tensor) return Tensor(s.tensor);
  auto impl = std::make_shared<TensorImpl>();
  impl->value = s.output;
  impl->version = s.version;
  impl->forward = s.forward;  // forward over reverse: the output's tangent goes with its value
  if (!forward_only_) {       // a node made for a tangent only is no one's grad_fn
    impl->grad_fn = NodeRef(const_cast<Node*>(this));
    impl->requires_grad = true;
  }
  return Tensor(std::move(impl));
}

std::size_t Node::saved_bytes() const {
  std::size_t bytes = 0;
  for (const Saved& s : saved_) {
    const Values& v = s.tensor ? *s.tensor->value : *s.output;
    if (const auto* b = std::get_if<std::unique_ptr<BlockedArray>>(&v)) {  // padding included
      bytes += (*b)->values.size() * sizeof(float);
      continue;
    }
    bytes += std::visit([](const auto& a) { return a.size() * sizeof(a.data()[0]); },
                        std::get<Storage>(v));
  }
  return bytes;
}

const std::string& Node::created_at() const {
  static const std::string unknown = "    (unknown: the op ran without DetectAnomalyGuard)\n";
  return created_at_ ? *created_at_ : unknown;
}

void Node::list_hooked_output(const std::shared_ptr<TensorImpl>& output) {
  for (const std::weak_ptr<TensorImpl>& listed : hooked_)
    if (listed.lock() == output) return;
  hooked_.push_back(output);
}

void Node::release() {
  saved_.clear();
  released_ = true;
}

bool should_record(std::span<const Tensor* const> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

namespace {
struct Composite {
  const char* name = nullptr;
  std::uint64_t call = 0;
};
thread_local Composite current_composite;
thread_local std::uint64_t composite_calls = 0;
thread_local detail::GraphProbe* current_probe = nullptr;
}  // namespace

detail::GraphProbe* detail::graph_probe() { return current_probe; }
detail::ProbeGuard::ProbeGuard(GraphProbe* probe) : previous_(current_probe) {
  current_probe = probe;
}
detail::ProbeGuard::~ProbeGuard() { current_probe = previous_; }

CompositeScope::CompositeScope(const char* name) {
  if (current_composite.name) return;
  outer_ = true;
  current_composite = {name, ++composite_calls};
}

CompositeScope::~CompositeScope() {
  if (outer_) current_composite = {};
}

void attach(Tensor& out, Node* node, std::span<const Tensor* const> inputs) {
  node->composite_ = current_composite.name;
  node->composite_call_ = current_composite.call;
  Tape& tape = Tape::current();
  node->edges_.reserve(inputs.size());
  for (const Tensor* t : inputs) {
    Edge edge;
    edge.shape = t->shape();
    edge.dtype = t->dtype();
    TensorImpl* impl = t->impl();
    sync_history(*impl);
    if (impl->grad_fn) {
      if (impl->grad_fn->tape_.load(std::memory_order_relaxed) != &tape)
        throw AutogradError(
            std::string(node->name()) +
            ": an input was computed on another thread's tape; a graph must be "
            "built and differentiated on one thread (detach() the input to share it)");
      edge.fn = impl->grad_fn;
    } else if (impl->requires_grad) {
      edge.leaf = t->impl_ptr();
    }
    node->edges_.push_back(std::move(edge));
  }
  if (DetectAnomalyGuard::is_enabled()) {
    node->created_at_ = std::make_unique<std::string>(detail::capture_stack());
    detail::check_output(*node, out, inputs);
  }
  tape.add(node);
  out.impl()->grad_fn = NodeRef(node);
  out.impl()->requires_grad = true;
  if (current_probe) current_probe->recorded(*node, out, inputs);
}

}  // namespace xgrad
