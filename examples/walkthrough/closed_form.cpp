#include "examples/walkthrough/closed_form.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "autograd/compare.hpp"
#include "autograd/engine.hpp"
#include "nn/activation.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

namespace walkthrough {

using namespace xgrad;

namespace {

// op(A) op(B), op transposing when asked, with plain loops: the closed form does not go through
// the library's BLAS path that it is checked against.
Matrix product(const Matrix& a, bool transpose_a, const Matrix& b, bool transpose_b) {
  const std::size_t n = a.shape()[transpose_a ? 1 : 0], k = a.shape()[transpose_a ? 0 : 1];
  const std::size_t m = b.shape()[transpose_b ? 0 : 1];
  Matrix c = xt::zeros<double>({n, m});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t t = 0; t < k; ++t) {
      const double left = transpose_a ? a(t, i) : a(i, t);
      for (std::size_t j = 0; j < m; ++j) c(i, j) += left * (transpose_b ? b(j, t) : b(t, j));
    }
  return c;
}

Matrix as_batch(const xt::xarray<double>& x) {
  if (x.dimension() == 2) return x;
  Matrix row = x;
  row.reshape({1, x.size()});
  return row;
}

double sigmoid_of(double v) {
  return v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v));
}

double softplus_of(double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v))); }
double normal_cdf(double v) { return 0.5 * (1 + std::erf(v / std::numbers::sqrt2)); }
double normal_pdf(double v) { return std::exp(-v * v / 2) / std::sqrt(2 * std::numbers::pi); }

using Args = std::span<const double>;

}  // namespace

const std::map<std::string_view, ClosedFormActivation>& closed_form_activations() {
  static const std::map<std::string_view, ClosedFormActivation> table = {
      {"identity", {[](double v, Args) { return v; }, [](double, Args) { return 1.0; }}},
      {"relu",
       {[](double v, Args) { return v > 0 ? v : 0.0; },
        [](double v, Args) { return v > 0 ? 1.0 : 0.0; }}},
      {"leaky_relu",
       {[](double v, Args p) { return v > 0 ? v : p[0] * v; },
        [](double v, Args p) { return v > 0 ? 1.0 : p[0]; }}},
      {"sigmoid",
       {[](double v, Args) { return sigmoid_of(v); },
        [](double v, Args) { return sigmoid_of(v) * (1 - sigmoid_of(v)); }}},
      {"tanh",
       {[](double v, Args) { return std::tanh(v); },
        [](double v, Args) { return 1 - std::tanh(v) * std::tanh(v); }}},
      {"gelu",
       {[](double v, Args) { return v * 0.5 * (1 + std::erf(v / std::numbers::sqrt2)); },
        [](double v, Args) { return normal_cdf(v) + v * normal_pdf(v); }}},
      {"softplus",
       {[](double v, Args) { return softplus_of(v); },
        [](double v, Args) { return sigmoid_of(v); }}},
      {"elu",
       {[](double v, Args p) { return v > 0 ? v : p[0] * std::expm1(v); },
        [](double v, Args p) { return v > 0 ? 1.0 : p[0] * std::exp(v); }}},
      {"silu",
       {[](double v, Args) { return v * sigmoid_of(v); },
        [](double v, Args) { return sigmoid_of(v) + v * sigmoid_of(v) * (1 - sigmoid_of(v)); }}},
      {"mish",  // x tanh(sp(x)); d/dx = tanh(sp(x)) + x sigmoid(x) (1 - tanh^2(sp(x)))
       {[](double v, Args) { return v * std::tanh(softplus_of(v)); },
        [](double v, Args) {
          const double t = std::tanh(softplus_of(v));
          return t + v * sigmoid_of(v) * (1 - t * t);
        }}},
  };
  return table;
}

namespace {

// sigma or sigma' of the named activation, entrywise, with the table's default parameters.
template <class Part>
Matrix apply_closed_form(const std::string& name, const Matrix& z, Part part) {
  const nn::ActivationInfo& info = nn::find_activation(name);  // the library's message if unknown
  const auto it = closed_form_activations().find(info.name);
  if (it == closed_form_activations().end())
    throw ValueError("activation '" + name +
                     "' has no closed form: add its sigma and sigma' to "
                     "examples/walkthrough/closed_form.cpp");
  std::vector<double> args;
  for (const nn::ActivationParameter& p : info.parameters) args.push_back(p.default_value);
  Matrix out = z;
  for (double& v : out) v = part(it->second)(v, args);
  return out;
}

}  // namespace

