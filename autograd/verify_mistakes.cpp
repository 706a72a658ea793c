// The verifier's mistake search. Wrong claimed gradients are explained by recomputing every
// parameter's gradient once per candidate mistake, each applied at one op of the loss's recorded
// graph (the engine asks the probe before each node's backward), and keeping the candidates whose
// gradients equal the claims. Nothing is read from the pattern of the wrong values, so the answer
// does not depend on the batch size or on which entries happen to be zero.
//
// An op is a unit: one node, or the nodes of one call of a composite op (silu, mean) together.
// Units are named by op and, when there are several of one name, by their place in forward order
// ("tanh #2"); their layer is the parameters they (or the op feeding them) take.
#include "autograd/detail/mistakes.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"

namespace xgrad::detail {

void GraphRecorder::recorded(Node& node, const Tensor& out, std::span<const Tensor* const> inputs) {
  Entry entry{NodeRef(&node), out.detach(), {}};
  for (const Tensor* t : inputs) entry.inputs.push_back(t->detach());
  entries_.push_back(std::move(entry));
}

namespace {

using Activation = std::function<Tensor(const Tensor&)>;

xt::xarray<double> values_of(const Tensor& t) {
  return cast(t.detach(), Dtype::float64).value<double>();
}

double max_abs(const xt::xarray<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

// The first (z, a) with z clearly below 0, to read an activation's parameter off; false if none.
bool negative_entry(const Tensor& z, const Tensor& a, double& z0, double& a0) {
  const xt::xarray<double> zs = values_of(z), as = values_of(a);
  for (std::size_t i = 0; i < zs.size(); ++i)
    if (zs.data()[i] < -1e-3) {
      z0 = zs.data()[i];
      a0 = as.data()[i];
      return true;
    }
  return false;
}

// The activation the op `op` applies, at any point, its parameter (leaky_relu's slope, elu's
// alpha) read off the recorded input z and output a; empty for an op that is not an activation.
// The table test of tests/examples/walkthrough checks that every activation of nn's table is here.
Activation activation_of(std::string_view op, const Tensor& z, const Tensor& a) {
  if (op == "relu") return [](const Tensor& x) { return relu(x); };
  if (op == "sigmoid") return [](const Tensor& x) { return sigmoid(x); };
  if (op == "tanh") return [](const Tensor& x) { return tanh(x); };
  if (op == "gelu") return [](const Tensor& x) { return gelu(x); };
  if (op == "softplus") return [](const Tensor& x) { return softplus(x); };
  if (op == "silu") return [](const Tensor& x) { return silu(x); };
  if (op == "mish") return [](const Tensor& x) { return mish(x); };
  double z0 = 0, a0 = 0;
  if (op == "leaky_relu") {
    const double slope = negative_entry(z, a, z0, a0) ? a0 / z0 : 0.01;
    return [slope](const Tensor& x) { return leaky_relu(x, slope); };
  }
  if (op == "elu") {
    const double alpha = negative_entry(z, a, z0, a0) ? a0 / std::expm1(z0) : 1.0;
    return [alpha](const Tensor& x) { return elu(x, alpha); };
  }
  return {};
}

// sigma'(p), entrywise, by the tape.
Tensor derivative_at(const Activation& sigma, const Tensor& p) {
  const GradModeGuard recording(true);
  Tensor x = p.detach();
  x.requires_grad_(true);
  return grad({sum(sigma(x))}, {x})[0].detach();
}

const void* target_of(const Edge& e) {
  return e.fn ? static_cast<const void*>(e.fn.get()) : static_cast<const void*>(e.leaf.get());
}

struct Unit {
  std::string op;                      // the composite's name or the node's
  std::vector<Node*> members{};        // in forward order
  std::size_t first = 0, last = 0;     // the entries of its first member and of the one that
                                       // gives the unit's output
  std::string label{};                 // "tanh #2"
  std::vector<const void*> targets{};  // what the edges leaving the unit point to, each once
  Activation activation{};             // an elementwise activation: sigma,
  std::size_t input_edge = 0;          // and the last member's edge to its input z
};

// The loss's graph as units, with what each can reach.
class Graph {
 public:
  explicit Graph(const MistakeQuestion& q);

  const MistakeQuestion& q;
  std::vector<Unit> units;
  std::unordered_map<const Node*, std::size_t> unit_of;
  std::unordered_map<const void*, std::size_t> param_of;  // a parameter's TensorImpl -> index
  std::unordered_map<const void*, Shape> shape_of;        // a target's shape
  std::unordered_map<const void*, std::vector<std::size_t>> users;  // target -> units using it
  std::vector<std::vector<bool>> reaches;  // unit -> the parameters its gradients flow into

  const GraphRecorder::Entry& entry(std::size_t i) const { return q.graph.entries()[i]; }
  bool reaches_wrong(std::size_t unit) const;
  bool target_reaches_wrong(const void* target) const;
  std::string describe(const void* target) const;  // "W_2", "the output of tanh #1"
  std::string layer(const Unit& u) const;

 private:
  std::vector<bool> reach_of(const void* target) const;
};

Graph::Graph(const MistakeQuestion& question) : q(question) {
  for (std::size_t i = 0; i < q.params.size(); ++i) param_of[q.params[i].impl()] = i;
  // The nodes the loss depends on.
  std::unordered_map<const Node*, bool> on_graph;
  std::vector<const Node*> stack;
  if (const Node* root = q.loss.grad_fn()) stack.push_back(root);
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (on_graph[n]) continue;
    on_graph[n] = true;
    for (std::size_t k = 0; k < n->num_inputs(); ++k)
      if (n->edge(k).fn) stack.push_back(n->edge(k).fn.get());
  }
  // Units in forward order: a composite call's nodes together.
  std::unordered_map<std::uint64_t, std::size_t> unit_of_call;
  const auto& entries = q.graph.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Node* node = entries[i].node.get();
    if (!on_graph.count(node)) continue;
    std::size_t u = units.size();
    if (node->composite()) {
      const auto [it, added] = unit_of_call.try_emplace(node->composite_call(), units.size());
      u = it->second;
      if (added) units.push_back({.op = node->composite(), .first = i});
    } else {
      units.push_back({.op = std::string(node->name()), .first = i});
    }
    units[u].members.push_back(node);
    units[u].last = i;
    unit_of[node] = u;
  }
  std::unordered_map<std::string, std::size_t> count, seen;
  for (const Unit& u : units) ++count[u.op];
  reaches.assign(units.size(), std::vector<bool>(q.params.size(), false));
  for (std::size_t u = 0; u < units.size(); ++u) {
    Unit& unit = units[u];
    unit.label = unit.op + (count[unit.op] > 1 ? " #" + std::to_string(++seen[unit.op]) : "");
    for (const Node* m : unit.members)
      for (std::size_t k = 0; k < m->num_inputs(); ++k) {
        const Edge& e = m->edge(k);
        const void* t = target_of(e);
        if (!e.requires_grad() ||
            (e.fn && unit_of.count(e.fn.get()) && unit_of.at(e.fn.get()) == u))
          continue;
        if (std::find(unit.targets.begin(), unit.targets.end(), t) != unit.targets.end()) continue;
        unit.targets.push_back(t);
        shape_of[t] = e.shape;
        users[t].push_back(u);
        const std::vector<bool> r = reach_of(t);  // earlier units: already known
        for (std::size_t j = 0; j < r.size(); ++j) reaches[u][j] = reaches[u][j] || r[j];
      }
    // An elementwise activation: one input, taken by the member that gives the output.
    const GraphRecorder::Entry& last = entries[unit.last];
    if (unit.targets.size() != 1 || last.out.shape() != shape_of[unit.targets[0]]) continue;
    for (std::size_t k = 0; k < last.node->num_inputs(); ++k)
      if (target_of(last.node->edge(k)) == unit.targets[0]) {
        unit.input_edge = k;
        unit.activation = activation_of(unit.op, last.inputs[k], last.out);
        break;
      }
  }
}

std::vector<bool> Graph::reach_of(const void* target) const {
  std::vector<bool> r(q.params.size(), false);
  if (const auto p = param_of.find(target); p != param_of.end()) r[p->second] = true;
  if (const auto u = unit_of.find(static_cast<const Node*>(target)); u != unit_of.end())
    r = reaches[u->second];
  return r;
}

bool Graph::reaches_wrong(std::size_t unit) const {
  for (std::size_t j = 0; j < q.params.size(); ++j)
    if (q.wrong[j] && reaches[unit][j]) return true;
  return false;
}

bool Graph::target_reaches_wrong(const void* target) const {
  const std::vector<bool> r = reach_of(target);
  for (std::size_t j = 0; j < r.size(); ++j)
    if (q.wrong[j] && r[j]) return true;
  return false;
}

std::string Graph::describe(const void* target) const {
  if (const auto p = param_of.find(target); p != param_of.end()) return q.names[p->second];
  if (const auto u = unit_of.find(static_cast<const Node*>(target)); u != unit_of.end())
    return "the output of " + units[u->second].label;
  return "an input of the loss";
}

std::string Graph::layer(const Unit& unit) const {
  const auto own = [&](const Unit& u) {
    std::vector<std::string> names;
    for (const void* t : u.targets)
      if (const auto p = param_of.find(t); p != param_of.end()) names.push_back(q.names[p->second]);
    return join(names, ", ");
  };
  if (std::string mine = own(unit); !mine.empty()) return mine;
  for (const void* t : unit.targets)
    if (const auto u = unit_of.find(static_cast<const Node*>(t)); u != unit_of.end())
      if (std::string theirs = own(units[u->second]); !theirs.empty()) return theirs;
  return "";
}

struct Candidate {
  MistakeKind kind = MistakeKind::sign;
  /// Where it is: a unit, with its factor (activation kinds: in place of sigma'(z);
  /// derivative_extra: sigma'(t) at the unit's output t; weight_not_transposed: W) or its target
  /// (sign, transposed, path_omitted: the input whose gradient changes). A wrong rule is at
  /// several: every activation of one op, every linear op with a square weight.
  struct Site {
    std::size_t unit = 0;
    Tensor factor{};
    const void* target = nullptr;
  };
  std::vector<Site> at{};
  double n = 1;         // mean kinds: the output gradient is multiplied by n before the backward
  std::string sigma{};  // derivative_extra: the activation's name

