// functional.hpp's transforms, all on the tape: one call of f, then backward passes of what it
// recorded (and of what those recorded, under create_graph).
#include "autograd/functional.hpp"

#include <string>

#include "autograd/engine.hpp"
#include "autograd/error.hpp"
#include "autograd/forward_ad.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"

namespace xgrad {
namespace {

std::vector<std::ptrdiff_t> spec(const Shape& shape) { return {shape.begin(), shape.end()}; }

// f's inputs: x detached as leaves that require grad, or, under create_graph for an x that
// requires grad, an alias recorded from it (the results then stay differentiable in x).
std::vector<Tensor> inputs_of(const char* what, const std::vector<Tensor>& x, bool create_graph) {
  if (x.empty()) throw ValueError(std::string(what) + ": needs at least one input");
  std::vector<Tensor> in;
  for (std::size_t j = 0; j < x.size(); ++j) {
    if (!x[j].defined() || !is_floating_point(x[j].dtype()))
      throw DtypeError(std::string(what) + ": input " + std::to_string(j) + " is " +
                       (x[j].defined() ? std::string(dtype_name(x[j].dtype())) : "undefined") +
                       "; expected a floating-point tensor");
    in.push_back(create_graph && x[j].requires_grad() ? reshape(x[j], spec(x[j].shape()))
                                                      : x[j].detach().requires_grad_(true));
  }
  return in;
}

// v against the tensors it pairs with (f's outputs or inputs): one each, same shape and dtype.
void check_directions(const char* what, const char* of, const std::vector<Tensor>& v,
                      const std::vector<Tensor>& ts) {
  if (v.size() != ts.size())
    throw ValueError(std::string(what) + ": " + std::to_string(v.size()) + " vectors for " +
                     std::to_string(ts.size()) + " " + of + "; expected one each");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].defined() || v[i].shape() != ts[i].shape() || v[i].dtype() != ts[i].dtype())
      throw ShapeError(std::string(what) + ": v[" + std::to_string(i) + "] is " +
                       (v[i].defined()
                            ? shape_str(v[i].shape()) + " " + std::string(dtype_name(v[i].dtype()))
                            : std::string("undefined")) +
                       " for " + of + " " + std::to_string(i) + " " + shape_str(ts[i].shape()) +
                       " " + std::string(dtype_name(ts[i].dtype())) + "; expected the same");
  }
}

std::vector<Tensor> call(const char* what, const TensorsFunction& f,
                         const std::vector<Tensor>& in) {
  const GradModeGuard recording(true);
  std::vector<Tensor> out = f(in);
  for (std::size_t i = 0; i < out.size(); ++i)
    if (!out[i].defined())
      throw ValueError(std::string(what) + ": the function's output " + std::to_string(i) +
                       " is undefined");
  return out;
}

// grad() of the outputs that depend on something, zeros where nothing reaches an input.
std::vector<Tensor> gradients(const std::vector<Tensor>& outputs, const std::vector<Tensor>& cots,
                              const std::vector<Tensor>& inputs, bool create_graph) {
  std::vector<Tensor> outs, vs;
  for (std::size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].requires_grad()) {
      outs.push_back(outputs[i]);
      vs.push_back(cots[i]);
    }
  std::vector<Tensor> g(inputs.size());
  if (!outs.empty()) g = grad(outs, inputs, vs, /*retain_graph=*/true, create_graph, true);
  for (std::size_t j = 0; j < inputs.size(); ++j)
    if (!g[j].defined()) g[j] = zeros_like(inputs[j]);
  return g;
}

std::vector<Tensor> cut(std::vector<Tensor> ts, bool create_graph) {
  if (!create_graph)
    for (Tensor& t : ts) t = t.detach();
  return ts;
}

// Zeros of t's shape and dtype (a floating one) with a 1 at flat position k.
Tensor basis(const Tensor& t, std::size_t k) {
  const auto make = [&](auto zero) {
    xt::xarray<decltype(zero)> e = xt::zeros<decltype(zero)>(t.shape());
    e.data()[k] = 1;
    return Tensor(std::move(e));
  };
  return t.dtype() == Dtype::float64 ? make(0.0) : make(0.0f);
}

// One-element outputs' cotangent 1, for gradients of a scalar.
Tensor scalar_output(const char* what, const std::vector<Tensor>& out) {
  if (out.size() != 1 || out[0].numel() != 1)
    throw ShapeError(std::string(what) + ": needs a function with one output of one element, got " +
                     std::to_string(out.size()) + " output(s)" +
                     (out.empty() ? std::string() : ", the first " + shape_str(out[0].shape())));
  return out[0];
}

