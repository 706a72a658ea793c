#include "nn/module.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <typeinfo>

#include "autograd/error.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"

namespace xgrad::nn {

Tensor Module::forward(const Tensor&) {
  throw ValueError(name() + ": this module has no single-input forward()");
}

Tensor Module::operator()(const Tensor& input) {
  if (pre_hooks_.empty() && hooks_.empty()) return forward(input);
  Tensor in = input;
  for (const auto& [handle, hook] : std::vector(pre_hooks_))  // a hook may remove itself
    if (std::optional<Tensor> replaced = hook(*this, in)) in = std::move(*replaced);
  Tensor out = forward(in);
  for (const auto& [handle, hook] : std::vector(hooks_))
    if (std::optional<Tensor> replaced = hook(*this, in, out)) out = std::move(*replaced);
  return out;
}

std::size_t Module::register_forward_pre_hook(ForwardPreHook hook) {
  pre_hooks_.emplace_back(next_hook_, std::move(hook));
  return next_hook_++;
}

std::size_t Module::register_forward_hook(ForwardHook hook) {
  hooks_.emplace_back(next_hook_, std::move(hook));
  return next_hook_++;
}

void Module::remove_hook(std::size_t handle) {
  const auto named = [&](const auto& entry) { return entry.first == handle; };
  const std::size_t removed = std::erase_if(pre_hooks_, named) + std::erase_if(hooks_, named);
  if (removed == 0)
    throw ValueError(name() + ": remove_hook: no hook " + std::to_string(handle) +
                     " (already removed, or another module's)");
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters(recurse)) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, recurse, false, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, b] : named_buffers(recurse)) out.push_back(b);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, recurse, false, out);
  return out;
}

// Depth first, own tensors before the children's; a tensor met again (tied) is left out unless
// tied_again (state_dict lists it under every name).
void Module::collect(const std::string& prefix, bool buffers, bool recurse, bool tied_again,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const Registered& r : buffers ? buffers_ : parameters_) {
    const Tensor& t = r.tensor();
    const bool seen = std::any_of(
        out.begin(), out.end(), [&](const auto& entry) { return entry.second.impl() == t.impl(); });
    if (!seen || tied_again) out.emplace_back(prefix + r.name, t);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_)
    child->collect(prefix + name + ".", buffers, true, tied_again, out);
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(
    bool include_self) {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  if (include_self) {
    std::shared_ptr<Module> self = weak_from_this().lock();
    if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), this);  // not owned
    out.emplace_back("", std::move(self));
  }
  // Depth first; a module met again (shared by two parents) is left out.
  const std::function<void(Module&, const std::string&)> walk = [&](Module& m,
                                                                    const std::string& prefix) {
    for (const auto& named_child : m.children_) {
      const auto& [name, child] = named_child;
      const std::shared_ptr<Module>& module = child;  // a lambda cannot capture a binding (clang 14)
      const bool seen = std::any_of(out.begin(), out.end(),
                                    [&](const auto& entry) { return entry.second == module; });
      if (seen) continue;
      out.emplace_back(prefix + name, child);
      walk(*child, prefix + name + ".");
    }
  };
  walk(*this, "");
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules(bool include_self) {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [name, m] : named_modules(include_self)) out.push_back(std::move(m));
  return out;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  for (const auto& m : modules()) fn(*m);
  return *this;
}

std::string Module::name() const {
  int status = 0;
  const char* mangled = typeid(*this).name();
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  // The last component outside template arguments: "xgrad::nn::Linear" -> "Linear".
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    if (full[i] == '<') ++depth;
    if (full[i] == '>') --depth;
    if (depth == 0 && full[i] == ':' && i + 1 < full.size() && full[i + 1] == ':') start = i + 2;
  }
  return full.substr(start);
}