Matrix activation_value(const std::string& name, const Matrix& z) {
  return apply_closed_form(name, z, [](const ClosedFormActivation& c) { return c.value; });
}

Matrix activation_derivative(const std::string& name, const Matrix& z) {
  return apply_closed_form(name, z, [](const ClosedFormActivation& c) { return c.derivative; });
}

Network::Network(std::vector<DenseLayer> layers, const Matrix& x, Tensor y, double lr,
                 int label_base)
    : layers_(std::move(layers)), y_(std::move(y)), lr_(lr), label_base_(label_base) {
  if (label_base != 0 && label_base != 1)
    throw ValueError("network: label_base must be 0 or 1, got " + std::to_string(label_base));
  if (x.dimension() != 1 && x.dimension() != 2)
    throw ShapeError("network: x must be one sample (a vector) or a batch (a matrix), got shape " +
                     shape_str(x.shape()));
  x_ = as_batch(x);
  check();
}

void Network::check() const {
  const std::vector<DenseLayer>& layers = layers_;
  if (!y_.defined() || y_.dtype() != kInt64)
    throw DtypeError("network: labels must be an int64 tensor");
  const auto& y = y_.value<std::int64_t>();
  if (!(lr_ >= 0 && std::isfinite(lr_)))
    throw ValueError("network: lr must be a finite number >= 0, got " + std::to_string(lr_));
  if (layers.empty()) throw ValueError("network: needs at least one layer");
  const Matrix& batch = x_;
  std::size_t width = batch.shape()[1];
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const DenseLayer& layer = layers[l];
    const std::string name = "layer " + std::to_string(l + 1);
    if (layer.W.dimension() != 2 || layer.W.shape()[1] != width || layer.W.shape()[0] == 0)
      throw ShapeError(name + ": W has shape " + shape_str(layer.W.shape()) + "; expected (d, " +
                       std::to_string(width) + ") to take " +
                       (l == 0 ? "x" : "the previous layer") + " of width " +
                       std::to_string(width));
    width = layer.W.shape()[0];
    if (layer.b.dimension() != 1 || layer.b.size() != width)
      throw ShapeError(name + ": b has shape " + shape_str(layer.b.shape()) + "; expected [" +
                       std::to_string(width) + "]");
    try {
      nn::find_activation(layer.activation);
    } catch (const ValueError& e) {
      throw ValueError(name + ": " + e.what());
    }
    if (l + 1 == layers.size() && layer.activation != "identity")
      throw ValueError(name +
                       " is the last: its outputs are the logits and take no activation, got '" +
                       layer.activation + "'");
  }
  const std::size_t batch_size = batch.shape()[0];
  if (y.dimension() != 1 || y.size() != batch_size)
    throw ShapeError("network: " + std::to_string(y.size()) + " labels for " +
                     std::to_string(batch_size) + " samples");
  for (std::size_t i = 0; i < y.size(); ++i)
    if (y(i) < 0 || static_cast<std::size_t>(y(i)) >= width)
      throw IndexError("network: label " + std::to_string(y(i)) + " of sample " +
                       std::to_string(i) + " is out of range for " + std::to_string(width) +
                       " classes (0-based)");
}

const std::vector<std::string>& backprop_formula_names() {
  static const std::vector<std::string> names = {"corrected",
                                                 "document",
                                                 "derivative_missing",
                                                 "derivative_at_output",
                                                 "activation_for_derivative",
                                                 "derivative_at_logits",
                                                 "sum_not_mean",
                                                 "mean_twice",
                                                 "label_minus_p",
                                                 "weight_not_transposed",
                                                 "grad_W_transposed"};
  return names;
}

BackpropFormula backprop_formula(const std::string& name) {
  const std::vector<std::string>& names = backprop_formula_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end())
    throw ValueError("unknown formula '" + name + "'; expected one of: " + join(names, ", "));
  return static_cast<BackpropFormula>(it - names.begin());
}