// The entry k of t flattened, recorded.
Tensor entry(const Tensor& t, std::size_t k) {
  return select(reshape(t, {-1}), 0, static_cast<std::ptrdiff_t>(k));
}

Shape joined(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// d y / d in_j for each input, of shape y.shape + in_j.shape: a backward per entry of y (rows).
std::vector<Tensor> by_rows(const Tensor& y, const std::vector<Tensor>& in, bool create_graph) {
  std::vector<std::vector<Tensor>> rows(in.size());
  for (std::size_t k = 0; k < y.numel(); ++k) {
    const std::vector<Tensor> g = gradients({entry(y, k)}, {Tensor()}, in, create_graph);
    for (std::size_t j = 0; j < in.size(); ++j) rows[j].push_back(g[j]);
  }
  std::vector<Tensor> blocks;
  for (std::size_t j = 0; j < in.size(); ++j) {
    const Shape shape = joined(y.shape(), in[j].shape());
    blocks.push_back(rows[j].empty() ? zeros(shape, {.dtype = in[j].dtype()})
                                     : reshape(stack(rows[j]), spec(shape)));
  }
  return blocks;
}

// sum_j <a_j, b_j>, recorded.
Tensor inner(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  Tensor total = sum(mul(a[0], b[0]));
  for (std::size_t j = 1; j < a.size(); ++j) total = add(total, sum(mul(a[j], b[j])));
  return total;
}

std::size_t entries(const std::vector<Tensor>& ts) {
  std::size_t n = 0;
  for (const Tensor& t : ts) n += t.numel();
  return n;
}

template <class Pair>
auto first_of(Pair p) {
  return std::pair<Tensor, Tensor>{p.first.at(0), p.second.at(0)};
}
TensorsFunction of_one(const TensorFunction& f) {
  return [f](const std::vector<Tensor>& x) { return std::vector<Tensor>{f(x[0])}; };
}

// f's outputs and their tangents J v, in forward mode: f run once on inputs with tangents v (an
// input whose v is undefined carries none). The inputs require grad only when f differentiates
// them itself (hvp's gradient) or under create_graph: otherwise nothing is recorded.
std::pair<std::vector<Tensor>, std::vector<Tensor>> forward_pass(
    const char* what, const TensorsFunction& f, const std::vector<Tensor>& x,
    const std::vector<Tensor>& v, bool create_graph, bool f_differentiates = false) {
  if (forward_ad::is_active())
    throw AutogradError(std::string(what) +
                        ": runs forward mode in a dual level of its own, but one is already open "
                        "on this thread; call it outside forward_ad::dual_level");
  std::vector<Tensor> in = inputs_of(what, x, create_graph);
  if (!create_graph && !f_differentiates)
    for (Tensor& t : in) t = t.detach();
  const forward_ad::dual_level level;
  for (std::size_t j = 0; j < in.size(); ++j)
    if (v[j].defined()) in[j] = forward_ad::make_dual(in[j], v[j]);
  std::vector<Tensor> out = call(what, f, in), tangents;
  for (Tensor& o : out) {
    forward_ad::UnpackedDual dual = forward_ad::unpack_dual(o);
    tangents.push_back(dual.tangent.defined() ? dual.tangent : zeros_like(o));
    o = dual.primal;
  }
  return {cut(std::move(out), create_graph), cut(std::move(tangents), create_graph)};
}

}  // namespace

std::pair<std::vector<Tensor>, std::vector<Tensor>> vjp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options) {
  const std::vector<Tensor> in = inputs_of("vjp", x, options.create_graph);
  const std::vector<Tensor> out = call("vjp", f, in);
  check_directions("vjp", "output", v, out);
  std::vector<Tensor> g = gradients(out, v, in, options.create_graph);
  return {cut(out, options.create_graph), cut(std::move(g), options.create_graph)};
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options) {
  check_directions("jvp", "input", v, x);
  return forward_pass("jvp", f, x, v, options.create_graph);
}

