#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

TEST_CASE("Linear: W of shape (out, in), y = x W^T + b, PyTorch's initialization, seedable") {
  Generator gen(5);
  Linear layer(4, 3, true, kFloat64, gen);
  CHECK(layer.weight.shape() == Shape{3, 4});
  CHECK(layer.bias.shape() == Shape{3});
  for (double v : testing::flat(layer.weight)) CHECK(std::abs(v) <= 0.5);  // 1/sqrt(4)
  const Tensor x = testing::f64({{1, 2, 3, 4}, {0, -1, 0.5, 2}});
  const Tensor y = layer(x);
  CHECK(y.shape() == Shape{2, 3});
  const auto& W = layer.weight.value<double>();
  const auto& b = layer.bias.value<double>();
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      double expected = b(j);
      for (std::size_t k = 0; k < 4; ++k) expected += x.value<double>()(i, k) * W(j, k);
      CHECK(y.value<double>()(i, j) == doctest::Approx(expected).epsilon(1e-15));
    }
  Generator same(5);
  Linear twin(4, 3, true, kFloat64, same);
  CHECK(testing::flat(twin.weight) == testing::flat(layer.weight));
  CHECK_THROWS_AS(layer(testing::f64({{1, 2, 3}})), ShapeError);
  CHECK(layer.str() == "Linear(in_features=4, out_features=3, bias=true)");
  Linear no_bias(4, 3, false);
  CHECK(no_bias.parameters().size() == 1);
}

TEST_CASE("modules collect parameters with dotted names, zero their gradients, switch modes") {
  MLP net({4, 8, 8, 3}, "tanh", kFloat64);
  const auto named = net.named_parameters();
  REQUIRE(named.size() == 6);
  CHECK(named[0].first == "0.weight");
  CHECK(named[1].first == "0.bias");
  CHECK(named[2].first == "2.weight");
  CHECK(named[5].first == "4.bias");
  CHECK(net.size() == 5);  // linear, tanh, linear, tanh, linear: no activation after the last
  CHECK(net.linears().size() == 3);
  const Tensor out = net(testing::f64({{1, 2, 3, 4}}));
  CHECK(out.shape() == Shape{1, 3});
  sum(out).backward();
  for (const Tensor& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad();
  for (const Tensor& p : net.parameters()) CHECK_FALSE(p.grad().defined());
  net.eval();
  CHECK_FALSE(net.is_training());
  CHECK_FALSE(net[1]->is_training());
  net.train();
  CHECK(net[4]->is_training());
  const std::string s = net.str();
  CHECK(s.find("MLP(\n  (0): Linear(in_features=4, out_features=8, bias=true)\n  (1): Tanh()") ==
        0);
}

TEST_CASE("an activation module for every activation op, by name") {
  const Tensor x = testing::f64({-1.5, 0.5, 2.0});
  CHECK(testing::flat(make_activation("relu")->forward(x)) == testing::flat(relu(x)));
  CHECK(testing::flat(make_activation("leaky_relu")->forward(x)) == testing::flat(leaky_relu(x)));
  CHECK(testing::flat(make_activation("sigmoid")->forward(x)) == testing::flat(sigmoid(x)));
  CHECK(testing::flat(make_activation("tanh")->forward(x)) == testing::flat(tanh(x)));
  CHECK(testing::flat(make_activation("gelu")->forward(x)) == testing::flat(gelu(x)));
  CHECK(testing::flat(make_activation("softplus")->forward(x)) == testing::flat(softplus(x)));
  CHECK(testing::flat(make_activation("elu")->forward(x)) == testing::flat(elu(x)));
  CHECK(testing::flat(make_activation("silu")->forward(x)) == testing::flat(silu(x)));
  CHECK(testing::flat(make_activation("identity")->forward(x)) == testing::flat(x));
  CHECK(activation_names().size() == 9);
  CHECK(make_activation("gelu")->name() == "GELU");
  CHECK_THROWS_WITH_AS(make_activation("swish"), doctest::Contains("unknown activation 'swish'"),
                       ValueError);
  CHECK_THROWS_AS(MLP({4}, "relu"), ValueError);
  CHECK_THROWS_AS(MLP({4, 2}, "nope"), ValueError);
}
