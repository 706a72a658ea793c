#pragma once
/// \file
/// Reverse-mode differentiation over the tape, as torch::autograd::backward and ::grad.

#include <functional>
#include <optional>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

/// Adds d(sum_i <outputs[i], grad_outputs[i]>)/d(leaf) to the .grad of every leaf that requires
/// grad and was used. An empty grad_outputs entry means 1 and is allowed for one-element outputs
/// only.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              std::optional<bool> retain_graph = std::nullopt, bool create_graph = false);

/// Returns the same gradients for `inputs` (leaves or not) without touching any .grad. With
/// create_graph the results are recorded on the tape, so they can be differentiated again.
/// An input that the outputs do not depend on is an error unless allow_unused (then undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
                         bool allow_unused = false);

/// From inside a hook run by backward(): calls `callback` once the sweep has passed the whole
/// tape, after every .grad of that backward is final (callbacks in the order queued). As PyTorch's
/// engine queue_callback: data-parallel training waits there for the gradients it sent during the
/// sweep. Not called when the sweep throws. AutogradError outside a backward().
void queue_backward_callback(std::function<void()> callback);

}  // namespace xgrad
