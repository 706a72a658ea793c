#include "autograd/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <xtensor/xio.hpp>

#include "autograd/detail/blocked.hpp"
#include "autograd/detail/view.hpp"
#include "autograd/engine.hpp"
#include "autograd/node.hpp"

namespace xgrad {

std::string number_str(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string shape_str(std::span<const std::size_t> shape) {
  std::string out(1, '[');  // not "[" + ...: g++ 12 warns on it, wrongly (-Wrestrict)
  out += join(shape, ", ");
  out += ']';
  return out;
}

std::string index_str(std::size_t flat, std::span<const std::size_t> shape) {
  std::vector<std::size_t> index(shape.size(), 0);
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return shape_str(index);
}

std::string Generator::state() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 engine;
  in >> engine;
  if (in.fail()) throw ValueError("Generator: not the state of a generator");
  engine_ = engine;
}

std::string_view dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32: return "float32";
    case Dtype::float64: return "float64";
    case Dtype::int64: return "int64";
    case Dtype::int32: return "int32";
    case Dtype::uint8: return "uint8";
    case Dtype::bool_: return "bool";
  }
  return "unknown";
}

namespace {
void check_can_require_grad(const char* op, Dtype dtype) {
  if (!is_floating_point(dtype))
    throw AutogradError(std::string(op) +
                        ": only floating-point tensors (float32, float64) can require gradients, "
                        "this one is " + std::string(dtype_name(dtype)));
}
}  // namespace

namespace {

// The values go straight into their box (one move of the array, no empty variant first).
template <class T>
std::shared_ptr<TensorImpl> make_impl(xt::xarray<T>&& value, bool requires_grad) {
  auto impl = std::make_shared<TensorImpl>();
  auto box = std::make_shared<StorageBox>(std::move(value));
  impl->version = &box->version;
  Values* data = &box->data;
  impl->value = std::shared_ptr<Values>(std::move(box), data);  // one block: values and version
  impl->requires_grad = requires_grad;
  return impl;
}
}  // namespace

template <class T>
Tensor::Tensor(xt::xarray<T> value, bool requires_grad) {
  if (requires_grad) check_can_require_grad("Tensor", dtype_of<T>());
  impl_ = make_impl(std::move(value), requires_grad);
}
template Tensor::Tensor(xt::xarray<float>, bool);
template Tensor::Tensor(xt::xarray<double>, bool);
template Tensor::Tensor(xt::xarray<std::int64_t>, bool);
template Tensor::Tensor(xt::xarray<std::int32_t>, bool);
template Tensor::Tensor(xt::xarray<std::uint8_t>, bool);
template Tensor::Tensor(xt::xarray<bool>, bool);

const TensorImpl& Tensor::checked(const char* what) const {
  if (!impl_)
    throw ValueError(std::string(what) +
                     ": the tensor is undefined (default-constructed, "
                     "or a gradient that backward has not computed)");
  return *impl_;
}

Dtype Tensor::dtype() const {
  const Values& v = *checked("dtype").value;
  if (const auto* s = std::get_if<Storage>(&v))
    return static_cast<Dtype>(s->index());  // Storage lists them in order
  return Dtype::float32;                    // blocked values
}

const Shape& Tensor::shape() const {
  const TensorImpl& impl = checked("shape");
  if (impl.view) return impl.view->shape;
  return detail::values_shape(*impl.value);
}

std::size_t Tensor::numel() const {
  const TensorImpl& impl = checked("numel");
  if (impl.view) {
    std::size_t n = 1;
    for (std::size_t d : impl.view->shape) n *= d;
    return n;
  }
  std::size_t n = 1;
  for (std::size_t d : detail::values_shape(*impl.value)) n *= d;
  return n;
}

std::size_t Tensor::size(std::ptrdiff_t axis) const {
  const Shape& s = shape();
  const auto rank = static_cast<std::ptrdiff_t>(s.size());
  if (axis < -rank || axis >= rank)
    throw IndexError("size: axis " + std::to_string(axis) +
                     " is out of range for a tensor of shape " + shape_str(s));
  return s[static_cast<std::size_t>(axis < 0 ? axis + rank : axis)];
}

