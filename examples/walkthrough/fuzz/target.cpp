#include "examples/walkthrough/fuzz/target.hpp"

#include <string>

#include "examples/walkthrough/closed_form.hpp"
#include "examples/walkthrough/network_spec.hpp"

namespace walkthrough::fuzz {

void network_spec(const std::uint8_t* data, std::size_t size) {
  std::optional<Network> net;
  try {
    net.emplace(parse_network_spec(std::string(reinterpret_cast<const char*>(data), size)));
  } catch (const xgrad::Error&) {
    return;
  }
  // A spec that parsed must run: both computations, on networks small enough to be quick.
  std::size_t weights = net->x().size();
  for (const DenseLayer& layer : net->layers()) weights += layer.W.size();
  if (weights > 20000) return;
  (void)compare_traces(closed_form_backprop(*net), tape_backprop(*net));
}

}  // namespace walkthrough::fuzz
