#pragma once
// The checks DetectAnomalyGuard turns on; called by the tape (attach) and the engine.

#include <span>
#include <string>

#include "autograd/tensor.hpp"

namespace xgrad {
class Node;
namespace detail {

std::string capture_stack();  // the calling stack, one demangled frame per line
std::ptrdiff_t first_non_finite(const Tensor& t);  // -1 when every element is finite
// AnomalyError when `out` (or a gradient for input `input`) holds a NaN or an Inf.
void check_output(const Node& node, const Tensor& out, std::span<const Tensor* const> inputs);
void check_gradient(const Node& node, std::size_t input, const Tensor& grad);

}  // namespace detail
}  // namespace xgrad
