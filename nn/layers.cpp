#include "nn/layers.hpp"

#include <cmath>

#include "autograd/ops.hpp"
#include "nn/init.hpp"

namespace xgrad::nn {

Linear::Linear(std::size_t in_features, std::size_t out_features, bool with_bias, Dtype dtype,
               Generator& gen)
    : in_(in_features), out_(out_features) {
  if (in_features == 0 || out_features == 0)
    throw ValueError("Linear: needs in_features and out_features > 0, got " +
                     std::to_string(in_features) + " and " + std::to_string(out_features));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  register_parameter("weight", weight, zeros({out_features, in_features}, {.dtype = dtype}));
  init::uniform_(weight, -bound, bound, gen);
  if (with_bias) {
    register_parameter("bias", bias, zeros({out_features}, {.dtype = dtype}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias, epilogue); }

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
         ", bias=" + (bias.defined() ? "true" : "false");  // the epilogue is how it runs, not
                                                            // what it is: checkpoints agree
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(size()), std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [name, child] : named_children()) h = (*child)(h);
  return h;
}

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

ModuleList& ModuleList::push_back(std::shared_ptr<Module> module) {
  if (!module) throw ValueError("ModuleList::push_back: the module is null");
  register_module(std::to_string(items_.size()), module);
  items_.push_back(std::move(module));
  return *this;
}

const std::shared_ptr<Module>& ModuleList::operator[](std::size_t i) const {
  if (i >= items_.size())
    throw IndexError("ModuleList: index " + std::to_string(i) + " out of range for a list of " +
                     std::to_string(items_.size()) + " modules");
  return items_[i];
}

ModuleDict::ModuleDict(const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& items) {
  for (const auto& [key, m] : items) insert(key, m);
}

ModuleDict& ModuleDict::insert(const std::string& key, std::shared_ptr<Module> module) {
  if (!module) throw ValueError("ModuleDict::insert: the module under '" + key + "' is null");
  if (contains(key)) throw ValueError("ModuleDict::insert: the key '" + key + "' is already there");
  register_module(key, std::move(module));
  return *this;
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [name, m] : named_children())
    if (name == key) return true;
  return false;
}

const std::shared_ptr<Module>& ModuleDict::operator[](const std::string& key) const {
  for (const auto& [name, m] : named_children())
    if (name == key) return m;
  throw ValueError("ModuleDict: no module under '" + key +
                   "' (keys: " + (keys().empty() ? std::string("none") : join(keys(), ", ")) + ")");
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : named_children()) out.push_back(name);
  return out;
}

MLP::MLP(const std::vector<std::size_t>& sizes, const std::string& activation, Dtype dtype,
         Generator& gen)
    : activation_(activation) {
  if (sizes.size() < 2)
    throw ValueError("MLP: needs at least two layer sizes (inputs and outputs), got " +
                     std::to_string(sizes.size()));
  make_activation(activation);  // rejects an unknown name before building anything
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    linears_.push_back(std::make_shared<Linear>(sizes[l], sizes[l + 1], true, dtype, gen));
    push_back(linears_.back());
    if (l + 2 < sizes.size()) {
      activations_.push_back(make_activation(activation));
      push_back(activations_.back());
    }
  }
}

MLP& MLP::fuse(bool on) {
  Epilogue hidden = Epilogue::none;
  if (on) {
    if (activation_ != "relu" && activation_ != "tanh" && activation_ != "sigmoid")
      throw ValueError("MLP::fuse: the activation \"" + activation_ +
                       "\" does not fuse into Linear; relu, tanh and sigmoid do");
    hidden = epilogue_from_name(activation_);
  }
  for (std::size_t l = 0; l < linears_.size(); ++l)
    linears_[l]->epilogue = l + 1 < linears_.size() ? hidden : Epilogue::none;  // logits: none
  fused_ = on;
  return *this;
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h = x;
  for (std::size_t l = 0; l < linears_.size(); ++l) {
    h = (*linears_[l])(h);
    if (!fused_ && l < activations_.size()) h = (*activations_[l])(h);
  }
  return h;
}

// ---- small layers ---------------------------------------------------------------------------

Unflatten::Unflatten(std::ptrdiff_t dim, Shape sizes) : dim_(dim), sizes_(std::move(sizes)) {
  if (sizes_.empty()) throw ValueError("Unflatten: needs the sizes of at least one axis");
}

Tensor Unflatten::forward(const Tensor& x) {
  const auto rank = static_cast<std::ptrdiff_t>(x.dim());
  const std::ptrdiff_t axis = dim_ < 0 ? dim_ + rank : dim_;
  if (axis < 0 || axis >= rank || shape_numel(sizes_) != x.size(axis))
    throw ShapeError("Unflatten: axis " + std::to_string(dim_) + " of " + shape_str(x.shape()) +
                     " into " + shape_str(sizes_) + "; expected an axis whose length is " +
                     std::to_string(shape_numel(sizes_)));
  std::vector<std::ptrdiff_t> shape;
  for (std::ptrdiff_t a = 0; a < rank; ++a) {
    if (a != axis) {
      shape.push_back(static_cast<std::ptrdiff_t>(x.size(a)));
      continue;
    }
    for (std::size_t n : sizes_) shape.push_back(static_cast<std::ptrdiff_t>(n));
  }
  return reshape(x, shape);
}

std::string Unflatten::extra_repr() const {
  return "dim=" + std::to_string(dim_) + ", unflattened_size=" + shape_str(sizes_);
}

PReLU::PReLU(const PReLUOptions& options) {
  if (options.num_parameters() == 0) throw ValueError("PReLU: num_parameters must be > 0");
  register_parameter("weight", weight,
                     full({options.num_parameters()}, options.init(), {.dtype = options.dtype()}));
}

std::string PReLU::extra_repr() const { return "num_parameters=" + std::to_string(weight.numel()); }

}  // namespace xgrad::nn
