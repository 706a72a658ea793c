#pragma once
/// \file
/// Tensor: a storage (an xtensor array of one of six dtypes) seen through sizes, strides and an
/// offset (a view shares another tensor's storage), the gradient once backward has computed it,
/// and whether gradients flow to it. A Tensor is a shared handle, like torch::Tensor: copies
/// refer to the same data. Ops live in autograd/ops.hpp.

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "xgrad/autograd/error.hpp"
#include "xgrad/autograd/xtensor.hpp"

namespace xgrad {

/// Element types. Only the floating ones (float32, float64) can require grad; the integer and
/// boolean ones hold labels, token ids, indices and masks. Promotion, as PyTorch's: an integer or
/// bool with a float gives the float; integers give the wider one (uint8 < int32 < int64); bool
/// arithmetic counts as int64. float32 with float64 is an error naming to() (never a silent
/// widening).
enum class Dtype { float32, float64, int64, int32, uint8, bool_ };
inline constexpr Dtype kFloat32 = Dtype::float32;
inline constexpr Dtype kFloat64 = Dtype::float64;
inline constexpr Dtype kInt64 = Dtype::int64;
inline constexpr Dtype kInt32 = Dtype::int32;
inline constexpr Dtype kUInt8 = Dtype::uint8;
inline constexpr Dtype kBool = Dtype::bool_;
/// "float32", "float64", "int64", "int32", "uint8", "bool".
std::string_view dtype_name(Dtype dtype);
constexpr bool is_floating_point(Dtype dtype) {
  return dtype == Dtype::float32 || dtype == Dtype::float64;
}

template <class T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return Dtype::float32;
  else if constexpr (std::is_same_v<T, double>) return Dtype::float64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::int64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::int32;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::uint8;
  else {
    static_assert(std::is_same_v<T, bool>, "xgrad tensors hold float, double, int64_t, int32_t, "
                                           "uint8_t or bool");
    return Dtype::bool_;
  }
}

using Shape = xt::svector<std::size_t, 4>;
static_assert(std::is_same_v<Shape, xt::xarray<float>::shape_type>);
/// A tensor's values: one xtensor array of one of the six element types (in Dtype's order).
using Storage = std::variant<xt::xarray<float>, xt::xarray<double>, xt::xarray<std::int64_t>,
                             xt::xarray<std::int32_t>, xt::xarray<std::uint8_t>, xt::xarray<bool>>;
/// A tensor's sizes or strides, as LibTorch's IntArrayRef (but owning its numbers): indexed,
/// iterated, compared, and printed as [2, 3] (`std::cout << t.sizes()`).
class IntList {
 public:
  IntList() = default;
  explicit IntList(std::vector<std::int64_t> values) : values_(std::move(values)) {}
  std::size_t size() const { return values_.size(); }
  std::int64_t operator[](std::size_t i) const { return values_.at(i); }
  auto begin() const { return values_.begin(); }
  auto end() const { return values_.end(); }
  const std::vector<std::int64_t>& vec() const { return values_; }
  bool operator==(const IntList&) const = default;

 private:
  std::vector<std::int64_t> values_;
};
std::ostream& operator<<(std::ostream& os, const IntList& list);

/// Axes of a tensor; a negative axis counts from the end.
using Axes = std::vector<std::ptrdiff_t>;

/// A number on one side of an op with a tensor (`x + 1`, `2.5 * x`, `x > 0`): it remembers
/// whether it was written as an integer, so that an integer tensor plus an integer stays an
/// integer tensor and plus a floating number becomes float32, as in PyTorch.
class Scalar {
 public:
  template <class I>
    requires std::is_integral_v<I>
  Scalar(I value) : value_(static_cast<double>(value)), integral_(true) {}  // NOLINT: implicit
  template <class F>
    requires std::is_floating_point_v<F>
  Scalar(F value) : value_(static_cast<double>(value)), integral_(false) {}  // NOLINT: implicit
  double value() const { return value_; }
  bool is_integral() const { return integral_; }
  operator double() const { return value_; }  // NOLINT: where a double is expected

 private:
  double value_;
  bool integral_;
};

struct TensorOptions {
  Dtype dtype = Dtype::float32;
  bool requires_grad = false;
};

class Node;
struct TensorImpl;
namespace indexing {
class TensorIndex;
}