StateDict Module::state_dict() const {
  StateDict out, buffers;
  collect("", false, true, true, out);
  collect("", true, true, true, buffers);
  for (auto& entry : buffers) out.push_back(std::move(entry));
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict mine = state_dict();
  const auto find = [](const StateDict& d, const std::string& name) -> const Tensor* {
    for (const auto& [n, t] : d)
      if (n == name) return &t;
    return nullptr;
  };
  // A tensor is given when any of its names is (a tied one has several).
  const auto given_any = [&](const Tensor& t) {
    for (const auto& [name, u] : mine)
      if (u.impl() == t.impl() && find(state, name)) return true;
    return false;
  };
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : mine)
    if (!given_any(t)) missing.push_back(name);
  for (const auto& [name, t] : state)
    if (!find(mine, name)) unexpected.push_back(name);
  if (strict && (!missing.empty() || !unexpected.empty()))
    throw ValueError("load_state_dict: " + this->name() + ": missing " +
                     (missing.empty() ? std::string("none") : join(missing, ", ")) +
                     "; unexpected " +
                     (unexpected.empty() ? std::string("none") : join(unexpected, ", ")));
  for (const auto& [name, t] : mine)  // check every entry before changing any
    if (const Tensor* given = find(state, name); given && given->shape() != t.shape())
      throw ShapeError("load_state_dict: '" + name + "' has shape " + shape_str(t.shape()) +
                       " in " + this->name() + " but " + shape_str(given->shape()) + " given");
  for (std::size_t i = 0; i < mine.size(); ++i)  // two names of one tensor: the same values
    for (std::size_t j = 0; j < i; ++j) {
      const Tensor* a = find(state, mine[j].first);
      const Tensor* b = find(state, mine[i].first);
      if (mine[i].second.impl() != mine[j].second.impl() || !a || !b || a->impl() == b->impl())
        continue;
      if (!all(eq(a->to(kFloat64), b->to(kFloat64))).item<bool>())
        throw ValueError("load_state_dict: " + this->name() + ": '" + mine[j].first + "' and '" +
                         mine[i].first + "' are one tied tensor, but the values given differ");
    }
  NoGradGuard no_grad;
  for (const auto& [name, t] : mine)
    if (const Tensor* given = find(state, name))
      t.set_data(given->dtype() == t.dtype() ? *given : cast(given->detach(), t.dtype()));
}

Module& Module::to(Dtype dtype) {
  NoGradGuard no_grad;
  for (const auto& [name, t] : state_dict())
    if (t.dtype() != dtype) t.set_data(cast(t.detach(), dtype));
  return *this;
}