BackpropTrace closed_form_backprop(const Network& net, BackpropFormula formula) {
  const std::vector<DenseLayer>& layers = net.layers();
  const auto& y = net.y().value<std::int64_t>();
  const double lr = net.lr();
  const std::size_t L = layers.size();
  BackpropTrace t;
  Matrix o = net.x();
  const Matrix& input = net.x();
  for (const DenseLayer& layer : layers) {  // z_l = W_l o_{l-1} + b_l, as rows: O W^T + 1 b^T
    Matrix z = product(o, false, layer.W, true);
    for (std::size_t i = 0; i < z.shape()[0]; ++i)
      for (std::size_t j = 0; j < z.shape()[1]; ++j) z(i, j) += layer.b(j);
    o = activation_value(layer.activation, z);
    t.z.push_back(z);
    t.o.push_back(o);
  }
  const Matrix& logits = t.z.back();
  const std::size_t B = logits.shape()[0], C = logits.shape()[1];
  t.p = logits;
  for (std::size_t i = 0; i < B; ++i) {  // softmax (1), shifted by the row's maximum
    double m = logits(i, 0), s = 0;
    for (std::size_t c = 0; c < C; ++c) m = std::max(m, logits(i, c));
    for (std::size_t c = 0; c < C; ++c) s += std::exp(logits(i, c) - m);
    for (std::size_t c = 0; c < C; ++c) t.p(i, c) = std::exp(logits(i, c) - m) / s;
    t.loss += -(logits(i, static_cast<std::size_t>(y(i))) - m - std::log(s)) /
              static_cast<double>(B);  // (2)
  }
  t.grad_o.resize(L);
  t.grad_z.resize(L);
  t.grad_W.resize(L);
  t.grad_b.resize(L);
  using enum BackpropFormula;
  Matrix g = t.p;  // question 1: delta_L = p - e_y, over B for the mean
  for (std::size_t i = 0; i < B; ++i) g(i, static_cast<std::size_t>(y(i))) -= 1;
  if (formula == label_minus_p) g = -g;
  if (formula != sum_not_mean) g /= static_cast<double>(B);
  if (formula == mean_twice) g /= static_cast<double>(B);
  if (formula == derivative_at_logits && L > 1)
    g = g * activation_derivative(layers[0].activation, logits);
  t.grad_o[L - 1] = g;
  t.grad_z[L - 1] = g;
  for (std::size_t l = L - 1; l-- > 0;) {
    // question 2: corrected, grad_o_l = G_{l+1} W_{l+1}; document, grad_o_{l+1} W_{l+1}
    const Matrix& upstream = formula == document ? t.grad_o[l + 1] : t.grad_z[l + 1];
    const Matrix& W = layers[l + 1].W;  // a wrong transpose where the shapes let it pass
    const bool square = W.shape()[0] == W.shape()[1];
    t.grad_o[l] = product(upstream, false, W, formula == weight_not_transposed && square);
    const std::string& sigma = layers[l].activation;
    // sigma'(Z_l), or what the formula puts in its place
    const Matrix slope = formula == derivative_missing     ? Matrix(xt::ones_like(t.z[l]))
                         : formula == derivative_at_output ? activation_derivative(sigma, t.o[l])
                         : formula == activation_for_derivative
                             ? t.o[l]
                             : activation_derivative(sigma, t.z[l]);
    t.grad_z[l] = t.grad_o[l] * slope;
  }
  for (std::size_t l = 0; l < L; ++l) {  // question 3, then question 4
    const Matrix& below = l == 0 ? input : t.o[l - 1];
    const bool square = layers[l].W.shape()[0] == layers[l].W.shape()[1];
    t.grad_W.at(l) = formula == grad_W_transposed && square
                         ? product(below, true, t.grad_z[l], false)
                         : product(t.grad_z[l], true, below, false);
    t.grad_b.at(l) = xt::zeros<double>({t.grad_z[l].shape()[1]});
    for (std::size_t i = 0; i < B; ++i)
      for (std::size_t j = 0; j < t.grad_b[l].size(); ++j) t.grad_b[l](j) += t.grad_z[l](i, j);
    t.W_next.push_back(layers[l].W - lr * t.grad_W[l]);
    t.b_next.push_back(layers[l].b - lr * t.grad_b[l]);
  }
  return t;
}

