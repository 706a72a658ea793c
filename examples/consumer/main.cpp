// Uses an installed xgrad: a small network learns XOR in a few hundred steps.
#include <xgrad/nn/layers.hpp>
#include <xgrad/nn/loss.hpp>
#include <xgrad/nn/optim.hpp>

#include <cstdio>

using namespace xgrad;

int main() {
  Generator gen(0);
  nn::MLP net({2, 8, 2}, "tanh", kFloat32, gen);
  nn::Adam adam(net.parameters(), {.lr = 0.05});
  const Tensor x = tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}});
  const Tensor y = tensor({0, 1, 1, 0}, {.dtype = kInt64});
  double loss = 0;
  for (int step = 0; step < 300; ++step) {
    adam.zero_grad();
    const Tensor l = nn::softmax_cross_entropy(net(x), y);
    l.backward();
    adam.step();
    loss = l.item();
    if (step % 100 == 0) std::printf("step %d loss %.4f\n", step, loss);
  }
  std::printf("final loss %.4f\n", loss);
  return loss < 0.1 ? 0 : 1;
}