  std::size_t unit() const { return at.front().unit; }
  const void* target() const { return at.front().target; }
  bool every() const { return at.size() > 1; }
};

// The unit that made activation unit `a`'s input, if that input is an op's whole output.
std::optional<std::size_t> producer(const Graph& graph, std::size_t a) {
  const auto* node = static_cast<const Node*>(graph.units[a].targets.at(0));
  const auto it = graph.unit_of.find(node);
  if (it == graph.unit_of.end() || graph.units[it->second].members.back() != node)
    return std::nullopt;
  return it->second;
}

// A backward sweep with the candidate's mistake: the engine calls this before each node's
// backward.
class Replay final : public GraphProbe {
 public:
  Replay(const Graph& graph, const Candidate& c) : graph_(graph), c_(c) {}

  bool backward(Node& node, const Tensor& g, std::span<Tensor> grads) override {
    const auto it = graph_.unit_of.find(&node);
    if (it == graph_.unit_of.end()) return false;
    const std::size_t u = it->second;
    const Unit& unit = graph_.units[u];
    const bool last = &node == unit.members.back();
    if (c_.kind == MistakeKind::derivative_missing_below) return below(node, u, last, g, grads);
    const auto here = std::find_if(c_.at.begin(), c_.at.end(),
                                   [u](const Candidate::Site& a) { return a.unit == u; });
    if (here == c_.at.end()) return false;
    const Tensor& factor = here->factor;
    switch (c_.kind) {
      case MistakeKind::derivative_missing:
      case MistakeKind::derivative_at_output:
      case MistakeKind::value_for_derivative:
        // dL/dz from dL/da directly; the unit's other members get nothing.
        if (last) grads[unit.input_edge] = factor.defined() ? mul(g, factor) : g;
        return true;
      case MistakeKind::derivative_extra:
        if (!last) return false;
        node.backward(mul(g, factor), grads);
        return true;
      case MistakeKind::mean_missing:
      case MistakeKind::mean_extra:
        if (!last) return false;
        node.backward(g * c_.n, grads);
        return true;
      case MistakeKind::weight_not_transposed:  // linear: y = x W^T + b, so dL/dx = g W
        node.backward(g, grads);
        grads[0] = matmul(g, transpose(factor));
        return true;
      default:
        break;
    }
    node.backward(g, grads);
    for (std::size_t k = 0; k < grads.size(); ++k) {
      const Edge& e = node.edge(k);
      if (!grads[k].defined() || target_of(e) != here->target) continue;
      if (c_.kind == MistakeKind::sign)
        grads[k] = neg(grads[k]);
      else if (c_.kind == MistakeKind::transposed)
        grads[k] = transpose(grads[k].shape() == e.shape ? grads[k] : sum_to(grads[k], e.shape))
                       .contiguous();
      else
        grads[k] = Tensor();
    }
    return true;
  }

