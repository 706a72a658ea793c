#pragma once
/// \file
/// A picture of the graph behind a tensor, as Graphviz DOT: one box per op (its name and how many
/// bytes it saved for backward), one per leaf (its shape; filled when it requires grad), the
/// arrows labelled with the shapes that flow along them. `dot -Tpng graph.dot -o graph.png`.
///
///   write_dot(loss, "graph.dot", {.names = net.named_parameters(), .fold_composites = true});

#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

struct DotOptions {
  /// Leaves drawn by name: a module's named_parameters(), or any (name, tensor) pairs.
  std::vector<std::pair<std::string, Tensor>> names;
  /// Each call of a composite op (mean, var, logsumexp, gelu, ...) as one box, instead of the
  /// primitive ops it is made of.
  bool fold_composites = false;
};

/// Each op and leaf once; an op on a number shows it ("mul x 0.05", "add + 1").
std::string to_dot(const Tensor& output, const DotOptions& options = {});
/// Writes to_dot(output, options) to `path` (ValueError when it cannot be written).
void write_dot(const Tensor& output, const std::string& path, const DotOptions& options = {});

}  // namespace xgrad
