// LibTorch's indexing, composed from the view ops and index_select: x.index({Slice(1, None), 0,
// Ellipsis, None, idx, mask}). The basic entries give a view: integers select (the axis goes),
// slices slice, None unsqueezes, Ellipsis stands for the axes the other entries leave. The
// tensor entries (int64 positions, negative ones counting from the end; a bool mask over as
// many axes as it has, read through nonzero as one position tensor per axis) then pick elements
// as NumPy's and PyTorch's advanced indexing: their positions broadcast to one shape S, the
// indexed axes are merged into one and index_select'ed at the flat positions, and S takes the
// place of the indexed axes when they are adjacent, else comes first. Gradients come from those
// ops. index_put_ writes through views: x.index(...).copy_(v) without a tensor entry, else the
// value's elements straight at the storage positions x.index(...) reads (a bool mask alone
// with a value of one element: masked_fill_), recorded as one copy_slices node. In a dual level the
// same write is made on a copy of x's tangent with the values' tangent, then given to x in place.
#include <algorithm>
#include <array>

#include "autograd/detail/kernels.hpp"
#include "autograd/detail/view.hpp"
#include "autograd/forward_ad.hpp"
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
    return t->dtype() == kBool ? t->dim() : 1;
  return 1;
}

std::ptrdiff_t signed_axis(std::size_t axis) { return static_cast<std::ptrdiff_t>(axis); }

// A tensor entry once the basic entries are applied: int64 positions along one axis of the view.
struct Advanced {
  std::size_t axis;
  Tensor positions;
};

// The view the basic entries give, and the tensor entries as positions along its axes.
struct Parsed {
  Tensor view;
  std::vector<Advanced> advanced;
};

Parsed parse(const char* op, const Tensor& x, const std::vector<TensorIndex>& indices) {
  std::size_t used = 0, ellipses = 0;
  for (const TensorIndex& i : indices) {
    used += axes_used(i);
    ellipses += std::holds_alternative<EllipsisIndex>(i.value()) ? 1 : 0;
  }
  if (ellipses > 1)
    throw IndexError(std::string(op) + ": an index can only have a single Ellipsis");
  if (used > x.dim())
    throw IndexError(std::string(op) + ": too many indices for a tensor of shape " +
                     shape_str(x.shape()) + ": " + std::to_string(used) + " axes indexed");
  Parsed p{x, {}};
  Tensor& out = p.view;
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
      Tensor t = std::get<Tensor>(v);
      if (t.dtype() == kInt64) {
        p.advanced.push_back({axis++, t});
        continue;
      }
      if (t.dtype() != kBool)
        throw DtypeError(std::string(op) +
                         ": a tensor index must be int64 positions or a bool mask, got " +
                         std::string(dtype_name(t.dtype())));
      if (t.dim() == 0) {  // x[true]: a new axis of length 1, kept or emptied
        out = unsqueeze(out, signed_axis(axis));
        t = reshape(t, {1});
      }
      for (std::size_t d = 0; d < t.dim(); ++d)
        if (t.size(signed_axis(d)) != out.size(signed_axis(axis + d)))
          throw IndexError(std::string(op) + ": a mask of shape " + shape_str(t.shape()) +
                           " for the axes from " + std::to_string(axis) + " of shape " +
                           shape_str(out.shape()) + " (the mask's shape must be theirs)");
      const Tensor where_true = nonzero(t);  // (count, mask axes)
      for (std::size_t d = 0; d < t.dim(); ++d)
        p.advanced.push_back({axis + d, select(where_true, 1, signed_axis(d))});
      axis += t.dim();
    }
  }
  return p;
}

// How the tensor entries pick: their broadcast shape S, whether their axes are adjacent (then S
// stands where they were, else first), and the flat positions into those axes merged (shape S).
struct Picking {
  Shape shape;
  bool adjacent = true;
  Tensor flat;
  std::vector<std::int64_t> offsets;  // of each position's first element from the view's first
};

Picking picking(const char* op, const Tensor& view, const std::vector<Advanced>& advanced) {
  Picking p;
  p.shape = advanced[0].positions.shape();
  for (std::size_t j = 1; j < advanced.size(); ++j) {
    p.shape = detail::broadcast_shapes(op, p.shape, advanced[j].positions.shape());
    p.adjacent &= advanced[j].axis == advanced[j - 1].axis + 1;
  }
  xt::xarray<std::int64_t> flat = xt::zeros<std::int64_t>(p.shape);
  p.offsets.assign(flat.size(), 0);
  const detail::Layout layout = detail::layout(view);
  for (const Advanced& a : advanced) {
    const auto length = static_cast<std::int64_t>(view.size(signed_axis(a.axis)));
    const auto stride = static_cast<std::int64_t>(layout.strides[a.axis]);
    const Tensor positions = broadcast_to(a.positions, p.shape).contiguous();
    const auto& values = positions.value<std::int64_t>();
    for (std::size_t k = 0; k < flat.size(); ++k) {
      std::int64_t i = values.data()[k];
      if (i < -length || i >= length)
        throw IndexError(std::string(op) + ": index " + std::to_string(i) +
                         " is out of bounds for axis " + std::to_string(a.axis) + " of size " +
                         std::to_string(length) + " (expected -" + std::to_string(length) +
                         " <= index < " + std::to_string(length) + ")");
      if (i < 0) i += length;
      flat.data()[k] = flat.data()[k] * length + i;
      p.offsets[k] += i * stride;
    }
  }
  p.flat = Tensor(std::move(flat));
  return p;
}

