#pragma once
// float32 activations in oneDNN's channel-blocked layout (BlockedArray, autograd/tensor.hpp):
// made by conv2d, passed on by batch norm and max pooling, read by the next convolution without a
// reorder. Every other reader gets plain values: detail::plain (autograd/node.hpp) turns the
// storage into a plain array in place, once, for every tensor that shares it (a node's saved copy
// included); the values, and so the version, do not change.

#include "autograd/node.hpp"

namespace xgrad::detail {

/// x's values when they are blocked (x not a view), else null.
const BlockedArray* blocked(const Tensor& x);
/// A tensor over blocked values (not requiring grad).
Tensor make_blocked(BlockedArray values);
/// Zeroed blocked values of shape (N, C, H, W).
BlockedArray blocked_zeros(const Shape& shape, std::size_t block);
/// Blocked values uninitialized but for the padding channels (zero).
BlockedArray blocked_empty(const Shape& shape, std::size_t block);
/// x's values in the blocked layout of `block`: a copy of x's own when already so, else
/// reordered (float32 (N, C, H, W) only: DtypeError, Error otherwise).
BlockedArray to_blocked(const Tensor& x, std::size_t block);
/// The plain (N, C, H, W) array of blocked values.
xt::xarray<float> to_plain(const BlockedArray& b);

}  // namespace xgrad::detail
