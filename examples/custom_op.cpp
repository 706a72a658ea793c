// Extending xgrad with ops it lacks, without touching the library: Swish with a learnable beta,
// written as a struct (forward, backward and a context), and the smooth-L1 loss, written as a
// closure. Both are verified with gradcheck and gradgradcheck, then a small network with them
// learns y = sin(3x). Exits 1 if a check fails.
//
//   custom_op [--graph loss.dot]      (dot -Tpng loss.dot -o loss.png draws the graph)
#include <cmath>
#include <iostream>
#include "examples/common/cli.hpp"

#include "autograd/function.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/graph.hpp"
#include "autograd/ops.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"

using namespace xgrad;

// swish(x) = x sigmoid(beta x), beta a parameter:
//   d/dx    = s + beta x s (1 - s)
//   d/dbeta = x^2 s (1 - s)          with s = sigmoid(beta x)
struct Swish : Function<Swish> {
  static constexpr const char* name = "swish";
  static Tensor forward(FunctionContext& ctx, const Tensor& x, const Tensor& beta) {
    ctx.save_for_backward({x, beta});
    return x * sigmoid(beta * x);
  }
  static std::vector<Tensor> backward(FunctionContext& ctx, const Tensor& g) {
    const std::vector<Tensor> saved = ctx.saved();
    const Tensor &x = saved[0], &beta = saved[1];
    const Tensor s = sigmoid(beta * x);  // from the inputs, so that it differentiates again
    const Tensor ds = s * (1.0 - s);
    return {g * (s + beta * x * ds), g * x * x * ds};  // the beta gradient is summed by the engine
  }
};

// smooth_l1(d) = d^2 / 2 where |d| < 1, |d| - 1/2 elsewhere; its derivative is clamp(d, -1, 1).
Tensor smooth_l1(const Tensor& prediction, const Tensor& target) {
  return custom_op(
      "smooth_l1", {prediction - target},
      [](const std::vector<Tensor>& in) {
        const Tensor a = abs(in[0]);
        return mean(where(lt(a, ones_like(a)), 0.5 * in[0] * in[0], a - 0.5));
      },
      [](const std::vector<Tensor>& in, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g * clamp(in[0], -1.0, 1.0) /
                                   static_cast<double>(in[0].numel())};
      });
}

// A Linear -> Swish -> Linear network whose Swish has its own learnable beta.
class SwishNet : public nn::Module {
 public:
  explicit SwishNet(Generator& gen)
      : hidden_(
            register_module("hidden", std::make_shared<nn::Linear>(1, 32, true, kFloat64, gen))),
        out_(register_module("out", std::make_shared<nn::Linear>(32, 1, true, kFloat64, gen))),
        beta_(register_parameter("beta", ones({1}, {.dtype = kFloat64}))) {}
  Tensor forward(const Tensor& x) override { return (*out_)(Swish::apply((*hidden_)(x), beta_)); }
  std::string name() const override { return "SwishNet"; }
  double beta() const { return beta_.item(); }

 private:
  std::shared_ptr<nn::Linear> hidden_, out_;
  Tensor beta_;
};

int run(const std::string& graph);

int main(int argc, char** argv) {
  CLI::App app{
      "Custom ops: Swish with a learnable beta and the smooth-L1 loss, checked and trained."};
  std::string graph;
  app.add_option("--graph", graph, "write the graph of the loss as Graphviz DOT to this file");
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  try {
    return run(graph);
  } catch (const Error& e) {  // the --graph file cannot be written
    std::cerr << "custom_op: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "custom_op: internal error: " << e.what() << "\n";
    return 3;
  }
}

// 0 when both ops check out and training works, 1 when not.
int run(const std::string& graph) {
  // 1. Verify both ops against finite differences, first and second derivatives.
  Generator gen(3);
  const Tensor x = randn({4, 3}, {.dtype = kFloat64, .requires_grad = true}, gen);
  const Tensor beta = tensor({0.8}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor target = randn({4, 3}, {.dtype = kFloat64}, gen) * 2.0;
  const TensorFn swish = [](const std::vector<Tensor>& in) { return Swish::apply(in[0], in[1]); };
  const TensorFn loss = [&](const std::vector<Tensor>& in) { return smooth_l1(in[0], target); };
  bool ok = true;
  for (const auto& [what, report] :
       {std::pair{"swish: gradcheck", gradcheck(swish, {x, beta})},
        std::pair{"swish: gradgradcheck", gradgradcheck(swish, {x, beta})},
        std::pair{"smooth_l1: gradcheck", gradcheck(loss, {x})}}) {
    std::cout << what << ": " << report;
    ok = ok && report.passed;
  }

  // 2. Train with them: fit y = sin(3x) on [-1, 1].
  const Tensor inputs = reshape(arange(-1.0, 1.0, 0.02, {.dtype = kFloat64}), {-1, 1});
  const Tensor targets(xt::xarray<double>(xt::sin(3.0 * inputs.value<double>())));
  SwishNet net(gen);
  nn::Adam adam(net.parameters(), {.lr = 0.01});
  double first = 0, last = 0;
  for (int step = 0; step < 500; ++step) {
    adam.zero_grad();
    const Tensor l = smooth_l1(net(inputs), targets);
    if (step == 0) {
      first = l.item();
      if (!graph.empty()) write_dot(l, graph);
    }
    l.backward();
    adam.step();
    last = l.item();
  }
  std::cout << "training y = sin(3x): smooth-L1 loss " << first << " -> " << last
            << ", learned beta " << net.beta() << "\n";
  if (!(last < first / 10)) {
    std::cout << "the loss did not fall tenfold\n";
    ok = false;
  }
  return ok ? 0 : 1;
}
