#pragma once
/// \file
/// The document's network as JSON, for the walkthrough and for anyone checking a derivation:
///
///   {"layers": [{"W": [[...], ...], "b": [...], "activation": "relu"}, ...,
///               {"W": [[...], ...], "b": [...]}],
///    "x": [...] or [[...], ...],   one sample, or a batch with one row per sample
///    "y": 2 or [2, 0, ...],        0-based class indices
///    "lr": 0.1}                    optional, 0.1 by default
///
/// Rows of W are output units (W_l has shape (d_l, d_{l-1})). A missing activation is
/// "identity", which the last layer must have.

#include <string>
#include <vector>

#include "nn/backprop.hpp"

namespace xgrad::nn {

struct NetworkSpec {
  std::vector<DenseLayer> layers;
  xt::xarray<double> x;  ///< (B, d_0): a single sample is read as a batch of one
  Index y;               ///< (B)
  double lr = 0.1;
};

/// Parses and checks a spec (check_network included). ValueError, ShapeError or IndexError with a
/// message that says where the problem is: "layers[1].W: row 2 has 3 numbers, row 0 has 4".
NetworkSpec parse_network_spec(const std::string& json_text);
/// The same from a file ("cannot read FILE" when it cannot be read).
NetworkSpec load_network_spec(const std::string& path);

}  // namespace xgrad::nn