 private:
  // derivative_missing_below: an activation of the candidate keeps dL/da for the op that made its
  // input z, which then passes dL/da instead of dL/dz on to the ops below it (its parameters still
  // get theirs from dL/dz).
  bool below(Node& node, std::size_t u, bool last, const Tensor& g, std::span<Tensor> grads) {
    if (!last) return false;
    for (const Candidate::Site& a : c_.at)
      if (a.unit == u) {
        above_[*producer(graph_, u)] = g;
        return false;
      }
    const auto it = above_.find(u);
    if (it == above_.end()) return false;
    node.backward(g, grads);
    std::vector<Tensor> passed(grads.size());
    node.backward(it->second, passed);
    for (std::size_t k = 0; k < grads.size(); ++k)
      if (node.edge(k).fn) grads[k] = passed[k];
    return true;
  }

  const Graph& graph_;
  const Candidate& c_;
  std::unordered_map<std::size_t, Tensor> above_;
};

bool square(const Shape& s) { return s.size() == 2 && s[0] == s[1] && s[0] > 1; }

// Unit u as a linear op with a square weight: the site with its weight, else nothing.
std::optional<Candidate::Site> square_linear(const Graph& graph, std::size_t u) {
  const Unit& unit = graph.units[u];
  const GraphRecorder::Entry& last = graph.entry(unit.last);
  if (unit.op != "linear" || last.inputs.size() < 2 || !square(last.inputs[1].shape()))
    return std::nullopt;
  return Candidate::Site{u, last.inputs[1]};
}

// The candidates whose unit reaches a wrong claim, nearest the loss first, about `limit` of them
// (their factors are computed here); the activation kinds also at every activation of one op.
std::vector<Candidate> candidates(const Graph& graph, std::size_t limit) {
  std::vector<std::pair<std::string, Activation>> sigmas;   // the activations the graph applies
  std::map<std::string, std::vector<std::size_t>> applied;  // op -> its activation units
  for (std::size_t u = 0; u < graph.units.size(); ++u)
    if (const Unit& unit = graph.units[u]; unit.activation) {
      if (applied[unit.op].empty()) sigmas.emplace_back(unit.op, unit.activation);
      applied[unit.op].push_back(u);
    }
  // The activation kinds at the units `units`.
  const auto activation_kinds = [&](const std::vector<std::size_t>& units,
                                    std::vector<Candidate>& out) {
    Candidate missing{.kind = MistakeKind::derivative_missing},
        at_output{.kind = MistakeKind::derivative_at_output},
        value{.kind = MistakeKind::value_for_derivative},
        below{.kind = MistakeKind::derivative_missing_below};
    for (std::size_t u : units) {
      const Tensor& a = graph.entry(graph.units[u].last).out;
      missing.at.push_back({u});
      at_output.at.push_back({u, derivative_at(graph.units[u].activation, a)});
      value.at.push_back({u, a});
      if (producer(graph, u)) below.at.push_back({u});
    }
    for (Candidate* c : {&missing, &at_output, &value, &below})
      if (c->at.size() == units.size()) out.push_back(std::move(*c));
  };
  std::vector<Candidate> out;
  for (std::size_t u = graph.units.size(); u-- > 0 && out.size() < limit;) {
    const Unit& unit = graph.units[u];
    if (!graph.reaches_wrong(u)) continue;
    const GraphRecorder::Entry& last = graph.entry(unit.last);
    if (unit.activation) {
      activation_kinds({u}, out);
      if (const std::vector<std::size_t>& all = applied[unit.op]; all.size() > 1 && all.back() == u)
        activation_kinds(all, out);
    } else if (last.out.numel() > 1 && is_floating_point(last.out.dtype())) {
      for (const auto& [name, sigma] : sigmas)
        out.push_back({.kind = MistakeKind::derivative_extra,
                       .at = {{u, derivative_at(sigma, last.out)}},
                       .sigma = name});
    }
    // mean(x) = sum(x) / N: N from the sizes of x and of the result.
    const double n = unit.op == "mean"
                         ? static_cast<double>(graph.entry(unit.first).inputs.at(0).numel()) /
                               static_cast<double>(std::max<std::size_t>(last.out.numel(), 1))
                         : unit.members.back()->averaged_over();
    if (n > 1) {
      out.push_back({.kind = MistakeKind::mean_missing, .at = {{u}}, .n = n});
      out.push_back({.kind = MistakeKind::mean_extra, .at = {{u}}, .n = 1 / n});
    }
    if (const std::optional<Candidate::Site> w = square_linear(graph, u);
        w && graph.target_reaches_wrong(target_of(unit.members.back()->edge(0))))
      out.push_back({.kind = MistakeKind::weight_not_transposed, .at = {*w}});
    for (const void* t : unit.targets) {
      if (!graph.target_reaches_wrong(t)) continue;
      out.push_back({.kind = MistakeKind::sign, .at = {{.unit = u, .target = t}}});
      if (square(graph.shape_of.at(t)))
        out.push_back({.kind = MistakeKind::transposed, .at = {{.unit = u, .target = t}}});
      if (graph.users.at(t).size() >= 2)
        out.push_back({.kind = MistakeKind::path_omitted, .at = {{.unit = u, .target = t}}});
    }
  }
  // A wrong rule for linear layers, applied at each one with a square weight: W for W^T going
  // back, or every dW transposed.
  Candidate through_w{.kind = MistakeKind::weight_not_transposed},
      dw{.kind = MistakeKind::transposed};
  for (std::size_t u = graph.units.size(); u-- > 0;)
    if (const std::optional<Candidate::Site> w = square_linear(graph, u)) {
      if (graph.units[u].members.back()->needs_grad(0)) through_w.at.push_back(*w);
      if (graph.units[u].members.back()->needs_grad(1))
        dw.at.push_back({.unit = u, .target = target_of(graph.units[u].members.back()->edge(1))});
    }
  for (Candidate* c : {&through_w, &dw})
    if (c->every()) out.push_back(std::move(*c));
  return out;
}

// The mistake's words, place and quantity.
Mistake words(const Graph& graph, const Candidate& c) {
  const Unit& unit = graph.units[c.unit()];
  const GraphRecorder::Entry& last = graph.entry(unit.last);
  Mistake m;
  m.kind = c.kind;
  m.node = unit.label;
  m.layer = graph.layer(unit);
  if (c.every()) {
    std::vector<std::string> labels, layers;
    for (const Candidate::Site& site : c.at) {
      labels.push_back(graph.units[site.unit].label);
      if (std::string l = graph.layer(graph.units[site.unit]); !l.empty()) layers.push_back(l);
    }
    m.node = "every " + unit.op + " (" + join(labels, ", ") + ")";
    m.layer = join(layers, ", ");
  }
  const std::string& s = unit.op;
  const std::string where = c.every() ? "every " + s : unit.label;
  const std::string at_input =
      "dL/dz at the input z of " + where +
      (c.every() ? "" : ", shape " + shape_str(last.inputs[unit.input_edge].shape()));
  const void* target = c.target();
  const std::string into = target ? graph.describe(target) : "";
  const std::string gradient_into =
      target ? "dL/d(" + into + "), shape " + shape_str(graph.shape_of.at(target)) : "";
  const auto number = [](double x) {
    std::ostringstream os;
    os << x;
    return os.str();
  };
  switch (c.kind) {
    case MistakeKind::derivative_missing:
      m.what = "the activation's derivative left out: dL/dz = dL/da * " + s +
               "'(z) written as dL/dz = dL/da";
      m.quantity = at_input;
      break;
    case MistakeKind::derivative_missing_below:
      m.what =
          "the activation's derivative left out of the gradient passed to the layer below: "
          "the op that makes z passes on dL/da (W^T dL/da in column form) where dL/dz = "
          "dL/da * " +
          s + "'(z) belongs, while its own parameters get theirs from dL/dz";
      m.quantity = "the gradient passed below " + where;
      break;
    case MistakeKind::derivative_at_output:
      m.what = "the derivative taken at the activation's output: " + s + "'(a), a = " + s +
               "(z), in place of " + s + "'(z)";
      m.quantity = at_input;
      break;
    case MistakeKind::value_for_derivative:
      m.what = "the activation in place of its derivative: " + s + "(z) in place of " + s + "'(z)";
      m.quantity = at_input;
      break;
    case MistakeKind::derivative_extra:
      m.what = "an activation's derivative where no activation is: dL/dt multiplied by " + c.sigma +
               "'(t) at the output t of " + unit.label;
      m.quantity =
          "dL/dt at the output t of " + unit.label + ", shape " + shape_str(last.out.shape());
      break;
    case MistakeKind::mean_missing:
    case MistakeKind::mean_extra: {
      const bool missing = c.kind == MistakeKind::mean_missing;
      const std::string count = number(missing ? c.n : 1 / c.n);
      m.what = std::string(missing ? "the mean's 1/N left out" : "the mean's 1/N applied twice") +
               " (N = " + count + ") at " + unit.label + ": every gradient from there on is " +
               count + " times too " + (missing ? "large" : "small");
      m.quantity = "dL/d(" + graph.describe(unit.targets.at(0)) + "), shape " +
                   shape_str(graph.shape_of.at(unit.targets.at(0)));
      break;
    }
    case MistakeKind::sign:
      m.what = "the sign flipped in the gradient " + unit.label + " sends to " + into;
      m.quantity = gradient_into;
      break;
    case MistakeKind::transposed:
      m.what = c.every() ? "every square weight's gradient transposed (O^T G in place of G^T O)"
                         : "the gradient " + unit.label + " sends to " + into + " transposed";
      m.quantity = c.every() ? "dL/dW of every linear with a square W" : gradient_into;
      break;
    case MistakeKind::weight_not_transposed: {
      const void* x = target_of(unit.members.back()->edge(0));
      const std::string w =
          c.every() ? "W" : graph.describe(target_of(unit.members.back()->edge(1)));
      m.what = "the weight not transposed: the gradient " + unit.label + " sends back to " +
               graph.describe(x) + " goes through " + w + "^T where " + w +
               " belongs (in column form: " + w + " delta in place of " + w + "^T delta)";
      m.quantity = "dL/d(" + graph.describe(x) + "), shape " + shape_str(graph.shape_of.at(x));
      break;
    }
    case MistakeKind::path_omitted: {
      std::vector<std::string> names;
      for (std::size_t u : graph.users.at(target)) names.push_back(graph.units[u].label);
      m.what = "a path left out: " + into + " is used by " + std::to_string(names.size()) +
               " ops (" + join(names, ", ") + "), and the gradient through " + unit.label +
               " is missing from dL/d(" + into + ")";
      m.quantity = gradient_into;
      break;
    }
  }
  return m;
}

}  // namespace

