#pragma once
// A listener on this thread's graph, for tools that study a recorded graph rather than use it: the
// verifier's mistake search (autograd/verify_mistakes.cpp) sees every node as it is recorded, with
// its output and inputs, and replays backward sweeps with one node's backward replaced. Off (null)
// unless a ProbeGuard is alive: then attach and the engine each read one thread-local pointer.

#include <span>

#include "autograd/tensor.hpp"

namespace xgrad {
class Node;
namespace detail {

class GraphProbe {
 public:
  virtual ~GraphProbe() = default;
  /// Called by attach for each node recorded, once its edges are set.
  virtual void recorded(Node& /*node*/, const Tensor& /*out*/,
                        std::span<const Tensor* const> /*inputs*/) {}
  /// Called by the engine in place of node.backward(g, grads): true when it filled grads itself.
  virtual bool backward(Node& /*node*/, const Tensor& /*g*/, std::span<Tensor> /*grads*/) {
    return false;
  }
};

/// This thread's probe, or null.
GraphProbe* graph_probe();

/// Sets this thread's probe while it lives; the previous one again after.
class ProbeGuard {
 public:
  explicit ProbeGuard(GraphProbe* probe);
  ~ProbeGuard();
  ProbeGuard(const ProbeGuard&) = delete;
  ProbeGuard& operator=(const ProbeGuard&) = delete;

 private:
  GraphProbe* previous_;
};

}  // namespace detail
}  // namespace xgrad