Module& Module::requires_grad_(bool on) {
  for (Tensor p : parameters()) p.requires_grad_(on);
  return *this;
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (const Tensor& p : parameters()) {
    const Tensor g = p.grad();
    if (set_to_none || !g.defined())
      p.zero_grad();
    else if (g.requires_grad() || g.is_view())  // a recorded gradient: a new one
      p.set_grad(zeros_like(p));
    else
      g.zero_();
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

Tensor Module::register_parameter(std::string name, Tensor tensor) {
  if (!tensor.is_leaf())
    throw ValueError(this->name() + ": parameter '" + name +
                     "' must be a leaf tensor (detach() it first)");
  tensor.requires_grad_(true);
  parameters_.push_back({std::move(name), tensor});
  return tensor;
}

void Module::register_parameter(std::string name, Tensor& field, Tensor tensor) {
  field = register_parameter(name, std::move(tensor));
  parameters_.back().held = Tensor();
  parameters_.back().field = &field;
}

void Module::register_buffer(std::string name, Tensor& field, Tensor tensor) {
  field = register_buffer(name, std::move(tensor));
  buffers_.back().held = Tensor();
  buffers_.back().field = &field;
}

Tensor Module::register_buffer(std::string name, Tensor tensor) {
  if (!tensor.is_leaf() || tensor.requires_grad())
    throw ValueError(this->name() + ": buffer '" + name +
                     "' must be a leaf that does not require grad (detach() it first)");
  buffers_.push_back({std::move(name), tensor});
  return tensor;
}

namespace {
std::size_t count(const std::vector<Tensor>& tensors) {
  std::size_t n = 0;
  for (const Tensor& t : tensors) n += t.numel();
  return n;
}

// "weight [3, 4], bias [3]: 15 parameters", or "" for a module without its own.
std::string own_parameters(const Module& m) {
  const auto named = m.named_parameters(false);
  if (named.empty()) return "";
  std::string out;
  std::size_t n = 0;
  for (const auto& [name, t] : named) {
    if (!out.empty()) out += ", ";
    out += name + " " + shape_str(t.shape());
    n += t.numel();
  }
  return out + ": " + std::to_string(n) + (n == 1 ? " parameter" : " parameters");
}
}  // namespace

std::string Module::str() const {
  std::string out;
  print(out, "", false);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Module& module) {
  std::string out;
  module.print(out, "", true);
  const std::vector<Tensor> params = module.parameters();
  std::size_t trainable = 0;
  for (const Tensor& p : params) trainable += p.requires_grad() ? p.numel() : 0;
  return os << out << "\n"
            << count(params) << " parameters (" << trainable << " trainable), "
            << count(module.buffers()) << " in buffers";
}

void Module::print(std::string& out, const std::string& indent, bool annotated) const {
  out += name() + "(" + extra_repr();
  const std::string own = annotated ? own_parameters(*this) : "";
  if (children_.empty()) {
    out += ")";
    if (!own.empty()) out += "  # " + own;
    return;
  }
  out += "\n";
  if (!own.empty()) out += indent + "  # " + own + "\n";
  for (const auto& [child_name, child] : children_) {
    out += indent + "  (" + child_name + "): ";
    child->print(out, indent + "  ", annotated);
    out += "\n";
  }
  out += indent + ")";
}

std::string summary(Module& module, const Shape& input_shape, Dtype dtype) {
  struct Row {
    Shape output;
    double flops = 0;
    bool ran = false;
  };
  const auto named = module.named_modules();
  std::vector<Row> rows(named.size());
  std::vector<std::pair<Module*, std::size_t>> hooks;
  for (std::size_t i = 0; i < named.size(); ++i) {
    Module* m = named[i].second.get();
    hooks.emplace_back(
        m, m->register_forward_hook([&rows, i](Module& self, const Tensor& in,
                                               const Tensor& out) -> std::optional<Tensor> {
          rows[i].output = out.shape();
          rows[i].flops += self.flops(in.shape(), out.shape());
          rows[i].ran = true;
          return std::nullopt;
        }));
  }
  const auto remove = [&] {
    for (const auto& [m, handle] : hooks) m->remove_hook(handle);
  };
  try {
    const NoGradGuard no_grad;
    module(zeros(input_shape, {.dtype = dtype}));
  } catch (...) {
    remove();
    throw;
  }
  remove();
  const auto pad = [](std::string text, std::size_t width) {
    if (text.size() < width) text.resize(width, ' ');
    return text + " ";
  };
  std::string out = pad("Layer (type)", 40) + pad("Output shape", 22) + pad("Param #", 12) +
                    "FLOPs\n" + std::string(86, '=') + "\n";
  double total_flops = 0;
  for (std::size_t i = 0; i < named.size(); ++i) {
    const auto& [name, m] = named[i];
    const std::size_t depth =
        name.empty() ? 0 : 1 + static_cast<std::size_t>(std::count(name.begin(), name.end(), '.'));
    const std::string label =
        std::string(2 * depth, ' ') + (name.empty() ? m->name() : name + " (" + m->name() + ")");
    out += pad(label, 40) + pad(rows[i].ran ? shape_str(rows[i].output) : "(not run)", 22) +
           pad(std::to_string(count(m->parameters(false))), 12) + number_str(rows[i].flops) + "\n";
    total_flops += rows[i].flops;
  }
  const std::vector<Tensor> params = module.parameters();
  std::size_t trainable = 0;
  for (const Tensor& p : params) trainable += p.requires_grad() ? p.numel() : 0;
  out += std::string(86, '=') + "\nTotal params: " + std::to_string(count(params)) +
         " (trainable " + std::to_string(trainable) +
         ")\nTotal FLOPs of one forward: " + number_str(total_flops) + "\n";
  return out;
}

}  // namespace xgrad::nn
