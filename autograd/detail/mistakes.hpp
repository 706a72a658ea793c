#pragma once
// The verifier's mistake search (autograd/verify_mistakes.cpp): the recorder that keeps the loss's
// graph with the values of every node, and the search over candidate mistakes on it.

#include <span>
#include <string>
#include <vector>

#include "autograd/detail/probe.hpp"
#include "autograd/node.hpp"
#include "autograd/verify.hpp"

namespace xgrad::detail {

/// Every node recorded while it is the probe, in forward order, with its output and input values.
class GraphRecorder final : public GraphProbe {
 public:
  struct Entry {
    NodeRef node;  ///< kept alive while the search runs
    Tensor out;
    std::vector<Tensor> inputs;
  };
  void recorded(Node& node, const Tensor& out, std::span<const Tensor* const> inputs) override;
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

/// What the search explains: the loss (its graph retained), the parameters it was computed from,
/// their names, the claimed gradients and the true ones (the tape's; zeros for an unused one).
struct MistakeQuestion {
  const GraphRecorder& graph;
  Tensor loss;
  std::vector<Tensor> params;
  std::vector<std::string> names;
  std::vector<Tensor> claimed, truth;
  std::vector<bool> wrong;  ///< claimed differs from truth
};

struct MistakeAnswer {
  std::vector<Mistake> mistakes;
  std::size_t candidates = 0;
};

MistakeAnswer find_mistakes(const MistakeQuestion& question, const VerifyOptions& options);

}  // namespace xgrad::detail