// `shape` with the axes [first, first + count) replaced by `inner`.
Shape replace_axes(const Shape& shape, std::size_t first, std::size_t count, const Shape& inner) {
  Shape out(shape.begin(), shape.begin() + signed_axis(first));
  out.insert(out.end(), inner.begin(), inner.end());
  out.insert(out.end(), shape.begin() + signed_axis(first + count), shape.end());
  return out;
}

// The view with the indexed axes first (in their order), unless they are adjacent.
Tensor indexed_axes_first(const Tensor& view, const std::vector<Advanced>& advanced) {
  Axes order;
  for (const Advanced& a : advanced) order.push_back(signed_axis(a.axis));
  for (std::size_t d = 0; d < view.dim(); ++d)
    if (std::none_of(advanced.begin(), advanced.end(),
                     [&](const Advanced& a) { return a.axis == d; }))
      order.push_back(signed_axis(d));
  return permute(view, order);
}
}  // namespace

Tensor index(const Tensor& x, const std::vector<TensorIndex>& indices) {
  const Parsed parsed = parse("index", x, indices);
  if (parsed.advanced.empty()) return parsed.view;
  const Picking p = picking("index", parsed.view, parsed.advanced);
  const std::size_t k = parsed.advanced.size();
  const Tensor source = p.adjacent ? parsed.view : indexed_axes_first(parsed.view, parsed.advanced);
  const std::size_t first = p.adjacent ? parsed.advanced[0].axis : 0;
  std::size_t length = 1;  // of the indexed axes merged
  for (const Advanced& a : parsed.advanced) length *= parsed.view.size(signed_axis(a.axis));
  const Tensor merged =
      reshape(source, detail::spec(replace_axes(source.shape(), first, k, {length})));
  const Tensor picked = index_select(merged, signed_axis(first), reshape(p.flat, {-1}));
  return reshape(picked, detail::spec(replace_axes(source.shape(), first, k, p.shape)));
}

const Tensor& index_put_(const Tensor& x, const std::vector<TensorIndex>& indices,
                         const Tensor& value) {
  if (const std::array<const Tensor*, 2> both{&x, &value}; detail::has_tangent(both)) {
    // Forward mode: x's tangent gets the values' tangent at the same positions, by this same
    // write on a copy of it (zeros for a missing one); then the values, tangents set aside.
    Tensor tangent;
    {
      const detail::ForwardSuspend plain;
      const NoGradGuard values;
      const Tensor tx = forward_ad::unpack_dual(x).tangent;
      const Tensor tv = forward_ad::unpack_dual(value).tangent;
      tangent = tx.defined() ? clone(tx) : zeros_like(x);
      index_put_(tangent, indices, tv.defined() ? tv : zeros_like(value));
    }
    {
      const detail::ForwardSuspend plain;
      index_put_(x, indices, value);
    }
    detail::assign_tangent(x, tangent);
    return x;
  }
  const Parsed parsed = parse("index_put_", x, indices);
  if (parsed.advanced.empty()) {
    parsed.view.copy_(value);  // a view of x: written through
    return x;
  }
  // A bool mask over x's leading axes, one value: masked_fill_, in one pass.
  if (indices.size() == 1 && value.numel() == 1 && !value.requires_grad()) {
    const Tensor& mask = std::get<Tensor>(indices[0].value());
    if (mask.dtype() == kBool && mask.dim() > 0) {
      std::vector<std::ptrdiff_t> shape = detail::spec(mask.shape());
      shape.resize(x.dim(), 1);
      x.masked_fill_(reshape(mask, shape), is_floating_point(x.dtype())
                                               ? Scalar(value.item())
                                               : Scalar(value.item_int64()));
      return x;
    }
  }
  const bool recorded = detail::check_in_place("index_put_", x, value.requires_grad());
  if (recorded && x.is_view() && x.impl()->history == TensorImpl::kDetached) {
    // A detach()ed view has a history of its own, over its own elements: written as a whole.
    return detail::in_place("index_put_", x, true,
                            [&](const Tensor& copy) { return index_put_(copy, indices, value); });
  }
  // The storage positions of the picked elements, in the order of x.index(indices): the rest
  // axes before the indexed ones (when adjacent), the positions, the rest axes after.
  const Picking p = picking("index_put_", parsed.view, parsed.advanced);
  const std::size_t k = parsed.advanced.size();
  const std::size_t first = p.adjacent ? parsed.advanced[0].axis : 0;
  const detail::Layout layout = detail::layout(parsed.view);
  detail::Layout rest{layout.shape, layout.strides, 0};
  for (std::size_t j = k; j-- > 0;) {
    rest.shape.erase(rest.shape.begin() + signed_axis(parsed.advanced[j].axis));
    rest.strides.erase(rest.strides.begin() + signed_axis(parsed.advanced[j].axis));
  }
  const std::vector<std::int64_t> within = detail::storage_positions(rest);
  std::size_t after = 1;  // elements of the rest axes after the indexed ones
  for (std::size_t d = first; d < rest.shape.size(); ++d) after *= rest.shape[d];
  const std::size_t before = after == 0 ? 0 : within.size() / after;
  std::vector<std::int64_t> positions;
  positions.reserve(before * p.offsets.size() * after);
  for (std::size_t b = 0; b < before; ++b)
    for (const std::int64_t offset : p.offsets)
      for (std::size_t a = 0; a < after; ++a)
        positions.push_back(static_cast<std::int64_t>(layout.offset) + offset +
                            within[b * after + a]);
  const Tensor r = broadcast_to(value.dtype() == x.dtype() ? value : cast(value, x.dtype()),
                                replace_axes(rest.shape, first, 0, p.shape));
  detail::write_positions(x, positions, r);
  if (recorded) detail::record_write(x, std::move(positions), r);
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
