// The source document's exercise, step by step: one SGD step through an MLP with a softmax
// cross-entropy loss, every quantity of its four questions computed twice, by the closed-form
// formulas (closed_form.hpp) and by the tape, side by side with the largest difference.
//
//   backprop_walkthrough                       a built-in, seeded network
//   backprop_walkthrough --spec net.json       your network (format: network_spec.hpp)
//   backprop_walkthrough --formula document    the document's literal question-2 rule, and the
//                                              mistake the verifier finds in it (other wrong
//                                              derivations: --formula derivative_at_output, ...)
//   backprop_walkthrough --json                one JSON object instead of tables
//   backprop_walkthrough --graph net.dot       the tape's graph of the loss, as Graphviz DOT
//
// Exit status: 0 when the closed form agrees with the tape, 1 when it does not, 2 for bad input.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/graph.hpp"
#include "examples/common/cli.hpp"
#include "examples/walkthrough/closed_form.hpp"
#include "examples/walkthrough/network_spec.hpp"
#include "nn/activation.hpp"
#include "nn/loss.hpp"

using namespace xgrad;
using namespace walkthrough;

namespace {

// A small network with two non-linear hidden layers, as the document's, with fixed values.
Network builtin_network() {
  Generator gen(2024);
  auto draw = [&](const Shape& shape, double scale) {
    Matrix m = randn(shape, {.dtype = kFloat64}, gen).value<double>();
    for (double& v : m) v = std::round(v * scale * 100) / 100;  // two decimals: easy to follow
    return m;
  };
  std::vector<DenseLayer> layers = {{draw({5, 4}, 0.6), draw({5}, 0.3), "relu"},
                                    {draw({4, 5}, 0.6), draw({4}, 0.3), "tanh"},
                                    {draw({3, 4}, 0.6), draw({3}, 0.3), "identity"}};
  return Network(std::move(layers), Matrix{{0.5, -1.2, 0.8, 2.0}}, tensor({2}, {.dtype = kInt64}),
                 0.1);
}

nlohmann::json to_json(const Matrix& m) {
  if (m.dimension() == 1) return nlohmann::json(std::vector<double>(m.begin(), m.end()));
  nlohmann::json rows = nlohmann::json::array();
  for (std::size_t r = 0; r < m.shape()[0]; ++r)
    rows.push_back(
        std::vector<double>(m.data() + r * m.shape()[1], m.data() + (r + 1) * m.shape()[1]));
  return rows;
}

nlohmann::json trace_json(const BackpropTrace& t, const std::vector<DenseLayer>& layers) {
  nlohmann::json out = {{"loss", t.loss}, {"p", to_json(t.p)}, {"layers", nlohmann::json::array()}};
  for (std::size_t l = 0; l < t.z.size(); ++l)
    out["layers"].push_back({{"activation", layers[l].activation},
                             {"z", to_json(t.z[l])},
                             {"o", to_json(t.o[l])},
                             {"grad_o", to_json(t.grad_o[l])},
                             {"grad_z", to_json(t.grad_z[l])},
                             {"grad_W", to_json(t.grad_W[l])},
                             {"grad_b", to_json(t.grad_b[l])},
                             {"W_next", to_json(t.W_next[l])},
                             {"b_next", to_json(t.b_next[l])}});
  return out;
}

// The loss as the tape records it, for --graph: the network's layers, then the softmax
// cross-entropy.
Tensor tape_loss(const Network& net) {
  Tensor o(net.x());
  for (const DenseLayer& layer : net.layers())
    o = nn::make_activation(layer.activation)
            ->forward(linear(o, Tensor(layer.W, true), Tensor(layer.b, true)));
  return softmax_cross_entropy(o, net.y());
}

// ---- tables -----------------------------------------------------------------------------------

class Tables {
 public:
  Tables(const BackpropTrace& closed, const BackpropTrace& tape, const Comparison& comparison)
      : closed_(closed), tape_(tape), comparison_(comparison) {}

  // Prints one quantity: its closed-form value and how far the tape's is; the tape's own value
  // too when they disagree.
  void show(const std::string& label, const std::string& quantity, std::size_t layer,
            const Matrix& closed, const Matrix& tape) const {
    const QuantityDifference& d = comparison_.find(quantity, layer);
    const bool agree = d.rel <= comparison_.tolerance;
    std::printf("  %-9s%s   tape: max |diff| %.2g%s\n", label.c_str(), rows(closed, 11).c_str(),
                d.max_abs, agree ? "" : ("  <-- DISAGREES at " + d.index).c_str());
    if (!agree) std::printf("  %-9s%s\n", "(tape)", rows(tape, 11).c_str());
  }

