// The everyday module API as LibTorch's: default names, ModuleList and ModuleDict, traversal,
// apply, forward hooks, zero_grad(set_to_none), frozen parameters in an optimizer, and the
// in-place update of a leaf refused while recording.
#include <doctest/doctest.h>

#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "nn/conv.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "nn/sequence.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
// A user's block: no name() override, children in a ModuleList and a ModuleDict.
struct Block : Module {
  Block() {
    layers = register_module("layers", std::make_shared<ModuleList>());
    layers->push_back(std::make_shared<Linear>(3, 4, true, kFloat64));
    layers->push_back(std::make_shared<Tanh>());
    heads = register_module("heads", std::make_shared<ModuleDict>());
    heads->insert("class", std::make_shared<Linear>(4, 2, true, kFloat64));
    heads->insert("value", std::make_shared<Linear>(4, 1, false, kFloat64));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x;
    for (const auto& m : *layers) h = (*m)(h);
    return (*(*heads)["class"])(h);
  }
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<ModuleDict> heads;
};
}  // namespace

TEST_CASE("a module's default name is its type's; ModuleList and ModuleDict register children") {
  const auto block = std::make_shared<Block>();
  CHECK(block->name() == "Block");
  CHECK(block->layers->name() == "ModuleList");
  CHECK(block->layers->size() == 2);
  CHECK(block->layers->at<Linear>(0)->weight.shape() == Shape{4, 3});
  CHECK_THROWS_WITH_AS(block->layers->at<Linear>(1), doctest::Contains("entry 1 is a Tanh"),
                       ValueError);
  CHECK_THROWS_AS((*block->layers)[2], IndexError);
  CHECK(block->heads->keys() == std::vector<std::string>{"class", "value"});
  CHECK(block->heads->contains("value"));
  CHECK_THROWS_WITH_AS((*block->heads)["policy"], doctest::Contains("keys: class, value"),
                       ValueError);
  CHECK_THROWS_AS(block->heads->insert("class", std::make_shared<Tanh>()), ValueError);
  std::vector<std::string> names;
  for (const auto& [name, p] : block->named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"layers.0.weight", "layers.0.bias", "heads.class.weight",
                                          "heads.class.bias", "heads.value.weight"});
  CHECK(block->parameters(false).empty());
  CHECK(block->layers->at<Linear>(0)->parameters(false).size() == 2);
  CHECK((*block)(testing::f64({{1, 2, 3}})).shape() == Shape{1, 2});
  CHECK(block->str().find("(class): Linear(in_features=4, out_features=2, bias=true)\n") !=
        std::string::npos);
  // std::cout << module: the same tree, each line with its parameters, then the total.
  std::ostringstream printed;
  printed << *block;
  CHECK(printed.str() ==
        "Block(\n"
        "  (layers): ModuleList(\n"
        "    (0): Linear(in_features=3, out_features=4, bias=true)  # weight [4, 3], bias [4]: "
        "16 parameters\n"
        "    (1): Tanh()\n"
        "  )\n"
        "  (heads): ModuleDict(\n"
        "    (class): Linear(in_features=4, out_features=2, bias=true)  # weight [2, 4], bias "
        "[2]: 10 parameters\n"
        "    (value): Linear(in_features=4, out_features=1, bias=false)  # weight [1, 4]: 4 "
        "parameters\n"
        "  )\n"
        ")\n"
        "30 parameters (30 trainable), 0 in buffers");
}

TEST_CASE("summary: each module's output shape, parameters and FLOPs, as torchinfo's") {
  Sequential net;
  net.push_back(std::make_shared<Conv2d>(Conv2dOptions(1, 4, 3).padding(1)))
      .push_back(std::make_shared<ReLU>())
      .push_back(std::make_shared<MaxPool2d>(2))
      .push_back(std::make_shared<Flatten>())
      .push_back(std::make_shared<Linear>(4 * 4 * 4, 10));
  const std::string table = summary(net, {2, 1, 8, 8});
  INFO(table);
  // Conv2d: (2, 4, 8, 8) outputs of 9 multiply-adds each: 2 x 9 x 512 = 9216 FLOPs; 36 + 4
  // parameters. Linear: 2 x 64 x 10 per row, 2 rows: 2560 FLOPs; 640 + 10 parameters.
  CHECK(table.find("  0 (Conv2d)") != std::string::npos);
  CHECK(table.find("[2, 4, 8, 8]") != std::string::npos);
  CHECK(table.find("40           9216") != std::string::npos);
  CHECK(table.find("  4 (Linear)") != std::string::npos);
  CHECK(table.find("650          2560") != std::string::npos);
  CHECK(table.find("Total params: 690 (trainable 690)") != std::string::npos);
  CHECK(table.find("Total FLOPs of one forward: 11776") != std::string::npos);
  CHECK(net[0]->modules().size() == 1);                     // the hooks are gone after
  CHECK_THROWS_AS(summary(net, {2, 3, 8, 8}), ShapeError);  // a wrong input: the op's error
}