template <class T>
const xt::xarray<T>& Tensor::value() const {
  const TensorImpl& impl = checked("value");
  const Storage& v = detail::plain(*impl.value);
  const auto* a = std::get_if<xt::xarray<T>>(&v);
  if (!a)
    throw DtypeError("value: the tensor is " + std::string(dtype_name(dtype())) + ", read as " +
                     std::string(dtype_name(dtype_of<T>())));
  if (!impl.view || detail::is_whole(*impl.view, v)) return *a;
  if (!detail::is_contiguous(impl.view->shape, impl.view->strides))
    throw ValueError("value: this tensor is a strided view (shape " +
                     shape_str(impl.view->shape) + ", strides " +
                     shape_str(impl.view->strides) + ", offset " +
                     std::to_string(impl.view->offset) + ") of a storage of shape " +
                     shape_str(a->shape()) +
                     "; its elements are not one xarray: call contiguous() first, or read "
                     "through data_ptr<T>() and strides()");
  return std::get<xt::xarray<T>>(storage());  // a contiguous view: its elements, as one array
}

template <class T>
xt::xarray<T>& Tensor::mutable_value() const {
  const TensorImpl& impl = checked("mutable_value");
  if (impl.view && !detail::is_whole(*impl.view, detail::plain(*impl.value)))
    throw ValueError("mutable_value: this tensor is a view (shape " + shape_str(impl.view->shape) +
                     ", offset " + std::to_string(impl.view->offset) +
                     ") of another's storage; change the values through its base, or work on "
                     "contiguous()");
  xt::xarray<T>& a = const_cast<xt::xarray<T>&>(value<T>());
  if (impl_->version) impl_->version->fetch_add(1, std::memory_order_relaxed);
  return a;
}

#define XGRAD_VALUE_ACCESS(T)                          \
  template const xt::xarray<T>& Tensor::value<T>() const; \
  template xt::xarray<T>& Tensor::mutable_value<T>() const;
XGRAD_VALUE_ACCESS(float)
XGRAD_VALUE_ACCESS(double)
XGRAD_VALUE_ACCESS(std::int64_t)
XGRAD_VALUE_ACCESS(std::int32_t)
XGRAD_VALUE_ACCESS(std::uint8_t)
XGRAD_VALUE_ACCESS(bool)
#undef XGRAD_VALUE_ACCESS

const Storage& Tensor::storage() const {
  const TensorImpl& impl = checked("storage");
  const Storage& values = detail::plain(*impl.value);
  if (!impl.view || detail::is_whole(*impl.view, values)) return values;
  const ViewInfo& v = *impl.view;
  const std::uint64_t now = impl.version ? impl.version->load(std::memory_order_acquire) : 0;
  const std::lock_guard<std::mutex> lock(v.mutex);
  if (!v.copy || v.copy_version != now) {
    v.copy = std::make_shared<const Storage>(
        detail::copy_layout(values, {v.shape, v.strides, v.offset}));
    v.copy_version = now;
  }
  return *v.copy;
}

IntList Tensor::sizes() const {
  const Shape& s = shape();
  return IntList(std::vector<std::int64_t>(s.begin(), s.end()));
}

IntList Tensor::strides() const {
  const Shape s = detail::layout(*this).strides;
  return IntList(std::vector<std::int64_t>(s.begin(), s.end()));
}

bool Tensor::is_contiguous() const {
  const TensorImpl& impl = checked("is_contiguous");
  return !impl.view || detail::is_contiguous(impl.view->shape, impl.view->strides);
}

bool Tensor::is_view() const { return checked("is_view").view != nullptr; }

Tensor Tensor::base() const {
  const TensorImpl& impl = checked("base");
  return impl.view ? Tensor(impl.view->base) : Tensor();
}


template <class T>
T* Tensor::data_ptr() const {
  const TensorImpl& impl = checked("data_ptr");
  auto* a = std::get_if<xt::xarray<T>>(&detail::plain(*impl.value));
  if (!a)
    throw DtypeError("data_ptr: the tensor is " + std::string(dtype_name(dtype())) +
                     ", read as " + std::string(dtype_name(dtype_of<T>())));
  return a->data() + (impl.view ? impl.view->offset : 0);
}
template float* Tensor::data_ptr<float>() const;
template double* Tensor::data_ptr<double>() const;
template std::int64_t* Tensor::data_ptr<std::int64_t>() const;
template std::int32_t* Tensor::data_ptr<std::int32_t>() const;
template std::uint8_t* Tensor::data_ptr<std::uint8_t>() const;
template bool* Tensor::data_ptr<bool>() const;

