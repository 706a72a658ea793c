// In-place ops, as LibTorch's (x.add_(y), x += y, x.zero_(), ...): the result is computed by
// the out-of-place op and written into x's storage, through x's layout, so every handle and
// every view of that storage sees it, and its version counter moves on.
//
// When the graph is recorded, x's history is rebased onto the op: the op is applied to a clone
// of x (so that a node that needs x's old values, mul's, keeps them), and x takes the op's node
// as its grad_fn, as PyTorch's in-place ops rewrite a tensor's history. Through a view v of a
// base b, b's history is rewritten instead (as PyTorch's CopySlices): b becomes
//   b' = b with v's elements replaced by r (r the op's result),
//   db'/db: g with v's elements zeroed; db'/dr: g read at v's elements,
// and every view of b, v included, takes its grad_fn from b' when next used (sync_history in
// node.hpp). Refused, with PyTorch's messages: a leaf that requires grad, or a view of one,
// while recording (outside NoGradGuard; inside it, `p -= lr * p.grad()` is a hand-written SGD
// step); a write into an expanded view (several elements in one memory location).
#include <array>
#include <functional>

#include "autograd/detail/forward.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/view.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

bool overlapping(const Tensor& x) {
  const detail::Layout l = detail::layout(x);
  for (std::size_t d = 0; d < l.shape.size(); ++d)
    if (l.shape[d] > 1 && l.strides[d] == 0) return true;
  return false;
}

// b' = b with the elements at `positions` (of b's row-major elements) replaced by r's.
struct CopySlices final : Node {
  CopySlices(std::vector<std::int64_t> positions, Shape base_shape)
      : positions_(std::move(positions)), base_shape_(std::move(base_shape)) {}
  std::string_view name() const override { return "copy_slices"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor whole = g.shape() == base_shape_ ? g : broadcast_to(g, base_shape_);
    if (needs_grad(0)) {
      xt::xarray<bool> written = xt::zeros<bool>(base_shape_);
      for (const std::int64_t p : positions_) written.data()[static_cast<std::size_t>(p)] = true;
      grads[0] = where(Tensor(std::move(written)), 0, whole);
    }
    if (needs_grad(1))
      grads[1] =
          reshape(index_select(reshape(whole, {-1}), 0, positions_), detail::spec(edge(1).shape));
  }
  std::vector<std::int64_t> positions_;
  Shape base_shape_;
};
}  // namespace

namespace detail {
bool check_in_place(const char* op, const Tensor& x, bool other_requires_grad) {
  if (!x.defined()) throw ValueError(std::string(op) + ": the tensor is undefined");
  if (overlapping(x))
    throw ValueError(std::string(op) +
                     ": unsupported operation: more than one element of the written-to tensor "
                     "refers to a single memory location (an expanded view); clone() it first");
  if (!GradMode::is_enabled()) return false;
  const Tensor base = x.is_view() ? x.base() : x;
  if (base.is_leaf() && base.requires_grad())
    throw AutogradError(std::string(op) + (x.is_view() ? ": a view of a leaf" : ": a leaf") +
                        " Variable that requires grad is being used in an in-place operation "
                        "(do it under NoGradGuard, or on a copy)");
  return x.requires_grad() || other_requires_grad;
}

void record_write(const Tensor& x, std::vector<std::int64_t> positions, const Tensor& r) {
  const TensorImpl& impl = *x.impl();
  Tensor owner = impl.view && impl.history != TensorImpl::kDetached ? x.base() : x;
  Node* node = new CopySlices(std::move(positions), owner.shape());
  const std::array<const Tensor*, 2> inputs{&owner, &r};
  attach(owner, node, inputs);  // the owner's old history is the first input, b' its new one
  if (!owner.is_view()) ++owner.impl()->history;  // its views remake their grad_fn from b'
}
}  // namespace detail

namespace {
// Writes `result` (x's shape) into x's storage through x's layout, and rebases x's history onto
// result's node when the graph is recorded.
const Tensor& write_back(const char* op, const Tensor& x, const Tensor& result, bool recorded) {
  if (result.dtype() != x.dtype())
    throw DtypeError(std::string(op) + ": the result type " +
                     std::string(dtype_name(result.dtype())) +
                     " can't be cast to the tensor's dtype " + std::string(dtype_name(x.dtype())) +
                     " in place");
  if (result.shape() != x.shape())
    throw ShapeError(std::string(op) + ": in place, the result of shape " +
                     shape_str(result.shape()) + " must keep the tensor's shape " +
                     shape_str(x.shape()));
  detail::write_layout(x, result);
  detail::write_tangent(x, result);
  if (!recorded || !result.requires_grad()) return x;
  TensorImpl& impl = *x.impl();
  if (impl.view && impl.history != TensorImpl::kDetached) {
    detail::record_write(x, detail::storage_positions(detail::layout(x)), result);
  } else {
    impl.grad_fn = NodeRef(result.grad_fn());
    impl.requires_grad = true;
    if (!impl.view) ++impl.history;  // its views remake their grad_fn from the new one
  }
  return x;
}

}  // namespace

