#pragma once
// The source document's network (docs/derivation.md), computed twice: by its closed-form formulas,
// written out by hand here without the tape, and by the tape. Everything is batched (one row per
// sample; one sample is a batch of 1) and in double precision. The loss is the mean softmax
// cross-entropy over the batch, so its gradients carry a factor 1/B.
//
// Closed form (corrected), for layers l = L, ..., 1:
//   G_L = (P - Y) / B                      question 1 (P = softmax of the logits, Y one-hot)
//   grad_o_l = G_{l+1} W_{l+1}             question 2, for l < L (grad_o_L = G_L: o = z_L)
//   G_l = grad_o_l * sigma_l'(Z_l)         elementwise, for l < L
//   grad_W_l = G_l^T O_{l-1}, grad_b_l = G_l^T 1        question 3
//   W_l <- W_l - lr grad_W_l, b_l <- b_l - lr grad_b_l  question 4 (SGD)
// The document's literal question-2 rule instead sets grad_o_l = grad_o_{l+1} W_{l+1}, dropping
// sigma'_{l+1}: right for the last hidden layer and for identity activations only.

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tensor.hpp"
#include "autograd/verify.hpp"

namespace walkthrough {

using Matrix = xt::xarray<double>;

struct DenseLayer {
  Matrix W;                ///< (d_l, d_{l-1}): rows are output units
  Matrix b;                ///< (d_l)
  std::string activation;  ///< a name of xgrad's activation table; "identity" for the last layer
};

/// A network with its input batch, labels and learning rate, checked once, when it is made: at
/// least one layer, W of shape (d_l, d_{l-1}) chaining from x's width, b of shape (d_l), known
/// activations, identity on the last layer, x of rank 1 (one sample) or 2, labels in range.
/// ShapeError, ValueError or IndexError naming the layer otherwise.
class Network {
 public:
  /// y holds 0-based class indices; label_base (0 or 1) is only how they are shown: 1 when the
  /// spec numbered its classes 1..C, as the document does.
  Network(std::vector<DenseLayer> layers, const Matrix& x, xgrad::Tensor y, double lr = 0.1,
          int label_base = 0);
  const std::vector<DenseLayer>& layers() const { return layers_; }
  const Matrix& x() const { return x_; }  ///< (B, d_0): one sample is a batch of one
  const xgrad::Tensor& y() const { return y_; }  ///< int64 class labels
  double lr() const { return lr_; }
  int label_base() const { return label_base_; }

 private:
  void check() const;
  std::vector<DenseLayer> layers_;
  Matrix x_;
  xgrad::Tensor y_;
  double lr_;
  int label_base_ = 0;
};

/// The corrected formulas, the document's, and wrong derivations a student writes: each differs
/// from the corrected ones by one mistake (verify_gradients names it: tests/examples/walkthrough).
enum class BackpropFormula {
  corrected,
  document,                   ///< question 2 as the document: grad_o_l = grad_o_{l+1} W_{l+1}
  derivative_missing,         ///< G_l = grad_o_l: sigma' left out everywhere
  derivative_at_output,       ///< G_l = grad_o_l * sigma'(O_l), at the activation's output
  activation_for_derivative,  ///< G_l = grad_o_l * sigma(Z_l)
  derivative_at_logits,       ///< G_L = (P - Y) / B * sigma'(Z_L), the hidden layers' sigma
  sum_not_mean,               ///< G_L = P - Y: the mean's 1/B left out
  mean_twice,                 ///< G_L = (P - Y) / B^2
  label_minus_p,              ///< G_L = (Y - P) / B: question 1's sign flipped
  weight_not_transposed,      ///< grad_o_l = G_{l+1} W_{l+1}^T where W_{l+1} is square
  grad_W_transposed,          ///< grad_W_l = O_{l-1}^T G_l where W_l is square
};
/// The formulas by name ("corrected", "document", "derivative_missing", ...), in the enum's order.
const std::vector<std::string>& backprop_formula_names();
BackpropFormula backprop_formula(const std::string& name);  ///< ValueError for an unknown name

/// Every quantity of the document's four questions, per layer (index l - 1 for layer l).
struct BackpropTrace {
  std::vector<Matrix> z, o;  ///< (B, d_l); o of the last layer is its z (the logits)
  Matrix p;                  ///< (B, C) softmax of the logits
  double loss = 0;           ///< mean over the batch
  std::vector<Matrix> grad_o, grad_z, grad_W, grad_b, W_next, b_next;
};

/// By the formulas above, with plain loops: no tape, no library op.
BackpropTrace closed_form_backprop(const Network& net,
                                   BackpropFormula formula = BackpropFormula::corrected);
/// By the tape: the linear op, the library's activations, the fused softmax cross-entropy, grad()
/// for every intermediate, and the SGD optimizer for the update.
BackpropTrace tape_backprop(const Network& net);

/// verify_gradients on a trace's grad_W and grad_b (named W_1, b_1, ..., W_L, b_L), the loss
/// recorded by the tape: whether they are right, and if not, which mistake reproduces them.
xgrad::VerifyReport verify_trace(const Network& net, const BackpropTrace& trace,
                                 const xgrad::VerifyOptions& options = {.rtol = 1e-10,
                                                                        .numeric_rtol = 1e-10});

/// The largest difference between two traces for one quantity of one layer.
struct QuantityDifference {
  std::string quantity;   ///< "z", "o", "p", "loss", "grad_o", "grad_z", "grad_W", "grad_b",
                          ///< "W_next", "b_next"
  std::size_t layer = 0;  ///< 1-based; 0 for p and loss
  std::string index;      ///< where the difference is largest, e.g. "[0, 2]"
  double max_abs = 0;     ///< max |a - b|
  double rel = 0;         ///< max_abs / the largest |value| of the two
};

/// Two traces compared, quantity by quantity: forward ones first (z, o per layer, then p, loss),
/// then the backward ones in the order backpropagation computes them, layer L down to 1.
struct Comparison {
  std::vector<QuantityDifference> differences;
  double tolerance = 0;  ///< relative difference above which two values disagree
  /// The first quantity in that order to disagree: where a wrong formula first shows; every
  /// quantity computed from it inherits the error. Empty when the traces agree.
  std::optional<QuantityDifference> first_disagreement;

  bool agree() const { return !first_disagreement; }
  const QuantityDifference& find(const std::string& quantity, std::size_t layer) const;
};
Comparison compare_traces(const BackpropTrace& a, const BackpropTrace& b, double tolerance = 1e-10);

/// An activation's sigma and sigma', written out by hand (independent of the library's ops), with
/// the parameters of xgrad's activation table (their defaults).
struct ClosedFormActivation {
  double (*value)(double z, std::span<const double> parameters);
  double (*derivative)(double z, std::span<const double> parameters);
};
/// Keyed by the names of xgrad's activation table; a test fails when an activation lacks one.
const std::map<std::string_view, ClosedFormActivation>& closed_form_activations();
/// sigma or sigma' of the named activation over a matrix (ValueError when it has no closed form).
Matrix activation_value(const std::string& name, const Matrix& z);
Matrix activation_derivative(const std::string& name, const Matrix& z);

}  // namespace walkthrough
