// reshape: z = x with another shape, same elements in row-major order
//   dz/dx = identity; the gradient is reshaped back. Saves nothing (the shape is on the edge).
#include <algorithm>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Reshape final : Node {
  std::string_view name() const override { return "reshape"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = reshape(g, detail::spec(edge(0).shape));
  }
};

Shape resolve(const Tensor& x, const std::vector<std::ptrdiff_t>& spec) {
  Shape shape(spec.size(), 1);
  std::size_t known = 1;
  std::ptrdiff_t infer = -1;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == -1 && infer < 0) {
      infer = static_cast<std::ptrdiff_t>(i);
    } else if (spec[i] < 0) {
      throw ShapeError("reshape: bad target shape entry " + std::to_string(spec[i]) + " at axis " +
                       std::to_string(i) + " (sizes are >= 0, and one may be -1)");
    } else {
      shape[i] = static_cast<std::size_t>(spec[i]);
      known *= shape[i];
    }
  }
  const std::size_t n = x.numel();
  if (infer >= 0 && known != 0 && n % known == 0)
    shape[static_cast<std::size_t>(infer)] = n / known;
  if (detail::product(shape) != n || (infer >= 0 && known == 0)) {
    throw ShapeError("reshape: cannot view " + std::to_string(n) + " elements of shape " +
                     shape_str(x.shape()) + " as [" + join(spec, ", ") + "]");
  }
  return shape;
}
}  // namespace

Tensor reshape(const Tensor& x, const std::vector<std::ptrdiff_t>& shape_spec) {
  const ProfileScope profiled("reshape");
  const Shape shape = resolve(x, shape_spec);
  Tensor out = detail::empty_tensor(x.dtype(), shape);
  detail::dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    std::copy_n(static_cast<const T*>(detail::raw_data(x)), out.numel(),
                static_cast<T*>(detail::raw_output(out)));
  });
  record<Reshape>(out, {x});
  return out;
}
}  // namespace xgrad