std::vector<std::vector<Tensor>> jacobian(const TensorsFunction& f, const std::vector<Tensor>& x,
                                          JacobianOptions options) {
  const bool create = options.create_graph;
  const std::vector<Tensor> in = inputs_of("jacobian", x, create);
  const std::vector<Tensor> out = call("jacobian", f, in);
  const GradModeGuard recording(true);
  JacobianMode mode = options.mode;
  if (mode == JacobianMode::automatic)
    mode = entries(in) < entries(out) ? JacobianMode::forward : JacobianMode::reverse;
  std::vector<std::vector<Tensor>> J(out.size(), std::vector<Tensor>(in.size()));
  if (mode == JacobianMode::reverse) {
    for (std::size_t i = 0; i < out.size(); ++i) J[i] = by_rows(out[i], in, create);
  } else {
    // Column k of input j: J e_k, the tangents of one forward-mode pass of f.
    for (std::size_t j = 0; j < in.size(); ++j) {
      std::vector<std::vector<Tensor>> columns(out.size());
      for (std::size_t k = 0; k < in[j].numel(); ++k) {
        std::vector<Tensor> e(x.size());  // the other inputs carry no tangent
        e[j] = basis(x[j], k);
        const std::vector<Tensor> c = forward_pass("jacobian", f, x, e, create).second;
        for (std::size_t i = 0; i < out.size(); ++i) columns[i].push_back(reshape(c[i], {-1}));
      }
      for (std::size_t i = 0; i < out.size(); ++i) {
        // The columns stacked are (input entries, output entries): transposed to output + input.
        const Shape shape = joined(out[i].shape(), in[j].shape());
        J[i][j] = columns[i].empty() || out[i].numel() == 0
                      ? zeros(shape, {.dtype = in[j].dtype()})
                      : reshape(transpose(stack(columns[i]), 0, 1), spec(shape));
      }
    }
  }
  for (auto& row : J) row = cut(std::move(row), create);
  return J;
}

std::vector<std::vector<Tensor>> hessian(const TensorsFunction& f, const std::vector<Tensor>& x,
                                         TransformOptions options) {
  const bool create = options.create_graph;
  const std::vector<Tensor> in = inputs_of("hessian", x, create);
  const Tensor y = scalar_output("hessian", call("hessian", f, in));
  const GradModeGuard recording(true);
  const std::vector<Tensor> g = gradients({y}, {Tensor()}, in, /*create_graph=*/true);
  std::vector<std::vector<Tensor>> H;  // the gradient's Jacobian, by rows
  for (const Tensor& gi : g) H.push_back(cut(by_rows(gi, in, create), create));
  return H;
}

namespace {
// (grad f, v^T H): the gradient recorded, then the backward of <grad, v>.
std::pair<std::vector<Tensor>, std::vector<Tensor>> second_order(const char* what,
                                                                 const TensorsFunction& f,
                                                                 const std::vector<Tensor>& x,
                                                                 const std::vector<Tensor>& v,
                                                                 TransformOptions options) {
  check_directions(what, "input", v, x);
  const std::vector<Tensor> in = inputs_of(what, x, options.create_graph);
  const Tensor y = scalar_output(what, call(what, f, in));
  const GradModeGuard recording(true);
  const std::vector<Tensor> g = gradients({y}, {Tensor()}, in, /*create_graph=*/true);
  std::vector<Tensor> hv = gradients({inner(g, v)}, {Tensor()}, in, options.create_graph);
  return {cut(g, options.create_graph), cut(std::move(hv), options.create_graph)};
}
}  // namespace

std::pair<std::vector<Tensor>, std::vector<Tensor>> vhp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options) {
  return second_order("vhp", f, x, v, options);
}
std::pair<std::vector<Tensor>, std::vector<Tensor>> hvp(const TensorsFunction& f,
                                                        const std::vector<Tensor>& x,
                                                        const std::vector<Tensor>& v,
                                                        TransformOptions options) {
  // Forward over reverse: the gradient taken at inputs whose tangents are v carries H v.
  check_directions("hvp", "input", v, x);
  const bool create = options.create_graph;
  const TensorsFunction gradient = [&f, create](const std::vector<Tensor>& in) {
    return gradients({scalar_output("hvp", call("hvp", f, in))}, {Tensor()}, in, create);
  };
  return forward_pass("hvp", gradient, x, v, create, /*f_differentiates=*/true);
}

std::pair<Tensor, Tensor> vjp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options) {
  return first_of(vjp(of_one(f), {x}, {v}, options));
}
std::pair<Tensor, Tensor> jvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options) {
  return first_of(jvp(of_one(f), {x}, {v}, options));
}
Tensor jacobian(const TensorFunction& f, const Tensor& x, JacobianOptions options) {
  return jacobian(of_one(f), {x}, options)[0][0];
}
Tensor hessian(const TensorFunction& f, const Tensor& x, TransformOptions options) {
  return hessian(of_one(f), {x}, options)[0][0];
}
std::pair<Tensor, Tensor> hvp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options) {
  return first_of(hvp(of_one(f), {x}, {v}, options));
}
std::pair<Tensor, Tensor> vhp(const TensorFunction& f, const Tensor& x, const Tensor& v,
                              TransformOptions options) {
  return first_of(vhp(of_one(f), {x}, {v}, options));
}

}  // namespace xgrad