std::ostream& operator<<(std::ostream& os, const IntList& list) {
  os << '[';
  for (std::size_t i = 0; i < list.size(); ++i) os << (i ? ", " : "") << list[i];
  return os << ']';
}

double Tensor::item() const {
  if (numel() != 1)
    throw ValueError("item: needs a tensor with one element, got shape " + shape_str(shape()));
  return std::visit([](const auto& a) { return static_cast<double>(a.data()[0]); }, storage());
}

std::int64_t Tensor::item_int64() const {
  if (numel() != 1)
    throw ValueError("item: needs a tensor with one element, got shape " + shape_str(shape()));
  if (is_floating_point(dtype())) return static_cast<std::int64_t>(item());
  return std::visit([](const auto& a) { return static_cast<std::int64_t>(a.data()[0]); },
                    storage());
}

bool Tensor::requires_grad() const {
  if (!impl_) return false;
  sync_history(*impl_);
  return impl_->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& impl = const_cast<TensorImpl&>(checked("requires_grad_"));
  if (grad_fn() && on) return *this;  // an op's output requires grad already
  if (impl.grad_fn && !on)
    throw AutogradError("requires_grad_: this tensor is the output of " +
                        std::string(impl.grad_fn->name()) +
                        "; only leaves can change it (use detach() for a copy cut from the graph)");
  if (on) check_can_require_grad("requires_grad_", impl.value ? dtype() : Dtype::float32);
  impl.requires_grad = on;
  return *this;
}

void Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  TensorImpl& impl = const_cast<TensorImpl&>(checked("register_post_accumulate_grad_hook"));
  if (impl.grad_fn)
    throw AutogradError("register_post_accumulate_grad_hook: this tensor is the output of " +
                        std::string(impl.grad_fn->name()) + "; only leaves accumulate a .grad");
  impl.post_accumulate_grad_hooks.push_back(std::move(hook));
  detail::note_post_accumulate_grad_hook();
}

Tensor& Tensor::detach_() {
  TensorImpl& impl = const_cast<TensorImpl&>(checked("detach_"));
  if (impl.view)
    throw AutogradError(
        "detach_: this tensor is a view of another and cannot leave the graph "
        "alone; use detach() for a view cut from the graph");
  impl.grad_fn = NodeRef();
  impl.requires_grad = false;
  impl.retains_grad = false;
  return *this;
}

void Tensor::retain_grad() const {
  checked("retain_grad");
  if (!requires_grad())
    throw AutogradError(
        "retain_grad: this tensor does not require grad, so no backward computes "
        "its gradient");
  if (!grad_fn()) return;  // a leaf keeps its gradient anyway
  impl_->retains_grad = true;
  impl_->grad_fn->list_hooked_output(impl_);
}

bool Tensor::retains_grad() const { return checked("retains_grad").retains_grad; }

unsigned Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  checked("register_hook");
  if (!requires_grad())
    throw AutogradError(
        "register_hook: this tensor does not require grad, so no backward "
        "computes its gradient");
  if (!hook) throw ValueError("register_hook: the hook is empty");
  static std::atomic<unsigned> next_handle{1};
  const unsigned handle = next_handle.fetch_add(1, std::memory_order_relaxed);
  impl_->hooks.emplace_back(handle, std::move(hook));
  if (grad_fn()) impl_->grad_fn->list_hooked_output(impl_);
  return handle;
}

void Tensor::remove_hook(unsigned handle) const {
  auto& hooks = const_cast<TensorImpl&>(checked("remove_hook")).hooks;
  const auto it =
      std::find_if(hooks.begin(), hooks.end(), [&](const auto& h) { return h.first == handle; });
  if (it == hooks.end())
    throw ValueError("remove_hook: no hook with handle " + std::to_string(handle) +
                     " on this tensor (removed already, or given by another tensor)");
  hooks.erase(it);
}

bool Tensor::is_leaf() const {
  checked("is_leaf");
  return grad_fn() == nullptr;
}
Node* Tensor::grad_fn() const {
  auto& impl = const_cast<TensorImpl&>(checked("grad_fn"));
  sync_history(impl);
  return impl.grad_fn.get();
}
Tensor Tensor::grad() const { return checked("grad").grad; }

void Tensor::set_grad(Tensor grad) const {
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype()))
    throw ShapeError("set_grad: the gradient has shape " + shape_str(grad.shape()) + " and dtype " +
                     std::string(dtype_name(grad.dtype())) + "; the tensor has shape " +
                     shape_str(shape()) + " and dtype " + std::string(dtype_name(dtype())));
  const_cast<TensorImpl&>(checked("set_grad")).grad = std::move(grad);
}