class Tensor {
 public:
  Tensor() = default;  ///< undefined: no value (what grad() returns before backward)
  /// Takes the array's values (float, double, int64_t, int32_t, uint8_t or bool); requires_grad
  /// only for float and double (AutogradError otherwise).
  template <class T>
  explicit Tensor(xt::xarray<T> value, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  Dtype dtype() const;
  const Shape& shape() const;
  IntList sizes() const;  ///< the shape, as LibTorch's sizes(): prints as [2, 3]
  std::size_t dim() const { return shape().size(); }
  std::size_t numel() const;
  /// Length of one axis; a negative axis counts from the end, as in PyTorch.
  std::size_t size(std::ptrdiff_t axis) const;

  /// The value as an xtensor array; DtypeError when T is not the tensor's dtype. A contiguous
  /// view (a reshape, a slice of whole rows) gives its elements as one array, a copy made when
  /// first asked for; a strided view (a transpose, a stepped slice) has none: ValueError naming
  /// contiguous(). Read such a view through data_ptr<T>() and strides(), or contiguous() first.
  template <class T>
  const xt::xarray<T>& value() const;
  /// For in-place updates such as an optimizer step. Not recorded on the tape: change a tensor
  /// only when no graph that saved it will run backward again. Not for a view (ValueError).
  template <class T>
  xt::xarray<T>& mutable_value() const;
  /// The values as one array of any dtype: the storage, or for a view a contiguous copy of its
  /// elements (made when first asked for, and again after the storage changed).
  const Storage& storage() const;

  // ---- storage and views: a tensor is a storage + sizes + strides + an offset ----------------
  /// Strides in elements (row-major for a tensor that is not a view).
  IntList strides() const;
  /// Row-major without gaps (axes of length 1 aside): what kernels read without a copy.
  bool is_contiguous() const;
  /// This tensor when it is contiguous (a contiguous view included: value<T>() gives its
  /// elements), else a contiguous copy (recorded: the gradient flows back to this view).
  Tensor contiguous() const;
  /// A copy with its own storage (recorded, as torch's clone).
  Tensor clone() const;
  /// Whether this tensor shares another's storage (a view op made it); base() is that tensor
  /// (the root: never itself a view), undefined for a tensor that is not a view.
  bool is_view() const;
  Tensor base() const;
  /// The first element in the storage (T the tensor's C++ type, DtypeError otherwise): with
  /// strides(), the element at index i is data_ptr<T>()[sum_k i_k strides_k]. Writes through it
  /// are not seen by the version counter.
  template <class T>
  T* data_ptr() const;

  /// The single element of a one-element tensor (ValueError otherwise), as a double, or
  /// converted to T (`x.item<std::int64_t>()`).
  double item() const;
  template <class T>
  T item() const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(item_int64());  // exact beyond 2^53
    else
      return static_cast<T>(item());
  }
  std::int64_t item_int64() const;  ///< item() of an integer or bool tensor, exactly

  bool requires_grad() const;
  /// Turns gradient tracking on or off for a leaf. An op's output always requires grad:
  /// requires_grad_(true) leaves it so, requires_grad_(false) is an AutogradError naming
  /// detach(), as in PyTorch.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;   ///< not produced by a recorded op
  Node* grad_fn() const;  ///< the tape entry that produced it, or nullptr
  Tensor grad() const;    ///< undefined until a backward reaches this leaf
  /// Gradient setters act on the shared tensor, so they work through a const handle, as in PyTorch.
  void set_grad(Tensor grad) const;
  void zero_grad() const;  ///< drops the gradient (the next backward starts from zero)
  Tensor detach() const;   ///< same data, cut from the graph, requires_grad false
  /// detach() in place: this tensor becomes a leaf that does not require grad (its values stay).
  /// AutogradError for a view (detach() it instead), as in PyTorch.
  Tensor& detach_();
  /// Keeps the gradient of an op's output in its grad() after each backward (added across
  /// backwards, as a leaf's), as PyTorch's retain_grad; nothing to do for a leaf. AutogradError
  /// for a tensor that does not require grad.
  void retain_grad() const;
  bool retains_grad() const;  ///< retain_grad() was called on this op's output

