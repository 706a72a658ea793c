#include <doctest/doctest.h>

#include <fstream>

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
  CHECK(testing::flat(make_activation("mish")->forward(x)) == testing::flat(mish(x)));
  CHECK(testing::flat(make_activation("identity")->forward(x)) == testing::flat(x));
  CHECK(activation_names().size() == activations().size());
  CHECK(activation_names().front() == "identity");
  CHECK(make_activation("gelu")->name() == "GELU");
  CHECK(make_activation("elu", {0.5})->str() == "ELU(alpha=0.5)");
  CHECK(testing::flat(make_activation("elu", {0.5})->forward(x)) == testing::flat(elu(x, 0.5)));
  CHECK(testing::flat(LeakyReLU(0.2).forward(x)) == testing::flat(leaky_relu(x, 0.2)));
  CHECK(LeakyReLU().str() == "LeakyReLU(negative_slope=0.01)");
  CHECK(ReLU().str() == "ReLU()");
  CHECK_THROWS_WITH_AS(LeakyReLU(0.2, 0.3), doctest::Contains("LeakyReLU: takes 1 parameter(s), got 2"),
                       ValueError);
  CHECK_THROWS_WITH_AS(make_activation("swish"), doctest::Contains("unknown activation 'swish'"),
                       ValueError);
  CHECK_THROWS_AS(MLP({4}, "relu"), ValueError);
  CHECK_THROWS_AS(MLP({4, 2}, "nope"), ValueError);
}

TEST_CASE("the activation table: typed modules agree with it, docs/ops.md lists every op of it") {
  CHECK(Identity().op() == "identity");
  CHECK(Sigmoid().name() == "Sigmoid");
  CHECK(Tanh().name() == "Tanh");
  CHECK(GELU().name() == "GELU");
  CHECK(Softplus().name() == "Softplus");
  CHECK(ELU().name() == "ELU");
  CHECK(SiLU().name() == "SiLU");
  CHECK(Mish().name() == "Mish");
  std::ifstream in(XGRAD_SOURCE_DIR "/docs/ops.md");
  REQUIRE(in.good());
  const std::string docs((std::istreambuf_iterator<char>(in)), {});
  for (const ActivationInfo& a : activations()) {
    if (a.name == "identity") continue;  // a module only: no op
    INFO(a.name);
    CHECK(docs.find("| `" + std::string(a.name) + "(x") != std::string::npos);
  }
}

TEST_CASE("an activation from the table in an MLP: mish, forward and gradients") {
  Generator gen(3);
  MLP net({4, 6, 3}, "mish", kFloat64, gen);
  CHECK(net.str().find("(1): Mish()") != std::string::npos);
  const Tensor x = randn({5, 4}, {.dtype = kFloat64}, gen);
  const std::vector<Tensor> params = net.parameters();
  const TensorFn f = [&](const std::vector<Tensor>& p) {
    return linear(mish(linear(x, p[0], p[1])), p[2], p[3]);
  };
  CHECK(testing::flat(net(x)) == testing::flat(f(params)));
  CHECK_GRADCHECK(gradcheck(f, params));
}

TEST_CASE("a fused MLP: same values and gradients as the unfused one, same parameters") {
  Generator gen(4);
  for (const char* act : {"relu", "tanh", "sigmoid"}) {
    INFO(act);
    MLP net({5, 7, 6, 3}, act, kFloat64, gen);
    const Tensor x = randn({4, 5}, {.dtype = kFloat64}, gen);
    const auto loss = [&] { return sum(mul(net(x), net(x))); };
    const double plain = loss().item();
    const auto plain_grads = grad({loss()}, net.parameters());
    net.fuse();
    CHECK(net.fused());
    CHECK(net.linears()[0]->epilogue == epilogue_from_name(act));
    CHECK(net.linears()[2]->epilogue == Epilogue::none);  // the logits stay linear
    const std::string tree = net.str();
    net.fuse(false);
    CHECK(net.str() == tree);  // the same model: checkpoints of either load in the other
    net.fuse();
    CHECK(net.named_parameters()[2].first == "2.weight");
    CHECK(loss().item() == doctest::Approx(plain).epsilon(1e-12));
    const auto fused_grads = grad({loss()}, net.parameters());
    for (std::size_t i = 0; i < fused_grads.size(); ++i) {
      const auto a = testing::flat(fused_grads[i]), b = testing::flat(plain_grads[i]);
      for (std::size_t j = 0; j < a.size(); ++j) CHECK(a[j] == doctest::Approx(b[j]).epsilon(1e-10));
    }
    const Epilogue e = epilogue_from_name(act);
    const TensorFn f = [&](const std::vector<Tensor>& p) {
      return linear(linear(linear(x, p[0], p[1], e), p[2], p[3], e), p[4], p[5]);
    };
    CHECK(testing::flat(net(x)) == testing::flat(f(net.parameters())));
    CHECK_GRADCHECK(gradcheck(f, net.parameters()));
    net.fuse(false);
    CHECK(net.linears()[0]->epilogue == Epilogue::none);
    CHECK(loss().item() == doctest::Approx(plain).epsilon(1e-12));
  }
  CHECK_THROWS_WITH_AS(MLP({2, 3, 2}, "gelu").fuse(),
                       doctest::Contains("MLP::fuse: the activation \"gelu\" does not fuse"),
                       ValueError);
}
