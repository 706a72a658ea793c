#pragma once
/// \file
/// Tensor: a value (an xtensor array of float or double, any rank, row-major), the gradient once
/// backward has computed it, and whether gradients flow to it. A Tensor is a shared handle, like
/// torch::Tensor: copies refer to the same data. Ops live in autograd/ops.hpp.

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "autograd/error.hpp"
#include "autograd/xtensor.hpp"

namespace xgrad {

enum class Dtype { float32, float64 };
inline constexpr Dtype kFloat32 = Dtype::float32;
inline constexpr Dtype kFloat64 = Dtype::float64;
std::string_view dtype_name(Dtype dtype);

template <class T>
constexpr Dtype dtype_of();
template <>
constexpr Dtype dtype_of<float>() {
  return Dtype::float32;
}
template <>
constexpr Dtype dtype_of<double>() {
  return Dtype::float64;
}

using Shape = xt::svector<std::size_t, 4>;
static_assert(std::is_same_v<Shape, xt::xarray<float>::shape_type>);
using Storage = std::variant<xt::xarray<float>, xt::xarray<double>>;
/// Axes of a tensor; a negative axis counts from the end.
using Axes = std::vector<std::ptrdiff_t>;
/// Integer indices: class labels, gather positions, argmax results.
using Index = xt::xarray<std::int64_t>;

struct TensorOptions {
  Dtype dtype = Dtype::float32;
  bool requires_grad = false;
};

class Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  ///< undefined: no value (what grad() returns before backward)
  explicit Tensor(xt::xarray<float> value, bool requires_grad = false);
  explicit Tensor(xt::xarray<double> value, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  Dtype dtype() const;
  const Shape& shape() const;
  std::size_t dim() const { return shape().size(); }
  std::size_t numel() const;
  /// Length of one axis; a negative axis counts from the end, as in PyTorch.
  std::size_t size(std::ptrdiff_t axis) const;

  /// The value as an xtensor array; DtypeError when T is not the tensor's dtype.
  template <class T>
  const xt::xarray<T>& value() const;
  /// For in-place updates such as an optimizer step. Not recorded on the tape: change a tensor
  /// only when no graph that saved it will run backward again.
  template <class T>
  xt::xarray<T>& mutable_value() const;
  const Storage& storage() const;

  /// The single element of a one-element tensor (ValueError otherwise).
  double item() const;

  bool requires_grad() const;
  /// Turns gradient tracking on or off for a leaf (AutogradError for an op's output).
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;   ///< not produced by a recorded op
  Node* grad_fn() const;  ///< the tape entry that produced it, or nullptr
  Tensor grad() const;    ///< undefined until a backward reaches this leaf
  /// Gradient setters act on the shared tensor, so they work through a const handle, as in PyTorch.
  void set_grad(Tensor grad) const;
  void zero_grad() const;  ///< drops the gradient (the next backward starts from zero)
  Tensor detach() const;   ///< same data, cut from the graph, requires_grad false

  /// Reverse-mode sweep from this tensor. A one-element tensor is seeded with 1; any other needs
  /// `gradient` of its own shape. Leaf gradients accumulate (+=) across calls until zero_grad().
  /// The graph's saved tensors are released unless retain_graph (default: create_graph).
  /// With create_graph, a leaf's .grad is recorded and its graph may hold the leaf itself: call
  /// zero_grad() when done with it, or prefer grad(), as in PyTorch, or the two stay alive.
  void backward(const Tensor& gradient = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;

  std::string str() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  const TensorImpl& checked(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation ---------------------------------------------------------------------------------

/// Seedable random numbers. Each thread has its own default generator (seed 0 until manual_seed).
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : engine_(seed) {}
  void manual_seed(std::uint64_t seed) { engine_.seed(seed); }
  std::mt19937_64& engine() { return engine_; }
  /// The engine's whole state as text, and back (ValueError for text that is not one): what a
  /// checkpoint keeps so that shuffling and dropout resume exactly.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
};
Generator& default_generator();
void manual_seed(std::uint64_t seed);

Tensor tensor(xt::nested_initializer_list_t<double, 1> values, TensorOptions options = {});
Tensor tensor(xt::nested_initializer_list_t<double, 2> values, TensorOptions options = {});
Tensor tensor(xt::nested_initializer_list_t<double, 3> values, TensorOptions options = {});
Tensor tensor(xt::nested_initializer_list_t<double, 4> values, TensorOptions options = {});
Tensor scalar(double value, TensorOptions options = {});  ///< a rank-0 tensor
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);  ///< same shape and dtype, no grad
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
/// Uniform in [low, high).
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator& gen = default_generator());
/// start, start + step, ... while below stop (above it for a negative step).
Tensor arange(double start, double stop, double step = 1.0, TensorOptions options = {});

}  // namespace xgrad
