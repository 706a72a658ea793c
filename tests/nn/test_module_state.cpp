// A module's state as a PyTorch user handles it: state_dict and load_state_dict, buffers,
// to(dtype), freezing, tied weights listed once, and saving and loading through the checkpoint
// files.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/gradcheck.hpp"
#include "nn/layers.hpp"
#include "nn/sequence.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {
// A layer with a buffer and a weight it can share with another module.
class Scaled : public Module {
 public:
  Scaled(std::size_t n, Tensor shared = Tensor()) {
    weight = register_parameter("weight", shared.defined() ? shared : ones({n}));
    count = register_buffer("count", zeros({1}));
  }
  Tensor forward(const Tensor& x) override { return x * weight; }
  std::string name() const override { return "Scaled"; }
  Tensor weight, count;
};

class Tied : public Module {
 public:
  Tied() {
    first = register_module("first", std::make_shared<Scaled>(3));
    second = register_module("second", std::make_shared<Scaled>(3, first->weight));
  }
  Tensor forward(const Tensor& x) override { return second->forward(first->forward(x)); }
  std::string name() const override { return "Tied"; }
  std::shared_ptr<Scaled> first, second;
};
}  // namespace

TEST_CASE("state_dict: parameters then buffers by dotted name; a tied tensor under each name") {
  Tied net;
  const auto params = net.named_parameters();
  REQUIRE(params.size() == 1);  // second.weight is first.weight
  CHECK(params[0].first == "first.weight");
  CHECK(net.parameters().size() == 1);
  const auto buffers = net.named_buffers();
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0].first == "first.count");
  CHECK(buffers[1].first == "second.count");
  CHECK_FALSE(buffers[0].second.requires_grad());
  const StateDict state = net.state_dict();  // as PyTorch's: both names of the tied weight
  REQUIRE(state.size() == 4);
  CHECK(state[0].first == "first.weight");
  CHECK(state[1].first == "second.weight");
  CHECK(state[1].second.impl() == state[0].second.impl());
  CHECK(state[3].first == "second.count");
  sum(net(ones({3}))).backward();  // the tied weight gets both uses' gradient
  CHECK(testing::flat(cast(net.first->weight.grad(), kFloat64)) == std::vector<double>{2, 2, 2});
}

TEST_CASE("load_state_dict: by name, dtype converted, strict names and shapes checked first") {
  Generator gen(3);
  MLP a({3, 4, 2}, "tanh", kFloat32, gen), b({3, 4, 2}, "tanh", kFloat64, gen);
  b.load_state_dict(a.state_dict());
  const Tensor x = randn({5, 3}, {}, gen);
  CHECK(b.linears()[0]->weight.dtype() == kFloat64);  // b keeps its dtype
  const auto ya = testing::flat(cast(a(x), kFloat64)), yb = testing::flat(b(cast(x, kFloat64)));
  for (std::size_t i = 0; i < ya.size(); ++i) CHECK(yb[i] == doctest::Approx(ya[i]).epsilon(1e-6));

  StateDict partial = a.state_dict();
  partial.pop_back();
  partial.emplace_back("extra", zeros({1}));
  CHECK_THROWS_WITH_AS(b.load_state_dict(partial),
                       doctest::Contains("load_state_dict: MLP: missing 2.bias; unexpected extra"),
                       ValueError);
  StateDict wrong = a.state_dict();
  wrong[2].second = zeros({4, 4});
  const auto before = testing::flat(b.linears()[0]->weight);
  CHECK_THROWS_WITH_AS(b.load_state_dict(wrong),
                       doctest::Contains("'2.weight' has shape [2, 4] in MLP but [4, 4] given"),
                       ShapeError);
  CHECK(testing::flat(b.linears()[0]->weight) == before);  // nothing changed
  StateDict some = {a.state_dict()[0]};
  b.load_state_dict(some, false);  // not strict: loads what is there
  CHECK(testing::flat(b.linears()[0]->weight) ==
        testing::flat(cast(a.linears()[0]->weight, kFloat64)));
}