  /// Calls hook(gradient) whenever a backward computes the gradient of this tensor, before it
  /// flows on into the op that made it (or, for a leaf, into grad()). A hook that returns a
  /// defined tensor replaces the gradient (same shape and dtype; AutogradError otherwise), one
  /// that returns void or an undefined tensor only reads it. Hooks run in the order registered,
  /// before retain_grad keeps the gradient. As LibTorch's register_hook; the handle goes to
  /// remove_hook. A leaf's hooks see the sum of what one backward sends it, not each part, and
  /// run in backward(), not in grad(). AutogradError for a tensor that does not require grad.
  unsigned register_hook(std::function<Tensor(const Tensor&)> hook) const;
  template <class F>
  requires std::is_void_v<std::invoke_result_t<F&, const Tensor&>>
  unsigned register_hook(F hook) const {
    return register_hook(
        std::function<Tensor(const Tensor&)>([hook = std::move(hook)](const Tensor& g) mutable {
          hook(g);
          return Tensor();
        }));
  }
  void remove_hook(unsigned handle) const;  ///< ValueError for a handle this tensor did not give
  /// Replaces a leaf's values, shape and dtype included, with a copy of source's, in place: every
  /// handle to this tensor sees the new values (what a module's to(dtype) and load_state_dict
  /// do, as PyTorch's `p.data = ...`). Drops the gradient; keeps requires_grad. Not recorded:
  /// AutogradError for an op's output.
  void set_data(const Tensor& source) const;

  /// Calls hook(this leaf) in every backward() that accumulates into .grad, once its gradient
  /// for that sweep is final: after the last op of the tape that uses the leaf has been passed
  /// (it may have sent nothing, when no path from the outputs goes through it). As PyTorch's
  /// register_post_accumulate_grad_hook: what data-parallel training uses to send each gradient
  /// while the rest of the backward runs. Not called by grad(), nor when no op on the tape below
  /// the outputs uses the leaf. AutogradError for an op's output.
  void register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;

