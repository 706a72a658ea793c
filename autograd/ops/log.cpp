// log: z = ln x
//   dz/dx = 1 / x. Saves x. JVP: dz = dx / x.
#include <cmath>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Log final : Node {
  std::string_view name() const override { return "log"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = div(g, saved(0)); }
  Tensor jvp(const ForwardInputs& in) const override { return div(in.tangent(0), in.primal(0)); }
};
}  // namespace

Tensor log(const Tensor& x) {
  const ProfileScope profiled("log");
  Tensor out = detail::map(x, [](auto v) { return std::log(v); });
  if (auto* node = record<Log>(out, {x})) node->save({x});
  return out;
}
}  // namespace xgrad