const Tensor& detail::in_place(const char* op, const Tensor& x, bool other_requires_grad,
                               const std::function<Tensor(const Tensor&)>& f) {
  const bool recorded = check_in_place(op, x, other_requires_grad);
  const Tensor before = recorded ? clone(x) : x;  // the old values, for a node that needs them
  return write_back(op, x, f(before), recorded);
}

namespace {
using detail::in_place;
// where(true, value, x): every entry replaced, x's gradient exactly 0, as PyTorch's fill_.
const Tensor& fill_in_place(const char* op, const Tensor& x, Scalar value) {
  return in_place(op, x, false, [&](const Tensor& before) {
    return where(full(before.shape(), 1, {.dtype = kBool}),
                 scalar(value, {.dtype = before.dtype()}), before);
  });
}
}  // namespace

const Tensor& Tensor::add_(const Tensor& other) const {
  return in_place("add_", *this, other.requires_grad(),
                  [&](const Tensor& x) { return xgrad::add(x, other); });
}
const Tensor& Tensor::sub_(const Tensor& other) const {
  return in_place("sub_", *this, other.requires_grad(),
                  [&](const Tensor& x) { return xgrad::sub(x, other); });
}
const Tensor& Tensor::mul_(const Tensor& other) const {
  return in_place("mul_", *this, other.requires_grad(),
                  [&](const Tensor& x) { return xgrad::mul(x, other); });
}
const Tensor& Tensor::div_(const Tensor& other) const {
  return in_place("div_", *this, other.requires_grad(),
                  [&](const Tensor& x) { return xgrad::div(x, other); });
}
const Tensor& Tensor::add_(Scalar other) const {
  return in_place("add_", *this, false, [&](const Tensor& x) { return xgrad::add(x, other); });
}
const Tensor& Tensor::sub_(Scalar other) const {
  return in_place("sub_", *this, false, [&](const Tensor& x) { return xgrad::sub(x, other); });
}
const Tensor& Tensor::mul_(Scalar other) const {
  return in_place("mul_", *this, false, [&](const Tensor& x) { return xgrad::mul(x, other); });
}
const Tensor& Tensor::div_(Scalar other) const {
  return in_place("div_", *this, false, [&](const Tensor& x) { return xgrad::div(x, other); });
}
const Tensor& Tensor::clamp_(double min, double max) const {
  return in_place("clamp_", *this, false, [&](const Tensor& x) { return xgrad::clamp(x, min, max); });
}
const Tensor& Tensor::masked_fill_(const Tensor& mask, Scalar value) const {
  return in_place("masked_fill_", *this, false,
                  [&](const Tensor& x) { return xgrad::masked_fill(x, mask, value); });
}
const Tensor& Tensor::fill_(Scalar value) const { return fill_in_place("fill_", *this, value); }
const Tensor& Tensor::zero_() const { return fill_in_place("zero_", *this, 0); }
const Tensor& Tensor::copy_(const Tensor& source) const {
  // The source converted to this dtype and broadcast to this shape; the old values are gone, so
  // their gradient is 0 (the result does not depend on them).
  return in_place("copy_", *this, source.requires_grad(), [&](const Tensor& x) {
    return xgrad::where(full(x.shape(), 1, {.dtype = kBool}), xgrad::cast(source, x.dtype()), x);
  });
}

// ---- compound assignment: in place -------------------------------------------------------------

Tensor& operator+=(Tensor& a, const Tensor& b) { return const_cast<Tensor&>(a.add_(b)); }
Tensor& operator-=(Tensor& a, const Tensor& b) { return const_cast<Tensor&>(a.sub_(b)); }
Tensor& operator*=(Tensor& a, const Tensor& b) { return const_cast<Tensor&>(a.mul_(b)); }
Tensor& operator/=(Tensor& a, const Tensor& b) { return const_cast<Tensor&>(a.div_(b)); }
Tensor& operator+=(Tensor& a, Scalar b) { return const_cast<Tensor&>(a.add_(b)); }
Tensor& operator-=(Tensor& a, Scalar b) { return const_cast<Tensor&>(a.sub_(b)); }
Tensor& operator*=(Tensor& a, Scalar b) { return const_cast<Tensor&>(a.mul_(b)); }
Tensor& operator/=(Tensor& a, Scalar b) { return const_cast<Tensor&>(a.div_(b)); }

}  // namespace xgrad
