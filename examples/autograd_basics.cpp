// The autograd engine in a few lines: build a function of tensors, run backward, read gradients,
// then check them against finite differences with gradcheck.
#include <iostream>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"

using namespace xgrad;

int main() {
  // Leaves that require grad: the gradients of whatever is computed from them are wanted.
  const Tensor w = tensor({{0.5, -1.0}, {2.0, 0.25}}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor x = tensor({1.0, 3.0}, {.dtype = kFloat64});

  // Every op on them is recorded on the tape: y = sum(tanh(W x)^2). Each op has a member form
  // (w.matmul(x).tanh()) and a function form (tanh(matmul(w, x))).
  const Tensor h = w.matmul(x).tanh();
  const Tensor y = (h * h).sum();
  std::cout << "y = " << y.item() << "\n";

  // One reverse sweep fills w.grad() with dy/dW = (2 h (1 - h^2)) x^T.
  y.backward();
  std::cout << "dy/dW =\n" << w.grad() << "\n";

  // The same derivative, checked entry by entry against central finite differences.
  const GradcheckReport report = gradcheck(
      [&](const std::vector<Tensor>& in) { return in[0].matmul(x).tanh().pow(2).sum(); }, {w});
  std::cout << report;
  return report.passed ? 0 : 1;
}