TEST_CASE("children, named_modules, modules and apply walk the tree depth first") {
  const auto block = std::make_shared<Block>();
  CHECK(block->children().size() == 2);
  std::vector<std::string> names;
  for (const auto& [name, m] : block->named_modules()) names.push_back(name + ":" + m->name());
  CHECK(names == std::vector<std::string>{":Block", "layers:ModuleList", "layers.0:Linear",
                                          "layers.1:Tanh", "heads:ModuleDict", "heads.class:Linear",
                                          "heads.value:Linear"});
  CHECK(block->modules().front().get() == block.get());
  CHECK(block->modules(false).size() == 6);
  // Custom initialization: every Linear's weight to 0.5, its bias to 0.
  block->apply([](Module& m) {
    if (auto* linear = dynamic_cast<Linear*>(&m)) {
      NoGradGuard no_grad;
      linear->weight.fill_(0.5);
      if (linear->bias.defined()) linear->bias.zero_();
    }
  });
  for (const auto& [name, p] : block->named_parameters())
    for (double v : testing::flat(p)) CHECK(v == (name.ends_with("weight") ? 0.5 : 0.0));
  // A module on the stack is walked too, itself given without ownership.
  Linear alone(2, 2);
  CHECK(alone.modules().size() == 1);
  CHECK(alone.modules()[0].get() == &alone);
}

TEST_CASE("forward hooks and pre-hooks run through operator(), also inside a Sequential") {
  Sequential net;
  const auto first = std::make_shared<Linear>(3, 4, true, kFloat64);
  net.push_back(first).push_back(std::make_shared<ReLU>());
  std::vector<Shape> seen;
  const std::size_t h = first->register_forward_hook(
      [&](Module&, const Tensor&, const Tensor& out) -> std::optional<Tensor> {
        seen.push_back(out.shape());
        return std::nullopt;
      });
  const Tensor x = testing::f64({{1, -2, 3}, {0.5, 0, 1}});
  const Tensor y = net(x);
  CHECK(seen == std::vector<Shape>{Shape{2, 4}});
  // A hook's tensor replaces the output; a pre-hook's, the input.
  const std::size_t negate = first->register_forward_hook(
      [](Module&, const Tensor&, const Tensor& out) -> std::optional<Tensor> { return -out; });
  CHECK(testing::flat(net(x)) == testing::flat(relu(-(*first).forward(x))));
  first->remove_hook(negate);
  first->register_forward_pre_hook(
      [](Module&, const Tensor& in) -> std::optional<Tensor> { return in * 0.0; });
  CHECK(testing::flat((*first)(x)) ==
        testing::flat(first->forward(zeros({2, 3}, {.dtype = kFloat64}))));
  first->remove_hook(h);
  CHECK_THROWS_WITH_AS(first->remove_hook(h), doctest::Contains("no hook"), ValueError);
  CHECK(seen.size() == 3);  // the second and third calls ran it before its removal
}

TEST_CASE("zero_grad drops gradients, or zeroes them with set_to_none false") {
  Linear layer(3, 2, true, kFloat64);
  sum(layer(testing::f64({{1, 2, 3}}))).backward();
  const Tensor g = layer.weight.grad();
  layer.zero_grad(false);
  CHECK(layer.weight.grad().impl() == g.impl());  // the same tensor, zeroed in place
  for (double v : testing::flat(g)) CHECK(v == 0.0);
  layer.zero_grad();
  CHECK_FALSE(layer.weight.grad().defined());
}

TEST_CASE("an optimizer over frozen parameters skips them until they are unfrozen") {
  Linear layer(3, 2, true, kFloat64);
  layer.bias.requires_grad_(false);  // frozen
  SGD opt(layer.parameters(), {.lr = 0.1});
  const std::vector<double> bias = testing::flat(layer.bias);
  const std::vector<double> weight = testing::flat(layer.weight);
  const Tensor x = testing::f64({{1, 2, 3}});
  sum(layer(x)).backward();
  opt.step();
  CHECK(testing::flat(layer.bias) == bias);
  CHECK(testing::flat(layer.weight) != weight);
  opt.zero_grad();
  layer.bias.requires_grad_(true);  // unfrozen: it trains
  sum(layer(x)).backward();
  opt.step();
  const std::vector<double> after = testing::flat(layer.bias);
  for (std::size_t i = 0; i < bias.size(); ++i) CHECK(after[i] == doctest::Approx(bias[i] - 0.1));
}

TEST_CASE("w -= lr * w.grad() on a leaf that requires grad is refused while recording") {
  Tensor w = testing::f64({1.0, 2.0}, true);
  sum(w * w).backward();
  CHECK_THROWS_WITH_AS(w -= 0.1 * w.grad(),
                       doctest::Contains("a leaf Variable that requires grad is being used in an "
                                         "in-place operation (do it under NoGradGuard"),
                       AutogradError);
  CHECK(w.is_leaf());
  {
    NoGradGuard no_grad;
    w -= 0.1 * w.grad();
  }
  CHECK(testing::flat(w) == std::vector<double>{0.8, 1.6});
}

TEST_CASE("the layers' LibTorch options: the same layer as the positional form") {
  CHECK(Linear(LinearOptions(4, 3).bias(false)).parameters().size() == 1);
  CHECK(Linear(LinearOptions(4, 3).dtype(kFloat64)).weight.dtype() == kFloat64);
  CHECK(BatchNorm2d(BatchNorm2dOptions(8).eps(1e-3).momentum(0.01).affine(false)).str() ==
        "BatchNorm2d(8, eps=0.001, momentum=0.01, affine=false)");
  CHECK(BatchNorm1d(BatchNorm1dOptions(4)).str() == BatchNorm1d(4).str());
  CHECK(Dropout(DropoutOptions().p(0.2)).str() == Dropout(0.2).str());
  CHECK(Embedding(EmbeddingOptions(6, 4).padding_idx(0)).str() == "Embedding(6, 4, padding_idx=0)");
  CHECK(LayerNorm(LayerNormOptions({3}).eps(1e-6).elementwise_affine(false)).str() ==
        "LayerNorm([3], eps=1e-06, elementwise_affine=false)");
  CHECK_THROWS_AS(BatchNorm2d(BatchNorm2dOptions(8).momentum(2.0)), ValueError);
}
