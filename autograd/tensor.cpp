#include "autograd/tensor.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <xtensor/xio.hpp>

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

std::string_view dtype_name(Dtype dtype) { return dtype == Dtype::float32 ? "float32" : "float64"; }

namespace {

std::shared_ptr<TensorImpl> make_impl(Storage value, bool requires_grad) {
  auto impl = std::make_shared<TensorImpl>();
  auto box = std::make_shared<StorageBox>();
  box->data = std::move(value);
  impl->version = &box->version;
  Storage* data = &box->data;
  impl->value = std::shared_ptr<Storage>(std::move(box), data);  // one block: values and version
  impl->requires_grad = requires_grad;
  return impl;
}
}  // namespace

Tensor::Tensor(xt::xarray<float> value, bool requires_grad)
    : impl_(make_impl(std::move(value), requires_grad)) {}
Tensor::Tensor(xt::xarray<double> value, bool requires_grad)
    : impl_(make_impl(std::move(value), requires_grad)) {}

const TensorImpl& Tensor::checked(const char* what) const {
  if (!impl_)
    throw ValueError(std::string(what) +
                     ": the tensor is undefined (default-constructed, "
                     "or a gradient that backward has not computed)");
  return *impl_;
}

Dtype Tensor::dtype() const {
  return checked("dtype").value->index() == 0 ? Dtype::float32 : Dtype::float64;
}

const Shape& Tensor::shape() const {
  return std::visit([](const auto& a) -> const Shape& { return a.shape(); },
                    *checked("shape").value);
}

std::size_t Tensor::numel() const {
  return std::visit([](const auto& a) { return a.size(); }, *checked("numel").value);
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
  const Storage& v = *checked("value").value;
  if (const auto* a = std::get_if<xt::xarray<T>>(&v)) return *a;
  throw DtypeError("value: the tensor is " + std::string(dtype_name(dtype())) + ", read as " +
                   std::string(dtype_name(dtype_of<T>())));
}

template <class T>
xt::xarray<T>& Tensor::mutable_value() const {
  xt::xarray<T>& a = const_cast<xt::xarray<T>&>(value<T>());
  if (impl_->version) impl_->version->fetch_add(1, std::memory_order_relaxed);
  return a;
}

template const xt::xarray<float>& Tensor::value<float>() const;
template const xt::xarray<double>& Tensor::value<double>() const;
template xt::xarray<float>& Tensor::mutable_value<float>() const;
template xt::xarray<double>& Tensor::mutable_value<double>() const;

const Storage& Tensor::storage() const { return *checked("storage").value; }

double Tensor::item() const {
  if (numel() != 1)
    throw ValueError("item: needs a tensor with one element, got shape " + shape_str(shape()));
  return std::visit([](const auto& a) { return static_cast<double>(a.data()[0]); }, storage());
}

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& impl = const_cast<TensorImpl&>(checked("requires_grad_"));
  if (impl.grad_fn && !on)
    throw AutogradError("requires_grad_: this tensor is the output of " +
                        std::string(impl.grad_fn->name()) +
                        "; only leaves can change it (use detach() for a copy cut from the graph)");
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

bool Tensor::is_leaf() const { return !checked("is_leaf").grad_fn; }
Node* Tensor::grad_fn() const { return checked("grad_fn").grad_fn.get(); }
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
  Storage copy = source.storage();  // first: source may be this tensor
  *impl.value = std::move(copy);
  if (impl.version) impl.version->fetch_add(1, std::memory_order_relaxed);
  impl.grad = Tensor();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->value = checked("detach").value;
  impl->version = impl_->version;  // the same values: the same version
  return Tensor(std::move(impl));
}

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) const {
  xgrad::backward({*this}, {gradient}, retain_graph, create_graph);
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

namespace {
thread_local int precision = 6;
}  // namespace

int print_precision() { return precision; }

void set_print_precision(int digits) {
  if (digits < 1 || digits > 17)
    throw ValueError("set_print_precision: digits must be in 1..17, got " + std::to_string(digits));
  precision = digits;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << xt::print_options::precision(precision);
  os << "Tensor(shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.grad_fn())
    os << ", grad_fn=" << t.grad_fn()->name();
  else if (t.requires_grad())
    os << ", requires_grad=true";
  os << ")\n";
  std::visit([&](const auto& a) { os << a; }, t.storage());
  return os;
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

// Builds a tensor of `shape` whose elements are fill(i) for i = 0, 1, ... in row-major order.
template <class F>
Tensor generate(const char* op, const Shape& shape, TensorOptions options, F&& fill) {
  element_count(op, shape);  // refuses shapes too large to hold
  auto make = [&](auto zero) {
    using T = decltype(zero);
    auto a = xt::xarray<T>::from_shape(shape);
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<T>(fill(i));
    return Tensor(std::move(a), options.requires_grad);
  };
  return options.dtype == Dtype::float32 ? make(float{}) : make(double{});
}

template <class List>
Tensor from_list(List values, TensorOptions options) {
  xt::xarray<double> a = values;
  if (options.dtype == Dtype::float64) return Tensor(std::move(a), options.requires_grad);
  return Tensor(xt::xarray<float>(xt::cast<float>(a)), options.requires_grad);
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
  return generate("full", shape, options, [&](std::size_t) { return value; });
}
Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, {.dtype = t.dtype()});
}
Tensor zeros_like(const Tensor& t) { return full_like(t, 0.0); }
Tensor ones_like(const Tensor& t) { return full_like(t, 1.0); }

Tensor randn(const Shape& shape, TensorOptions options, Generator& gen) {
  std::normal_distribution<double> dist(0.0, 1.0);
  return generate("randn", shape, options, [&](std::size_t) { return dist(gen.engine()); });
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator& gen) {
  if (!(low <= high))
    throw ValueError("uniform: needs low <= high, got low=" + std::to_string(low) +
                     " high=" + std::to_string(high));
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
