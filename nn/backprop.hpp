#pragma once
/// \file
/// The source document's network (docs/derivation.md), computed twice: by its closed-form formulas,
/// written out by hand here without the tape, and by the tape. Everything is batched (one row per
/// sample; one sample is a batch of 1) and in double precision. The loss is the mean softmax
/// cross-entropy over the batch, so its gradients carry a factor 1/B.
///
/// Closed form (corrected), for layers l = L, ..., 1:
///   G_L = (P - Y) / B                      question 1 (P = softmax of the logits, Y one-hot)
///   grad_o_l = G_{l+1} W_{l+1}             question 2, for l < L (grad_o_L = G_L: o = z_L)
///   G_l = grad_o_l * sigma_l'(Z_l)         elementwise, for l < L
///   grad_W_l = G_l^T O_{l-1}, grad_b_l = G_l^T 1        question 3
///   W_l <- W_l - lr grad_W_l, b_l <- b_l - lr grad_b_l  question 4 (SGD)
/// The document's literal question-2 rule instead sets grad_o_l = grad_o_{l+1} W_{l+1}, dropping
/// sigma'_{l+1}: right for the last hidden layer and for identity activations only.

#include <string>
#include <vector>

#include "autograd/ops.hpp"

namespace xgrad::nn {

struct DenseLayer {
  xt::xarray<double> W;    ///< (d_l, d_{l-1}): rows are output units
  xt::xarray<double> b;    ///< (d_l)
  std::string activation;  ///< "identity" for the last layer
};

enum class BackpropFormula { corrected, document };

/// Every quantity of the document's four questions, per layer (index l - 1 for layer l).
struct BackpropTrace {
  std::vector<xt::xarray<double>> z, o;  ///< (B, d_l); o of the last layer is its z (the logits)
  xt::xarray<double> p;                  ///< (B, C) softmax of the logits
  double loss = 0;                       ///< mean over the batch
  std::vector<xt::xarray<double>> grad_o, grad_z, grad_W, grad_b, W_next, b_next;
};

/// Checks the network: at least one layer, W of shape (d_l, d_{l-1}) chaining from x's width, b of
/// shape (d_l), known activations, identity on the last layer, x of rank 1 or 2, labels in range.
/// ShapeError, ValueError or IndexError naming the layer otherwise.
void check_network(const std::vector<DenseLayer>& layers, const xt::xarray<double>& x,
                   const Index& y);

/// By the formulas above, with plain loops: no tape, no library op.
BackpropTrace closed_form_backprop(const std::vector<DenseLayer>& layers,
                                   const xt::xarray<double>& x, const Index& y, double lr,
                                   BackpropFormula formula = BackpropFormula::corrected);
/// By the tape: Linear-style ops, the library's activations, the fused softmax cross-entropy,
/// grad() for every intermediate, and the SGD optimizer for the update.
BackpropTrace tape_backprop(const std::vector<DenseLayer>& layers, const xt::xarray<double>& x,
                            const Index& y, double lr);

/// The largest difference between two traces for one quantity of one layer.
struct QuantityDifference {
  std::string quantity;   ///< "z", "o", "p", "loss", "grad_o", "grad_z", "grad_W", "grad_b",
                          ///< "W_next", "b_next"
  std::size_t layer = 0;  ///< 1-based; 0 for p and loss
  std::string index;      ///< where the difference is largest, e.g. "[0, 2]"
  double max_abs = 0;     ///< max |a - b|
  double rel = 0;         ///< max_abs / the largest |value| of the two
};
/// Forward quantities first (z, o per layer, then p, loss), then the backward ones in the order
/// backpropagation computes them: layer L down to 1.
std::vector<QuantityDifference> compare_traces(const BackpropTrace& a, const BackpropTrace& b);

/// The closed-form value and derivative of an activation, written out by hand (independent of the
/// library's ops): the sigma and sigma' of the formulas.
xt::xarray<double> activation_value(const std::string& name, const xt::xarray<double>& z);
xt::xarray<double> activation_derivative(const std::string& name, const xt::xarray<double>& z);

}  // namespace xgrad::nn