TEST_CASE("to(dtype): a custom module gradchecked in float64; requires_grad_(false) freezes") {
  Tied net;
  net.to(kFloat64);
  CHECK(net.first->weight.dtype() == kFloat64);
  CHECK(net.second->weight.dtype() == kFloat64);  // the same tensor, seen through both handles
  CHECK(net.first->count.dtype() == kFloat64);
  CHECK(net.first->weight.requires_grad());
  const Tensor x = testing::f64({1.0, -2.0, 0.5});
  const TensorFn f = [&](const std::vector<Tensor>& p) { return x * p[0] * p[0]; };
  CHECK_GRADCHECK(gradcheck(f, net.parameters()));
  CHECK(testing::flat(net(x)) == testing::flat(f(net.parameters())));
  net.requires_grad_(false);
  CHECK_FALSE(net.first->weight.requires_grad());
  CHECK_FALSE(net(x).requires_grad());
  net.requires_grad_();
  CHECK(net(x).requires_grad());
  CHECK_THROWS_WITH_AS(relu(x * net.first->weight).set_data(x),
                       doctest::Contains("set_data: this tensor is the output of relu"),
                       AutogradError);
}

TEST_CASE("buffers are saved and loaded with the parameters") {
  testing::ScratchDir dir("module_state");
  Tied a;
  a.first->count.mutable_value<float>()(0) = 7;
  a.first->weight.mutable_value<float>()(1) = 3;
  save(a, dir.path().string());
  Tied b;
  load(b, dir.path().string());
  CHECK(b.first->count.value<float>()(0) == 7);
  CHECK(b.second->weight.value<float>()(1) == 3);  // tied: loaded once, seen through both
}

namespace {
// A language model's head tied to its embedding by assignment, as a PyTorch user writes it.
struct TiedHead : Module {
  TiedHead() {
    emb = register_module("emb", std::make_shared<Embedding>(5, 3));
    head = register_module("head", std::make_shared<Linear>(3, 5, false));
    head->weight = emb->weight;  // (5, 3): the same matrix
  }
  Tensor forward(const Tensor& ids) override { return (*head)((*emb)(ids)); }
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Linear> head;
};
}  // namespace

TEST_CASE(
    "weights tied by assignment: listed once, saved under both names, loaded through either") {
  TiedHead net;
  const auto named = net.named_parameters();
  REQUIRE(named.size() == 1);  // the stale (3, 5) matrix the Linear made is gone
  CHECK(named[0].first == "emb.weight");
  CHECK(named[0].second.impl() == net.head->weight.impl());
  const StateDict state = net.state_dict();
  REQUIRE(state.size() == 2);
  CHECK(state[1].first == "head.weight");
  CHECK(state[1].second.impl() == state[0].second.impl());
  // Loading either name fills the one tensor; both with different values are refused.
  const Tensor values = full({5, 3}, 0.25);
  net.load_state_dict({{"head.weight", values}});
  CHECK(testing::flat(cast(net.emb->weight, kFloat64)) == testing::flat(cast(values, kFloat64)));
  net.load_state_dict({{"emb.weight", values * 2.0}});
  CHECK(net.head->weight[4][2].item<double>() == 0.5);
  CHECK_THROWS_WITH_AS(net.load_state_dict({{"emb.weight", values}, {"head.weight", values * 3.0}}),
                       doctest::Contains("are one tied tensor, but the values given differ"),
                       ValueError);
  CHECK(testing::flat(cast(net.emb->weight, kFloat64)) ==
        testing::flat(cast(values * 2.0, kFloat64)));  // unchanged by the refused load
  net.load_state_dict({{"emb.weight", values}, {"head.weight", values}});
  // One gradient, from both uses.
  sum(net(testing::i64({1, 4}))).backward();
  CHECK(net.emb->weight.grad().defined());
  CHECK(net.parameters().size() == 1);
}
