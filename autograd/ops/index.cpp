// LibTorch's indexing, composed from the view ops and index_select: x.index({Slice(1, None), 0,
// Ellipsis, None, idx}). Integers select (the axis goes), slices slice, None unsqueezes,
// Ellipsis stands for the axes the other entries leave; a tensor index (int64 positions, or a
// bool mask over as many axes as it has, read through nonzero) is an index_select along the
// axis (the mask's axes flattened into one first), its positions' shape in place of the axis.
// Gradients come from those ops. index_put_ writes through the same: x.index(...).copy_(v).
#include <algorithm>

#include "autograd/detail/kernels.hpp"
#include "autograd/indexing.hpp"

namespace xgrad {
namespace {
using indexing::EllipsisIndex;
using indexing::NoneIndex;
using indexing::Slice;
using indexing::TensorIndex;

// How many axes of x an entry uses.
std::size_t axes_used(const TensorIndex& index) {
  if (std::holds_alternative<NoneIndex>(index.value()) ||
      std::holds_alternative<EllipsisIndex>(index.value()))
    return 0;
  if (const Tensor* t = std::get_if<Tensor>(&index.value()))
    return t->dtype() == kBool ? std::max<std::size_t>(t->dim(), 1) : 1;
  return 1;
}

std::ptrdiff_t signed_axis(std::size_t axis) { return static_cast<std::ptrdiff_t>(axis); }

// x indexed along `axis` by a tensor: int64 positions (any shape), or a bool mask over the axes
// axis .. axis + mask.dim() - 1. The result has the positions' shape in place of those axes.
Tensor take(const Tensor& x, std::size_t axis, const Tensor& index) {
  if (index.dtype() == kBool) {
    const std::size_t k = std::max<std::size_t>(index.dim(), 1);
    for (std::size_t d = 0; d < index.dim(); ++d)
      if (index.size(signed_axis(d)) != x.size(signed_axis(axis + d)))
        throw IndexError("index: a mask of shape " + shape_str(index.shape()) +
                         " for axes of shape " + shape_str(x.shape()) + " from axis " +
                         std::to_string(axis));
    std::vector<std::ptrdiff_t> merged = detail::spec(x.shape());
    std::ptrdiff_t length = 1;
    for (std::size_t d = 0; d < k; ++d) length *= merged[axis + d];
    merged.erase(merged.begin() + signed_axis(axis), merged.begin() + signed_axis(axis + k));
    merged.insert(merged.begin() + signed_axis(axis), length);
    const Tensor flat = reshape(index, {-1});
    const Tensor positions = reshape(nonzero(flat), {-1});
    return index_select(reshape(x, merged), signed_axis(axis), positions);
  }
  if (index.dtype() != kInt64)
    throw DtypeError("index: a tensor index must be int64 positions or a bool mask, got " +
                     std::string(dtype_name(index.dtype())));
  const Tensor picked = index_select(x, signed_axis(axis), reshape(index, {-1}));
  std::vector<std::ptrdiff_t> shape = detail::spec(x.shape());
  shape.erase(shape.begin() + signed_axis(axis));
  const std::vector<std::ptrdiff_t> inner = detail::spec(index.shape());
  shape.insert(shape.begin() + signed_axis(axis), inner.begin(), inner.end());
  return reshape(picked, shape);
}
}  // namespace

Tensor index(const Tensor& x, const std::vector<TensorIndex>& indices) {
  std::size_t used = 0, ellipses = 0, tensors = 0;
  for (const TensorIndex& i : indices) {
    used += axes_used(i);
    ellipses += std::holds_alternative<EllipsisIndex>(i.value()) ? 1 : 0;
    tensors += std::holds_alternative<Tensor>(i.value()) ? 1 : 0;
  }
  if (ellipses > 1) throw IndexError("index: an index can only have a single Ellipsis");
  if (tensors > 1)
    throw IndexError("index: more than one tensor index in one call is not supported; index "
                     "one axis at a time");
  if (used > x.dim())
    throw IndexError("index: too many indices for a tensor of shape " + shape_str(x.shape()) +
                     ": " + std::to_string(used) + " axes indexed");
  Tensor out = x;
  std::size_t axis = 0;
  for (const TensorIndex& i : indices) {
    const auto& v = i.value();
    if (const auto* n = std::get_if<std::int64_t>(&v)) {
      out = select(out, signed_axis(axis), static_cast<std::ptrdiff_t>(*n));
    } else if (const auto* s = std::get_if<Slice>(&v)) {
      const auto length = static_cast<std::ptrdiff_t>(out.size(signed_axis(axis)));
      out = slice(out, signed_axis(axis), s->start ? static_cast<std::ptrdiff_t>(*s->start) : 0,
                  s->stop ? static_cast<std::ptrdiff_t>(*s->stop) : length,
                  static_cast<std::ptrdiff_t>(s->step));
      ++axis;
    } else if (std::holds_alternative<NoneIndex>(v)) {
      out = unsqueeze(out, signed_axis(axis));
      ++axis;
    } else if (std::holds_alternative<EllipsisIndex>(v)) {
      axis += x.dim() - used;
    } else {
      const Tensor& t = std::get<Tensor>(v);
      out = take(out, axis, t);
      axis += t.dtype() == kBool ? 1 : t.dim();
    }
  }
  return out;
}

const Tensor& index_put_(const Tensor& x, const std::vector<TensorIndex>& indices,
                         const Tensor& value) {
  bool by_tensor = false;
  for (const TensorIndex& i : indices) by_tensor |= std::holds_alternative<Tensor>(i.value());
  if (!by_tensor) {
    index(x, indices).copy_(value);  // a view of x: written through
    return x;
  }
  // A tensor index gives a copy, not a view: write each selected position through its own view,
  // the value broadcast to x.index(indices) as PyTorch's, its slice k to position k. The
  // Ellipsis becomes whole slices first, so that the axis the tensor indexes is known.
  std::size_t used = 0;
  for (const TensorIndex& i : indices) used += axes_used(i);
  std::vector<TensorIndex> before;
  auto it = indices.begin();
  for (; !std::holds_alternative<Tensor>(it->value()); ++it) {
    if (std::holds_alternative<EllipsisIndex>(it->value()))
      before.insert(before.end(), x.dim() - used, Slice());
    else
      before.push_back(*it);
  }
  const Tensor& t = std::get<Tensor>(it->value());
  if (t.dim() != 1)
    throw IndexError("index_put_: a tensor index must be 1-D here, got shape " +
                     shape_str(t.shape()));
  const std::vector<TensorIndex> after(it + 1, indices.end());
  const Tensor part = index(x, before);
  std::size_t consumed = 0;  // x's axes the entries before the tensor index took
  for (const TensorIndex& i : before) consumed += axes_used(i);
  const std::size_t axis = part.dim() - (x.dim() - consumed);
  const Tensor target = broadcast_to(value, index(x, indices).shape());
  const Tensor positions = (t.dtype() == kBool ? reshape(nonzero(t), {-1}) : t).contiguous();
  const auto& p = detail::indices("index_put_", positions);
  for (std::size_t k = 0; k < p.size(); ++k)
    index(select(part, signed_axis(axis), static_cast<std::ptrdiff_t>(p(k))), after)
        .copy_(select(target, signed_axis(axis), static_cast<std::ptrdiff_t>(k)));
  return x;
}

const Tensor& index_put_(const Tensor& x, const std::vector<TensorIndex>& indices, Scalar value) {
  return index_put_(x, indices, scalar(value, {.dtype = x.dtype()}));
}

Tensor Tensor::index(const std::vector<indexing::TensorIndex>& indices) const {
  return xgrad::index(*this, indices);
}
const Tensor& Tensor::index_put_(const std::vector<indexing::TensorIndex>& indices,
                                 const Tensor& value) const {
  return xgrad::index_put_(*this, indices, value);
}
const Tensor& Tensor::index_put_(const std::vector<indexing::TensorIndex>& indices,
                                 Scalar value) const {
  return xgrad::index_put_(*this, indices, value);
}

}  // namespace xgrad
