#pragma once
/// \file
/// A picture of the graph behind a tensor, as Graphviz DOT: one box per op (its name and how many
/// bytes it saved for backward), one per leaf (its shape; filled when it requires grad), the
/// arrows labelled with the shapes that flow along them. `dot -Tpng graph.dot -o graph.png`.

#include <string>

#include "autograd/tensor.hpp"

namespace xgrad {

std::string to_dot(const Tensor& output);
/// Writes to_dot(output) to `path` (ValueError when it cannot be written).
void write_dot(const Tensor& output, const std::string& path);

}  // namespace xgrad