  /// Reverse-mode sweep from this tensor. A one-element tensor is seeded with 1; any other needs
  /// `gradient` of its own shape. Leaf gradients accumulate (+=) across calls until zero_grad().
  /// The graph's saved tensors are released unless retain_graph (default: create_graph).
  /// With create_graph, a leaf's .grad is recorded and its graph may hold the leaf itself: call
  /// zero_grad() when done with it, or prefer grad(), as in PyTorch, or the two stay alive.
  void backward(const Tensor& gradient = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;

  std::string str() const;

  /// Member forms of the common ops, as PyTorch's x.relu(), x.sum(): each is the op of the same
  /// name in autograd/ops.hpp (defined in autograd/tensor_methods.cpp).
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor pow(double exponent) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor sum() const;
  Tensor sum(const Axes& axes, bool keepdims = false) const;
  Tensor mean() const;
  Tensor mean(const Axes& axes, bool keepdims = false) const;
  Tensor max() const;
  Tensor max(const Axes& axes, bool keepdims = false) const;
  Tensor min() const;
  Tensor min(const Axes& axes, bool keepdims = false) const;
  Tensor argmax(std::ptrdiff_t axis) const;  ///< int64
  Tensor argmin(std::ptrdiff_t axis) const;  ///< int64
  Tensor softmax(std::ptrdiff_t axis = -1) const;
  Tensor log_softmax(std::ptrdiff_t axis = -1) const;
  Tensor reshape(const std::vector<std::ptrdiff_t>& shape) const;
  Tensor view(const std::vector<std::ptrdiff_t>& shape) const;     ///< never a copy
  /// Entry i of the first axis, as x[i] in LibTorch: select(x, 0, i), a view (a negative i
  /// counts from the end; IndexError out of range).
  Tensor operator[](std::int64_t i) const;
  Tensor expand(const std::vector<std::ptrdiff_t>& sizes) const;  ///< stride 0, no copy
  Tensor flatten(std::ptrdiff_t start_axis = 0, std::ptrdiff_t end_axis = -1) const;
  Tensor t() const;  ///< the transpose of a 2-D tensor (ShapeError otherwise)
  Tensor transpose(std::ptrdiff_t axis0, std::ptrdiff_t axis1) const;
  Tensor permute(const Axes& axes) const;
  Tensor squeeze() const;
  Tensor unsqueeze(std::ptrdiff_t axis) const;
  Tensor matmul(const Tensor& other) const;
  Tensor clamp(double min, double max) const;
  Tensor to(Dtype dtype) const;  ///< cast: the same tensor when it has that dtype already

  /// In-place ops, as LibTorch's (autograd/ops/inplace.cpp): the out-of-place op's result
  /// written into this tensor's storage, through its layout (views and other handles see it, the
  /// version counter moves on). While gradients are recorded, the tensor's history is rebased
  /// onto the op (through a view, its base's, and every view of it follows). AutogradError for
  /// a leaf that requires grad, or a view of one, outside NoGradGuard; ValueError for an
  /// expanded view; DtypeError or ShapeError when the result would not fit the tensor.
  const Tensor& add_(const Tensor& other) const;
  const Tensor& sub_(const Tensor& other) const;
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& div_(const Tensor& other) const;
  const Tensor& add_(Scalar other) const;
  const Tensor& sub_(Scalar other) const;
  const Tensor& mul_(Scalar other) const;
  const Tensor& div_(Scalar other) const;
  const Tensor& clamp_(double min, double max) const;
  const Tensor& masked_fill_(const Tensor& mask, Scalar value) const;
  const Tensor& fill_(Scalar value) const;
  const Tensor& zero_() const;
  /// source converted to this dtype and broadcast to this shape.
  const Tensor& copy_(const Tensor& source) const;

  /// LibTorch's indexing (autograd/indexing.hpp: Slice, None, Ellipsis, integers, int64 or bool
  /// tensors): x.index({Slice(1, None), 0, Ellipsis, None}); x.index_put_({...}, v).
  Tensor index(const std::vector<indexing::TensorIndex>& indices) const;
  const Tensor& index_put_(const std::vector<indexing::TensorIndex>& indices,
                           const Tensor& value) const;
  const Tensor& index_put_(const std::vector<indexing::TensorIndex>& indices, Scalar value) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  const TensorImpl& checked(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

/// Prints the values and then "[ CPUFloatType{2,3} ]" (the dtype and shape), as LibTorch does: one
/// line per row, one matrix per index of the leading axes, one format per matrix (integers,
/// fixed with a common power of ten, or scientific), columns cut to 80 characters
/// (autograd/print.cpp).
std::ostream& operator<<(std::ostream& os, const Tensor& t);
/// Digits after the point in printed tensors: 4 unless set (for this thread), as LibTorch's.
int print_precision();
void set_print_precision(int digits);  ///< ValueError outside 1..17

// ---- creation ---------------------------------------------------------------------------------

/// Seedable random numbers. Each thread has its own default generator (seed 0 until manual_seed).
/// manual_seed(s), called on any thread, makes every thread's default generator restart from s at
/// its next draw (threads started later too); default_generator().manual_seed(s) seeds the
/// calling thread's alone, until the next manual_seed.
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
/// Seeds every thread's default generator (each restarts from `seed` at its next draw).
void manual_seed(std::uint64_t seed);

/// A tensor of `shape` holding a copy of `values` in row-major order, converted to options.dtype
/// (ValueError when their count is not the shape's): no xtensor code needed.
Tensor from_vector(const std::vector<float>& values, const Shape& shape, TensorOptions options = {});
Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                   TensorOptions options = {});
/// Integer values: an int64 tensor unless options say another dtype (labels, token ids).
Tensor from_vector(const std::vector<std::int64_t>& values, const Shape& shape,
                   TensorOptions options = {.dtype = Dtype::int64});
/// The same from a pointer to product(shape) values, copied (the tensor does not keep `data`).
Tensor from_blob(const float* data, const Shape& shape, TensorOptions options = {});
Tensor from_blob(const double* data, const Shape& shape, TensorOptions options = {});
Tensor from_blob(const std::int64_t* data, const Shape& shape,
                 TensorOptions options = {.dtype = Dtype::int64});

/// From nested braces, as torch::tensor: `tensor({1, 0, 2}, {.dtype = kInt64})`. Values are
/// converted to options.dtype (integers exactly up to 2^53).
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
/// Random tensors are floating-point: DtypeError for another dtype.
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
/// Uniform in [low, high).
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator& gen = default_generator());
/// start, start + step, ... while below stop (above it for a negative step).
Tensor arange(double start, double stop, double step = 1.0, TensorOptions options = {});

}  // namespace xgrad