void Tensor::zero_grad() const { const_cast<TensorImpl&>(checked("zero_grad")).grad = Tensor(); }

void Tensor::set_data(const Tensor& source) const {
  TensorImpl& impl = const_cast<TensorImpl&>(checked("set_data"));
  if (impl.grad_fn)
    throw AutogradError("set_data: this tensor is the output of " +
                        std::string(impl.grad_fn->name()) + "; only a leaf's values can be replaced");
  if (impl.view)
    throw AutogradError("set_data: this tensor is a view of another; replace its base's values");
  Storage copy = source.storage();  // first: source may be this tensor
  *impl.value = std::move(copy);
  if (impl.version) impl.version->fetch_add(1, std::memory_order_relaxed);
  impl.grad = Tensor();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->value = checked("detach").value;
  impl->version = impl_->version;  // the same values: the same version
  impl->view = impl_->view;        // and the same place in them
  if (impl->view) impl->history = TensorImpl::kDetached;  // but not its base's history
  return Tensor(std::move(impl));
}

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) const {
  xgrad::backward({*this}, {gradient}, retain_graph, create_graph);
}

// ---- creation ---------------------------------------------------------------------------------

namespace {
// manual_seed's seed, and how many times it was called: each thread's default generator
// restarts from the seed when it sees a count it has not seen.
std::mutex seed_mutex;
std::uint64_t global_seed = 0;
std::atomic<std::uint64_t> seedings{0};
}  // namespace

Generator& default_generator() {
  thread_local Generator gen;
  thread_local std::uint64_t seen = 0;
  if (seedings.load(std::memory_order_acquire) != seen) {  // rare: after a manual_seed
    const std::lock_guard<std::mutex> lock(seed_mutex);
    seen = seedings.load(std::memory_order_relaxed);
    gen.manual_seed(global_seed);
  }
  return gen;
}

void manual_seed(std::uint64_t seed) {
  const std::lock_guard<std::mutex> lock(seed_mutex);
  global_seed = seed;
  seedings.fetch_add(1, std::memory_order_release);
}

namespace {

// The largest tensor a creation function makes: 2^48 elements (1 PiB of float32), far beyond any
// machine, but far below where a product of sizes wraps around.
constexpr std::size_t kMaxElements = std::size_t{1} << 48;

// The number of elements of `shape`; ValueError for a shape too large for any tensor.
std::size_t element_count(const char* op, const Shape& shape) {
  std::size_t count = 1;
  for (std::size_t d : shape) {
    if (d != 0 && count > kMaxElements / d)
      throw ValueError(std::string(op) + ": shape " + shape_str(shape) +
                       " has more elements than any tensor can hold (at most 2^48)");
    count *= d;
  }
  return count;
}

// A tensor of `shape` and options.dtype whose array `set(a)` fills, for the C++ type of that
// dtype: the size checked first, requires_grad only for a floating dtype.
template <class Set>
Tensor make_filled(const char* op, const Shape& shape, TensorOptions options, Set&& set) {
  element_count(op, shape);  // refuses shapes too large to hold
  if (options.requires_grad) check_can_require_grad(op, options.dtype);
  auto make = [&](auto zero) {
    auto a = xt::xarray<decltype(zero)>::from_shape(shape);
    set(a);
    return Tensor(std::move(a), options.requires_grad);
  };
  switch (options.dtype) {
    case Dtype::float32: return make(float{});
    case Dtype::float64: return make(double{});
    case Dtype::int64: return make(std::int64_t{});
    case Dtype::int32: return make(std::int32_t{});
    case Dtype::uint8: return make(std::uint8_t{});
    case Dtype::bool_: return make(bool{});
  }
  throw DtypeError(std::string(op) + ": unknown dtype");
}

// Builds a tensor of `shape` whose elements are fill(i) for i = 0, 1, ... in row-major order.
template <class F>
Tensor generate(const char* op, const Shape& shape, TensorOptions options, F&& fill) {
  return make_filled(op, shape, options, [&](auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<T>(fill(i));
  });
}

void check_floating(const char* op, Dtype dtype) {
  if (!is_floating_point(dtype))
    throw DtypeError(std::string(op) + ": makes floating-point tensors (float32, float64), not " +
                     std::string(dtype_name(dtype)));
}

template <class List>
Tensor from_list(List values, TensorOptions options) {
  const xt::xarray<double> a = values;
  return generate("tensor", a.shape(), options, [&](std::size_t i) { return a.data()[i]; });
}

}  // namespace