  void layer(std::size_t l, const std::string& part) const {
    const std::size_t i = l - 1;
    const std::string n = std::to_string(l);
    if (part == "forward") {
      show("z_" + n, "z", l, closed_.z[i], tape_.z[i]);
      show("o_" + n, "o", l, closed_.o[i], tape_.o[i]);
    } else if (part == "backward") {
      show("grad_o_" + n, "grad_o", l, closed_.grad_o[i], tape_.grad_o[i]);
      show("grad_z_" + n, "grad_z", l, closed_.grad_z[i], tape_.grad_z[i]);
      show("grad_W_" + n, "grad_W", l, closed_.grad_W[i], tape_.grad_W[i]);
      show("grad_b_" + n, "grad_b", l, closed_.grad_b[i], tape_.grad_b[i]);
    } else {
      show("W_" + n, "W_next", l, closed_.W_next[i], tape_.W_next[i]);
      show("b_" + n, "b_next", l, closed_.b_next[i], tape_.b_next[i]);
    }
  }

 private:
  // Rows of a matrix (or a vector as one row), aligned under each other.
  static std::string rows(const Matrix& m, int indent) {
    const std::size_t n = m.dimension() == 2 ? m.shape()[0] : 1;
    const std::size_t width = m.dimension() == 2 ? m.shape()[1] : m.size();
    std::string out;
    char cell[32];
    for (std::size_t r = 0; r < n; ++r) {
      if (r) out += "\n" + std::string(static_cast<std::size_t>(indent), ' ');
      out += "[";
      for (std::size_t c = 0; c < width; ++c) {
        std::snprintf(cell, sizeof cell, "%s%10.6f", c ? " " : "",
                      m.data()[r * width + c] + 0.0);  // + 0.0: no "-0.000000"
        out += cell;
      }
      out += "]";
    }
    return out;
  }