MistakeAnswer find_mistakes(const MistakeQuestion& q, const VerifyOptions& o) {
  MistakeAnswer answer;
  const Graph graph(q);
  std::vector<Candidate> tried = candidates(graph, o.max_mistake_candidates);
  if (tried.size() > o.max_mistake_candidates) tried.resize(o.max_mistake_candidates);
  answer.candidates = tried.size();
  const std::size_t np = q.params.size();
  std::vector<xt::xarray<double>> claimed;
  std::vector<double> scale;
  for (std::size_t i = 0; i < np; ++i) {
    claimed.push_back(values_of(q.claimed[i]));
    scale.push_back(std::max({max_abs(claimed[i]), max_abs(values_of(q.truth[i])), 1e-300}));
  }
  struct Reproduced {
    std::size_t candidate;
    std::vector<bool> match;
    std::vector<double> rel;
  };
  std::vector<Reproduced> useful;
  for (std::size_t c = 0; c < tried.size(); ++c) {
    Replay replay(graph, tried[c]);
    std::vector<Tensor> got;
    try {
      const ProbeGuard probe(&replay);
      got = grad({q.loss}, q.params, {}, true, false, true);
    } catch (const Error&) {
      continue;  // a mistake that cannot be computed (shapes) reproduces nothing
    }
    Reproduced r{c, std::vector<bool>(np), std::vector<double>(np)};
    bool any = false;
    for (std::size_t i = 0; i < np; ++i) {
      const xt::xarray<double> g = got[i].defined()
                                       ? values_of(got[i])
                                       : xt::xarray<double>(xt::zeros<double>(claimed[i].shape()));
      double diff = 0;
      for (std::size_t j = 0; j < g.size(); ++j)
        diff = std::max(diff, std::abs(g.data()[j] - claimed[i].data()[j]));
      if (std::isnan(diff)) diff = INFINITY;
      r.rel[i] = diff / scale[i];
      r.match[i] = r.rel[i] <= o.mistake_rtol;
      any = any || (r.match[i] && q.wrong[i]);
    }
    if (any) useful.push_back(std::move(r));
  }
  // Greedily: the candidate that reproduces the most wrong claims still unexplained (then the most
  // claims in all; then the one nearest the loss), until all are explained or none is; at most 3.
  std::vector<bool> open = q.wrong;
  for (int pick = 0; pick < 3; ++pick) {
    const auto score = [&](const Reproduced& r) {
      std::size_t mine = 0, all = 0;
      for (std::size_t i = 0; i < np; ++i) {
        mine += r.match[i] && open[i];
        all += r.match[i];
      }
      return std::pair{mine, all};
    };
    const Reproduced* best = nullptr;
    for (const Reproduced& r : useful)
      if (score(r).first > 0 && (!best || score(r) > score(*best))) best = &r;
    if (!best) break;
    Mistake m = words(graph, tried[best->candidate]);
    for (std::size_t i = 0; i < np; ++i) {
      if (best->match[i] && q.wrong[i]) {
        m.explains.push_back(q.names[i]);
        m.max_rel_difference = std::max(m.max_rel_difference, best->rel[i]);
      } else if (q.wrong[i]) {
        m.unexplained.push_back(q.names[i]);
      } else if (best->match[i]) {
        m.kept.push_back(q.names[i]);
      }
    }
    for (const Reproduced& r : useful)
      if (&r != best && r.match == best->match && m.equivalent.size() < 4) {
        const Mistake e = words(graph, tried[r.candidate]);
        m.equivalent.push_back(e.what + " (at " + e.node + ")");
      }
    for (std::size_t i = 0; i < np; ++i) open[i] = open[i] && !best->match[i];
    answer.mistakes.push_back(std::move(m));
  }
  return answer;
}

}  // namespace xgrad::detail

