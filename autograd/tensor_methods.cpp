// The member forms of the common ops (x.relu(), x.sum(), ...): each calls the op of its name.
#include "autograd/detail/view.hpp"
#include "autograd/ops.hpp"

namespace xgrad {

Tensor Tensor::relu() const { return xgrad::relu(*this); }
Tensor Tensor::sigmoid() const { return xgrad::sigmoid(*this); }
Tensor Tensor::tanh() const { return xgrad::tanh(*this); }
Tensor Tensor::exp() const { return xgrad::exp(*this); }
Tensor Tensor::log() const { return xgrad::log(*this); }
Tensor Tensor::sqrt() const { return xgrad::sqrt(*this); }
Tensor Tensor::abs() const { return xgrad::abs(*this); }
Tensor Tensor::pow(double exponent) const { return xgrad::pow(*this, exponent); }
Tensor Tensor::pow(const Tensor& exponent) const { return xgrad::pow(*this, exponent); }
Tensor Tensor::sum() const { return xgrad::sum(*this); }
Tensor Tensor::sum(const Axes& axes, bool keepdims) const {
  return xgrad::sum(*this, axes, keepdims);
}
Tensor Tensor::mean() const { return xgrad::mean(*this); }
Tensor Tensor::mean(const Axes& axes, bool keepdims) const {
  return xgrad::mean(*this, axes, keepdims);
}
Tensor Tensor::max() const { return xgrad::max(*this); }
Tensor Tensor::max(const Axes& axes, bool keepdims) const {
  return xgrad::max(*this, axes, keepdims);
}
Tensor Tensor::min() const { return xgrad::min(*this); }
Tensor Tensor::min(const Axes& axes, bool keepdims) const {
  return xgrad::min(*this, axes, keepdims);
}
Tensor Tensor::argmax(std::ptrdiff_t axis) const { return xgrad::argmax(*this, axis); }
Tensor Tensor::argmin(std::ptrdiff_t axis) const { return xgrad::argmin(*this, axis); }
Tensor Tensor::softmax(std::ptrdiff_t axis) const { return xgrad::softmax(*this, axis); }
Tensor Tensor::log_softmax(std::ptrdiff_t axis) const { return xgrad::log_softmax(*this, axis); }
Tensor Tensor::reshape(const std::vector<std::ptrdiff_t>& shape) const {
  return xgrad::reshape(*this, shape);
}
Tensor Tensor::flatten(std::ptrdiff_t start_axis, std::ptrdiff_t end_axis) const {
  return xgrad::flatten(*this, start_axis, end_axis);
}
Tensor Tensor::t() const {
  if (dim() != 2)
    throw ShapeError("t: needs a 2-D tensor, got shape " + shape_str(shape()) +
                     " (transpose(axis0, axis1) swaps any two axes)");
  return xgrad::transpose(*this, 0, 1);
}
Tensor Tensor::transpose(std::ptrdiff_t axis0, std::ptrdiff_t axis1) const {
  return xgrad::transpose(*this, axis0, axis1);
}
Tensor Tensor::permute(const Axes& axes) const { return xgrad::permute(*this, axes); }
Tensor Tensor::squeeze() const { return xgrad::squeeze(*this); }
Tensor Tensor::unsqueeze(std::ptrdiff_t axis) const { return xgrad::unsqueeze(*this, axis); }
Tensor Tensor::matmul(const Tensor& other) const { return xgrad::matmul(*this, other); }
Tensor Tensor::clamp(double min, double max) const { return xgrad::clamp(*this, min, max); }
Tensor Tensor::view(const std::vector<std::ptrdiff_t>& shape) const {
  return xgrad::view(*this, shape);
}
Tensor Tensor::expand(const std::vector<std::ptrdiff_t>& sizes) const {
  return xgrad::expand(*this, sizes);
}

Tensor Tensor::operator[](std::int64_t i) const {
  return xgrad::select(*this, 0, static_cast<std::ptrdiff_t>(i));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;  // as PyTorch's: a contiguous view too
  return xgrad::clone(*this);
}
Tensor Tensor::clone() const { return xgrad::clone(*this); }

Tensor Tensor::to(Dtype dtype) const { return dtype == this->dtype() ? *this : cast(*this, dtype); }

}  // namespace xgrad
