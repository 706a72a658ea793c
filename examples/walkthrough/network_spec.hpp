#pragma once
// The document's network as JSON, for the walkthrough and for anyone checking a derivation:
//
//   {"layers": [{"W": [[...], ...], "b": [...], "activation": "relu"}, ...,
//               {"W": [[...], ...], "b": [...]}],
//    "x": [...] or [[...], ...],   one sample, or a batch with one row per sample
//    "y": 2 or [2, 0, ...],        0-based class indices
//    "lr": 0.1}                    optional, 0.1 by default
//
// Rows of W are output units (W_l has shape (d_l, d_{l-1})). An activation is a name of xgrad's
// activation table (nn/activation.hpp); a missing one is "identity", which the last layer must
// have.

#include <string>

#include "examples/walkthrough/closed_form.hpp"

namespace walkthrough {

/// Parses and checks a spec (the Network's checks included). ValueError, ShapeError or IndexError
/// with a message that says where the problem is: "layers[1].W: row 2 has 3 numbers, row 0 has 4".
Network parse_network_spec(const std::string& json_text);
/// The same from a file ("cannot read FILE" when it cannot be read).
Network load_network_spec(const std::string& path);

}  // namespace walkthrough