  const BackpropTrace& closed_;
  const BackpropTrace& tape_;
  const Comparison& comparison_;
};

void print_tables(const Network& net, BackpropFormula formula, const BackpropTrace& closed,
                  const BackpropTrace& tape, const Comparison& comparison) {
  const std::size_t L = net.layers().size();
  std::vector<std::size_t> widths = {net.x().shape()[1]};
  for (const DenseLayer& layer : net.layers()) widths.push_back(layer.W.shape()[0]);
  std::printf("One SGD step through a %zu-layer network (%s), batch of %zu, lr = %g\n", L,
              join(widths, " -> ").c_str(), net.x().shape()[0], net.lr());
  std::string labels;
  const auto& y = net.y().value<std::int64_t>();
  for (std::size_t i = 0; i < y.size(); ++i)
    labels += (i ? ", " : "") + std::to_string(y(i) + net.label_base());
  const std::size_t classes = net.layers().back().W.shape()[0];
  std::printf("Labels: y = %s, %s\n", labels.c_str(),
              net.label_base() == 1 ? ("1-based (classes 1.." + std::to_string(classes) +
                                       ", as the document numbers them)")
                                          .c_str()
                                    : ("0-based (classes 0.." + std::to_string(classes - 1) +
                                       "; \"label_base\": 1 in a spec takes the document's 1.." +
                                       std::to_string(classes) + ")")
                                          .c_str());
  if (formula == BackpropFormula::corrected || formula == BackpropFormula::document)
    std::printf("Question 2 by the %s rule: grad_o_l = %s\n",
                formula == BackpropFormula::corrected ? "corrected" : "document's",
                formula == BackpropFormula::corrected
                    ? "W_{l+1}^T grad_z_{l+1}  (grad_z = grad_o * sigma')"
                    : "W_{l+1}^T grad_o_{l+1}  (no sigma', as the document writes)");
  else
    std::printf("Formulas: the corrected ones with one wrong step, '%s' (closed_form.hpp)\n",
                backprop_formula_names()[static_cast<std::size_t>(formula)].c_str());
  std::printf(
      "Each value comes from the closed-form formulas; 'tape' is its largest difference from "
      "autograd.\n");
  const Tables t(closed, tape, comparison);
  std::printf("\nForward: z_l = W_l o_{l-1} + b_l, o_l = sigma_l(z_l), o_0 = x\n");
  for (std::size_t l = 1; l <= L; ++l) {
    std::printf("layer %zu (%s)\n", l,
                l == L ? "logits, no activation" : net.layers()[l - 1].activation.c_str());
    t.layer(l, "forward");
  }
  std::printf("\nSoftmax and loss (mean over the batch)\n");
  t.show("p", "p", 0, closed.p, tape.p);
  t.show("loss", "loss", 0, Matrix{closed.loss}, Matrix{tape.loss});
  std::printf(
      "\nBackward, layer %zu down to 1: grad_z_L = (p - e_y) / B, grad_W = grad_z^T o_{l-1}, "
      "grad_b = grad_z^T 1\n",
      L);
  for (std::size_t l = L; l >= 1; --l) {
    std::printf("layer %zu\n", l);
    t.layer(l, "backward");
  }
  std::printf("\nSGD update: W_l <- W_l - lr grad_W_l, b_l <- b_l - lr grad_b_l\n");
  for (std::size_t l = 1; l <= L; ++l) {
    std::printf("layer %zu\n", l);
    t.layer(l, "update");
  }
  double worst = 0;
  for (const QuantityDifference& d : comparison.differences) worst = std::max(worst, d.rel);
  const std::optional<QuantityDifference>& first = comparison.first_disagreement;
  if (!first)
    std::printf(
        "\nThe closed form agrees with the tape everywhere (largest relative difference %.2g).\n",
        worst);
  else
    std::printf(
        "\nMISMATCH: the closed form first disagrees with the tape at layer %zu, %s_%zu: max "
        "|difference| "
        "%.6g at %s (relative %.3g). Every quantity computed from it inherits the error.\n",
        first->layer, first->quantity.c_str(), first->layer, first->max_abs, first->index.c_str(),
        first->rel);
}

// The first quantity of a trace holding an Inf or a NaN ("z_1 [0, 2]"), or "".
std::string first_non_finite(const BackpropTrace& t) {
  auto scan = [](const std::string& name, const Matrix& m) -> std::string {
    for (std::size_t i = 0; i < m.size(); ++i)
      if (!std::isfinite(m.data()[i])) return name + " " + index_str(i, m.shape());
    return "";
  };
  std::string where = std::isfinite(t.loss) ? scan("p", t.p) : "loss";
  for (std::size_t l = 0; l < t.z.size() && where.empty(); ++l) {
    const std::string n = "_" + std::to_string(l + 1);
    for (const auto& [name, m] : {std::pair{"z" + n, &t.z[l]},
                                  {"o" + n, &t.o[l]},
                                  {"grad_o" + n, &t.grad_o[l]},
                                  {"grad_W" + n, &t.grad_W[l]},
                                  {"W_next" + n, &t.W_next[l]}})
      if (where.empty()) where = scan(name, *m);
  }
  return where;
}

// Computes both traces, prints them, and returns the exit status: 0 when they agree, 1 when not.
int run(const std::string& spec_path, const std::string& formula_name, bool json_output,
        const std::string& graph) {
  const Network net = spec_path.empty() ? builtin_network() : load_network_spec(spec_path);
  if (!graph.empty()) {
    try {
      write_dot(tape_loss(net), graph);
    } catch (const Error& e) {
      throw ValueError(std::string("--graph: ") + e.what());
    }
  }
  const BackpropFormula formula = backprop_formula(formula_name);
  const BackpropTrace closed = closed_form_backprop(net, formula);
  if (const std::string where = first_non_finite(closed); !where.empty())
    throw ValueError("the network's values leave double's range (" + where +
                     " is not finite): scale the spec's numbers down");
  const BackpropTrace tape = tape_backprop(net);
  const Comparison comparison = compare_traces(closed, tape);
  const std::optional<QuantityDifference>& first = comparison.first_disagreement;
  // Where they differ, the verifier's search says which single mistake makes these gradients.
  const std::vector<Mistake> mistakes =
      comparison.agree() ? std::vector<Mistake>{} : verify_trace(net, closed).mistakes;
  if (json_output) {
    nlohmann::json out = trace_json(closed, net.layers());
    out["formula"] = formula_name;
    out["lr"] = net.lr();
    out["agree"] = comparison.agree();
    out["tape"] = trace_json(tape, net.layers());
    out["differences"] = nlohmann::json::array();
    for (const QuantityDifference& d : comparison.differences)
      out["differences"].push_back({{"quantity", d.quantity},
                                    {"layer", d.layer},
                                    {"max_abs", d.max_abs},
                                    {"rel", d.rel},
                                    {"index", d.index}});
    out["first_disagreement"] = first ? nlohmann::json{{"quantity", first->quantity},
                                                       {"layer", first->layer},
                                                       {"max_abs", first->max_abs},
                                                       {"index", first->index}}
                                      : nlohmann::json(nullptr);
    out["mistakes"] = nlohmann::json::array();
    for (const Mistake& m : mistakes)
      out["mistakes"].push_back({{"kind", mistake_kind_name(m.kind)},
                                 {"node", m.node},
                                 {"what", m.what},
                                 {"explains", m.explains}});
    std::cout << out.dump() << "\n";
  } else {
    print_tables(net, formula, closed, tape, comparison);
    if (!mistakes.empty())
      std::printf("\nverify_gradients, on grad_W and grad_b, finds the mistake that makes them:\n");
    for (const Mistake& m : mistakes) std::printf("  %s\n", m.str().c_str());
  }
  return comparison.agree() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "One SGD step through the source document's network, by its closed-form formulas and by the "
      "tape, layer by layer."};
  std::string spec_path, formula_name = "corrected";
  bool json_output = false;
  app.add_option("--spec", spec_path,
                 "the network as JSON (layers with W, b, activation; x; y; lr)");
  app.add_option("--formula", formula_name,
                 "the closed form: corrected, the document's question-2 rule (document), or one "
                 "of the wrong derivations of closed_form.hpp, whose mistake the verifier names")
      ->check(CLI::IsMember(backprop_formula_names()));
  app.add_flag("--json", json_output, "print one JSON object instead of tables");
  std::string graph;
  app.add_option("--graph", graph,
                 "write the tape's graph of the loss as Graphviz DOT to this file");
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;

  try {
    return run(spec_path, formula_name, json_output, graph);
  } catch (const Error& e) {  // bad input: the spec, or the --graph file
    std::cerr << "backprop_walkthrough: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "backprop_walkthrough: internal error: " << e.what() << "\n";
    return 3;
  }
}
