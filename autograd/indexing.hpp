#pragma once
/// \file
/// LibTorch's indexing: x.index({Slice(1, None), 0, Ellipsis, None, mask, idx}) and
/// x.index_put_({...}, v), with xgrad::indexing::Slice, None and Ellipsis.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <variant>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::indexing {

struct NoneIndex {};
struct EllipsisIndex {};
inline constexpr NoneIndex None{};          ///< a new axis of length 1 (or an open end of a Slice)
inline constexpr EllipsisIndex Ellipsis{};  ///< as many whole axes as the other entries leave

/// One end of a Slice: an integer (negative counts from the end), or None for the open end.
struct SliceBound {
  SliceBound(std::int64_t v) : value(v) {}  // NOLINT: implicit
  SliceBound(int v) : value(v) {}           // NOLINT
  SliceBound(NoneIndex) {}                  // NOLINT
  std::optional<std::int64_t> value;
};

/// start:stop:step along one axis, as Python's and LibTorch's: Slice(1, None), Slice(None, 3),
/// Slice(None, None, 2); Slice() is the whole axis. Ends are clamped to the axis.
struct Slice {
  Slice(SliceBound start = NoneIndex{}, SliceBound stop = NoneIndex{}, std::int64_t step = 1)
      : start(start.value), stop(stop.value), step(step) {}
  std::optional<std::int64_t> start, stop;
  std::int64_t step = 1;
};

/// One entry of an index: an integer (the axis goes), a Slice, None (a new axis), Ellipsis, or
/// a tensor: int64 positions along the axis, or a bool mask over as many axes as it has.
class TensorIndex {
 public:
  TensorIndex(std::int64_t i) : value_(i) {}  // NOLINT: implicit, as LibTorch's
  TensorIndex(int i) : value_(std::int64_t{i}) {}  // NOLINT
  TensorIndex(Slice s) : value_(s) {}  // NOLINT
  TensorIndex(NoneIndex) : value_(NoneIndex{}) {}  // NOLINT
  TensorIndex(EllipsisIndex) : value_(EllipsisIndex{}) {}  // NOLINT
  TensorIndex(Tensor t) : value_(std::move(t)) {}  // NOLINT
  const auto& value() const { return value_; }

 private:
  std::variant<std::int64_t, Slice, NoneIndex, EllipsisIndex, Tensor> value_;
};

}  // namespace xgrad::indexing

namespace xgrad {
/// x.index({...}) as a function. Integers, slices, None and Ellipsis give views; tensor entries
/// (int64 positions, negative from the end; bool masks) broadcast together and give a copy, their
/// shape in place of the axes they index when those are adjacent, else first (as NumPy's and
/// PyTorch's). Every path is differentiable. IndexError for too many entries, a position out of
/// range, a mask of the wrong shape, or two Ellipsis.
Tensor index(const Tensor& x, const std::vector<indexing::TensorIndex>& indices);
/// Writes value (broadcast to x.index(indices)'s shape) at x.index(indices), in place
/// (Tensor::copy_'s rules, recorded as it is). With tensor entries, the value's elements go
/// straight to the storage positions that x.index(indices) reads (a position given twice takes
/// one of its values), recorded as one node; a bool mask alone with one value is masked_fill_.
const Tensor& index_put_(const Tensor& x, const std::vector<indexing::TensorIndex>& indices,
                         const Tensor& value);
const Tensor& index_put_(const Tensor& x, const std::vector<indexing::TensorIndex>& indices,
                         Scalar value);
}  // namespace xgrad
