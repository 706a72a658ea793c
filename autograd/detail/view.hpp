#pragma once
// The arithmetic of views, in one place: a tensor's elements lie in its storage at
// offset + sum_i index_i * strides_i (all in elements). Views share their base's storage and
// version counter; autograd/ops/view.cpp builds the view ops on these.

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "autograd/node.hpp"

namespace xgrad::detail {

// Where a tensor's elements are: its view's layout, or its whole storage's (row-major, offset 0).
struct Layout {
  Shape shape, strides;
  std::size_t offset = 0;
};
Layout layout(const Tensor& x);

// Row-major strides of a shape.
Shape contiguous_strides(const Shape& shape);
// Whether (shape, strides) is row-major without gaps (axes of length 1 may have any stride).
bool is_contiguous(const Shape& shape, const Shape& strides);
// One past the last element a layout reaches in its storage (offset when it is empty).
std::size_t extent(const Layout& layout);
// The strides that show a tensor of (shape, strides) as new_shape (same count) over the same
// elements, as PyTorch's view: possible when each group of axes that new_shape merges or splits
// is contiguous within itself. nullopt when a copy is needed.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape);

// A new tensor over x's storage (and version counter) with the given layout, its base the root
// of x. Records nothing: the view ops record their nodes on it.
Tensor make_view(const Tensor& x, Layout layout);
// A view of all of x, recorded (gradients flow back to x): make_dual's and unpack_dual's.
Tensor alias(const Tensor& x);
// Whether a view covers its storage exactly, in its storage's shape: then its values are the
// storage's xarray.
bool is_whole(const ViewInfo& view, const Storage& storage);
// Writes src's elements (dst's shape and dtype) into dst's storage through dst's layout, and
// moves the storage's version on: what an in-place op does.
void write_layout(const Tensor& dst, const Tensor& src);
// Writes src's elements (row-major, dst's dtype) at `positions` of dst's storage, and moves the
// storage's version on: what index_put_ does.
void write_positions(const Tensor& dst, const std::vector<std::int64_t>& positions,
                     const Tensor& src);
// The storage positions of a layout's elements, in row-major order.
std::vector<std::int64_t> storage_positions(const Layout& layout);
// The elements of a layout of `storage`, copied in row-major order into a new array.
Storage copy_layout(const Storage& storage, const Layout& layout);

// ---- in-place writes (defined in autograd/ops/inplace.cpp) ------------------------------------

// x = f(x) in place, f an out-of-place op of x (and of another tensor, which may require grad):
// f's result written through x's layout, x's history rebased onto it when recording.
const Tensor& in_place(const char* op, const Tensor& x, bool other_requires_grad,
                       const std::function<Tensor(const Tensor&)>& f);
// An in-place op's checks on x, before anything is computed (an undefined tensor, an expanded
// view, a leaf that requires grad or a view of one while recording: PyTorch's messages naming
// op); whether the graph is recorded.
bool check_in_place(const char* op, const Tensor& x, bool other_requires_grad);
// Once r's elements are written at `positions` of x's storage while recording: the tensor that
// owns those elements (x, or the base of the view x) takes as its history a copy_slices node of
// its old history and r, and its views remake theirs from it. `positions` index the owner's
// elements: the storage's, or x's own for a detach()ed view.
void record_write(const Tensor& x, std::vector<std::int64_t> positions, const Tensor& r);

}  // namespace xgrad::detail