VerifyReport verify_trace(const Network& net, const BackpropTrace& trace,
                          const VerifyOptions& options) {
  const std::vector<DenseLayer>& layers = net.layers();
  std::vector<std::pair<std::string, Tensor>> params;
  std::vector<Tensor> claimed;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    params.emplace_back("W_" + std::to_string(l + 1), Tensor(layers[l].W));
    params.emplace_back("b_" + std::to_string(l + 1), Tensor(layers[l].b));
    claimed.emplace_back(trace.grad_W.at(l));
    claimed.emplace_back(trace.grad_b.at(l));
  }
  const TensorFn loss = [&net](const std::vector<Tensor>& p) {
    Tensor o(net.x());
    for (std::size_t l = 0; l < net.layers().size(); ++l)
      o = nn::make_activation(net.layers()[l].activation)
              ->forward(linear(o, p[2 * l], p[2 * l + 1]));
    return softmax_cross_entropy(o, net.y());
  };
  return verify_gradients(loss, params, claimed, options);
}

BackpropTrace tape_backprop(const Network& net) {
  const std::vector<DenseLayer>& layers = net.layers();
  std::vector<Tensor> weights, biases, zs, os;
  Tensor o(net.x());
  for (const DenseLayer& layer : layers) {
    weights.emplace_back(layer.W, true);
    biases.emplace_back(layer.b, true);
    zs.push_back(linear(o, weights.back(), biases.back()));
    o = nn::make_activation(layer.activation)->forward(zs.back());
    os.push_back(o);
  }
  const Tensor loss = softmax_cross_entropy(zs.back(), net.y());
  std::vector<Tensor> wanted = os;
  wanted.insert(wanted.end(), zs.begin(), zs.end());
  wanted.insert(wanted.end(), weights.begin(), weights.end());
  wanted.insert(wanted.end(), biases.begin(), biases.end());
  const std::vector<Tensor> g = grad({loss}, wanted, {}, true);
  loss.backward();
  std::vector<Tensor> params = weights;
  params.insert(params.end(), biases.begin(), biases.end());
  nn::SGD(params, {.lr = net.lr()}).step();

  const std::size_t L = layers.size();
  BackpropTrace t;
  for (std::size_t l = 0; l < L; ++l) {
    t.z.push_back(zs[l].value<double>());
    t.o.push_back(os[l].value<double>());
    t.grad_o.push_back(g[l].value<double>());
    t.grad_z.push_back(g[L + l].value<double>());
    t.grad_W.push_back(g[2 * L + l].value<double>());
    t.grad_b.push_back(g[3 * L + l].value<double>());
    t.W_next.push_back(weights[l].value<double>());
    t.b_next.push_back(biases[l].value<double>());
  }
  t.p = softmax(zs.back(), 1).value<double>();
  t.loss = loss.item();
  return t;
}

const QuantityDifference& Comparison::find(const std::string& quantity, std::size_t layer) const {
  for (const QuantityDifference& d : differences)
    if (d.quantity == quantity && d.layer == layer) return d;
  throw Error("no difference recorded for " + quantity + " of layer " + std::to_string(layer));
}

Comparison compare_traces(const BackpropTrace& a, const BackpropTrace& b, double tolerance) {
  Comparison out{.differences = {}, .tolerance = tolerance, .first_disagreement = std::nullopt};
  auto diff = [&](const std::string& quantity, std::size_t layer, const Matrix& u,
                  const Matrix& v) {
    const WorstEntry w = worst_entry(u, v);
    out.differences.push_back({quantity, layer, index_str(w.flat, u.shape()), w.abs_error,
                               w.rel_error});
    if (!out.first_disagreement && !(w.rel_error <= tolerance))
      out.first_disagreement = out.differences.back();
  };
  const std::size_t L = a.z.size();
  for (std::size_t l = 0; l < L; ++l) {
    diff("z", l + 1, a.z[l], b.z[l]);
    diff("o", l + 1, a.o[l], b.o[l]);
  }
  diff("p", 0, a.p, b.p);
  diff("loss", 0, Matrix{a.loss}, Matrix{b.loss});
  for (std::size_t l = L; l-- > 0;) {
    diff("grad_o", l + 1, a.grad_o[l], b.grad_o[l]);
    diff("grad_z", l + 1, a.grad_z[l], b.grad_z[l]);
    diff("grad_W", l + 1, a.grad_W[l], b.grad_W[l]);
    diff("grad_b", l + 1, a.grad_b[l], b.grad_b[l]);
    diff("W_next", l + 1, a.W_next[l], b.W_next[l]);
    diff("b_next", l + 1, a.b_next[l], b.b_next[l]);
  }
  return out;
}

}  // namespace walkthrough