namespace xgrad {

std::string_view mistake_kind_name(MistakeKind kind) {
  switch (kind) {
    case MistakeKind::derivative_missing:
      return "derivative_missing";
    case MistakeKind::derivative_missing_below:
      return "derivative_missing_below";
    case MistakeKind::derivative_at_output:
      return "derivative_at_output";
    case MistakeKind::value_for_derivative:
      return "value_for_derivative";
    case MistakeKind::derivative_extra:
      return "derivative_extra";
    case MistakeKind::mean_missing:
      return "mean_missing";
    case MistakeKind::mean_extra:
      return "mean_extra";
    case MistakeKind::sign:
      return "sign";
    case MistakeKind::transposed:
      return "transposed";
    case MistakeKind::weight_not_transposed:
      return "weight_not_transposed";
    case MistakeKind::path_omitted:
      return "path_omitted";
  }
  return "?";
}

std::string Mistake::str() const {
  std::ostringstream os;
  os << what << "\n    at " << node;
  if (!layer.empty()) os << " (" << layer << ")";
  os << "; it changes " << quantity << "\n    reproduces the claims of " << join(explains, ", ")
     << " (to " << std::setprecision(2) << max_rel_difference << ")";
  if (!kept.empty()) os << "; leaves " << join(kept, ", ") << " right, as claimed";
  if (!unexplained.empty()) os << "; not the wrong claims of " << join(unexplained, ", ");
  for (const std::string& e : equivalent) os << "\n    as would: " << e;
  return os.str();
}

}  // namespace xgrad