namespace {
template <class S>
Tensor from_values(const char* op, const S* data, std::size_t given, const Shape& shape,
                   TensorOptions options) {
  const std::size_t count = element_count(op, shape);
  if (given != count)
    throw ValueError(std::string(op) + ": " + std::to_string(given) + " values for shape " +
                     shape_str(shape) + ", which holds " + std::to_string(count));
  if (count > 0 && data == nullptr)
    throw ValueError(std::string(op) + ": a null pointer for shape " + shape_str(shape));
  return generate(op, shape, options, [data](std::size_t i) { return data[i]; });
}
}  // namespace

Tensor from_vector(const std::vector<float>& values, const Shape& shape, TensorOptions options) {
  return from_values("from_vector", values.data(), values.size(), shape, options);
}
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions options) {
  return from_values("from_vector", values.data(), values.size(), shape, options);
}
Tensor from_blob(const float* data, const Shape& shape, TensorOptions options) {
  return from_values("from_blob", data, element_count("from_blob", shape), shape, options);
}
Tensor from_blob(const double* data, const Shape& shape, TensorOptions options) {
  return from_values("from_blob", data, element_count("from_blob", shape), shape, options);
}
Tensor from_vector(const std::vector<std::int64_t>& values, const Shape& shape,
                   TensorOptions options) {
  return from_values("from_vector", values.data(), values.size(), shape, options);
}
Tensor from_blob(const std::int64_t* data, const Shape& shape, TensorOptions options) {
  return from_values("from_blob", data, element_count("from_blob", shape), shape, options);
}

Tensor tensor(xt::nested_initializer_list_t<double, 1> v, TensorOptions o) {
  return from_list(v, o);
}
Tensor tensor(xt::nested_initializer_list_t<double, 2> v, TensorOptions o) {
  return from_list(v, o);
}
Tensor tensor(xt::nested_initializer_list_t<double, 3> v, TensorOptions o) {
  return from_list(v, o);
}
Tensor tensor(xt::nested_initializer_list_t<double, 4> v, TensorOptions o) {
  return from_list(v, o);
}

Tensor scalar(double value, TensorOptions options) { return full({}, value, options); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  return make_filled("full", shape, options, [&](auto& a) {  // one pass, vectorized
    std::fill(a.data(), a.data() + a.size(),
              static_cast<typename std::decay_t<decltype(a)>::value_type>(value));
  });
}
Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, {.dtype = t.dtype()});
}
Tensor zeros_like(const Tensor& t) { return full_like(t, 0.0); }
Tensor ones_like(const Tensor& t) { return full_like(t, 1.0); }

Tensor randn(const Shape& shape, TensorOptions options, Generator& gen) {
  check_floating("randn", options.dtype);
  std::normal_distribution<double> dist(0.0, 1.0);
  return generate("randn", shape, options, [&](std::size_t) { return dist(gen.engine()); });
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator& gen) {
  if (!(low <= high))
    throw ValueError("uniform: needs low <= high, got low=" + std::to_string(low) +
                     " high=" + std::to_string(high));
  check_floating("uniform", options.dtype);
  std::uniform_real_distribution<double> dist(low, high);
  return generate("uniform", shape, options, [&](std::size_t) { return dist(gen.engine()); });
}

Tensor rand(const Shape& shape, TensorOptions options, Generator& gen) {
  return uniform(shape, 0.0, 1.0, options, gen);
}

Tensor arange(double start, double stop, double step, TensorOptions options) {
  if (step == 0.0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    throw ValueError(
        "arange: needs finite start, stop and a non-zero step, got start=" + std::to_string(start) +
        " stop=" + std::to_string(stop) + " step=" + std::to_string(step));
  const double count = std::ceil((stop - start) / step);
  if (!(count <= static_cast<double>(kMaxElements)))
    throw ValueError("arange: from " + std::to_string(start) + " to " + std::to_string(stop) +
                     " by " + std::to_string(step) + " is more elements than a tensor can hold");
  const auto n = static_cast<std::size_t>(std::max(0.0, count));
  return generate("arange", {n}, options,
                  [&](std::size_t i) { return start + static_cast<double>(i) * step; });
}

}  // namespace xgrad
