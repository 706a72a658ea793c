// The convolutional layers: shapes, PyTorch's initialization bounds, train/eval for dropout, and
// a small CNN that learns (its gradients checked in double against finite differences).
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/blas.hpp"
#include "autograd/detail/blocked.hpp"
#include "autograd/detail/conv_onednn.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/node.hpp"
#include "nn/conv.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

TEST_CASE("Conv2d and the pools: shapes, initialization, printing, bad arguments") {
  Generator gen(4);
  Conv2d conv(Conv2dOptions(3, 8, 3).padding(1), gen);
  CHECK(conv.weight.shape() == Shape{8, 3, 3, 3});
  const double bound = 1 / std::sqrt(27.0);
  for (float v : conv.weight.value<float>()) REQUIRE(std::abs(v) <= bound);
  CHECK(conv(zeros({2, 3, 10, 9})).shape() == Shape{2, 8, 10, 9});
  CHECK(conv.str() == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
  Conv2d grouped(Conv2dOptions(4, 6, {2, 2}).stride(2).groups(2).bias(false));
  CHECK(grouped.weight.shape() == Shape{6, 2, 2, 2});
  CHECK(grouped.parameters().size() == 1);
  CHECK(MaxPool2d({2, 2})(zeros({1, 2, 7, 8})).shape() == Shape{1, 2, 3, 4});
  CHECK(AvgPool2d(AvgPool2dOptions(3).stride(1).padding(1))(zeros({1, 2, 7, 8})).shape() ==
        Shape{1, 2, 7, 8});
  CHECK(MaxPool2d({2, 2}).str() == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
  const Tensor global = AdaptiveAvgPool2d({1, 1})(ones({2, 3, 5, 4}));
  CHECK(global.shape() == Shape{2, 3, 1, 1});
  CHECK(global.value<float>()(1, 2, 0, 0) == 1.0f);
  CHECK(AdaptiveAvgPool2d({2, 3}).str() == "AdaptiveAvgPool2d(output_size=(2, 3))");
  CHECK(Flatten()(zeros({2, 3, 4, 5})).shape() == Shape{2, 60});
  Conv1d c1(Conv1dOptions(4, 6, 3).padding(1).groups(2), gen);
  CHECK(c1.weight.shape() == Shape{6, 2, 3});
  CHECK(c1(zeros({2, 4, 10})).shape() == Shape{2, 6, 10});
  CHECK(c1.str() == "Conv1d(4, 6, kernel_size=3, stride=1, padding=1, groups=2)");
  for (float v : c1.weight.value<float>()) REQUIRE(std::abs(v) <= 1 / std::sqrt(6.0));
  CHECK_THROWS_AS(Conv1d(Conv1dOptions(3, 8, 3).groups(2)), ValueError);
  CHECK_THROWS_AS(Conv2d(Conv2dOptions(3, 8, 3).groups(2)), ValueError);
  CHECK_THROWS_AS(Conv2d(3, 8, {0, 3}), ValueError);
  CHECK_THROWS_AS(Dropout(-0.1), ValueError);
  // The short forms, as PyTorch's: square kernels, strides and padding from one number.
  Conv2d square(1, 16, 3);
  CHECK(square.weight.shape() == Shape{16, 1, 3, 3});
  CHECK(std::make_shared<Conv2d>(1, 16, 3)->name() == "Conv2d");
  CHECK(max_pool2d(zeros({1, 1, 4, 6}), 2).shape() == Shape{1, 1, 2, 3});
  CHECK(AdaptiveAvgPool2d(1)(zeros({2, 3, 5, 4})).shape() == Shape{2, 3, 1, 1});
  CHECK(avg_pool2d(zeros({1, 1, 5, 5}), 3, 1, 1).shape() == Shape{1, 1, 5, 5});
  CHECK(MaxPool2d(2).str() == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
  CHECK(MaxPool2d(MaxPool2dOptions(3).stride(2).padding(1)).str() ==
        "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))");
  CHECK(Conv2d(Conv2dOptions(2, 4, {3, 1}).stride({2, 1}).padding({1, 0}).bias(false)).str() ==
        "Conv2d(2, 4, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0), bias=false)");
  CHECK(Conv2d(Conv2dOptions(2, 4, 3).dtype(kFloat64)).weight.dtype() == kFloat64);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 4, 4}), {2, 2, 2}),
                       doctest::Contains("expected 2 sizes"), ValueError);
  CHECK_THROWS_WITH_AS(Conv2d(1, 2, -3), doctest::Contains("a size must be >= 0, got -3"),
                       ValueError);
}

TEST_CASE("Dropout: drops in training, the identity in evaluation") {
  Generator gen(5);
  Dropout drop(0.5, gen);
  const Tensor x = ones({50, 40});
  const auto trained = testing::flat(cast(drop(x), kFloat64));
  CHECK(std::count(trained.begin(), trained.end(), 0.0) > 0);
  drop.eval();
  CHECK(drop(x).impl() == x.impl());
}

namespace {
// A small CNN: conv, relu, pool, conv, relu, global average (avg_pool over the whole map),
// flatten, linear.
class SmallCnn : public Module {
 public:
  SmallCnn(Dtype dtype, Generator& gen) {
    c1 = register_module(
        "c1", std::make_shared<Conv2d>(Conv2dOptions(1, 4, 3).padding(1).dtype(dtype), gen));
    c2 = register_module("c2", std::make_shared<Conv2d>(Conv2dOptions(4, 6, 3).dtype(dtype), gen));
    fc = register_module("fc", std::make_shared<Linear>(6, 3, true, dtype, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = max_pool2d(relu((*c1)(x)), 2);       // (N, 4, 4, 4)
    h = relu((*c2)(h));                             // (N, 6, 2, 2)
    h = flatten(avg_pool2d(h, {2, 2}), 1);          // (N, 6)
    return (*fc)(h);
  }
  std::shared_ptr<Conv2d> c1, c2;
  std::shared_ptr<Linear> fc;
};
}  // namespace

TEST_CASE("a small CNN: its gradients against finite differences, then it learns") {
  Generator gen(6);
  SmallCnn net(kFloat64, gen);
  const Tensor x = randn({6, 1, 8, 8}, {.dtype = kFloat64}, gen);
  const Tensor y = testing::i64({0, 1, 2, 0, 1, 2});
  const std::vector<Tensor> params = net.parameters();
  const TensorFn loss = [&](const std::vector<Tensor>& p) {
    // the same network, written with the parameters given
    Tensor h = max_pool2d(relu(conv2d(x, p[0], p[1], Conv2dFuncOptions().padding(1))), 2);
    h = relu(conv2d(h, p[2], p[3]));
    h = flatten(avg_pool2d(h, {2, 2}), 1);
    return softmax_cross_entropy(linear(h, p[4], p[5]), y);
  };
  CHECK(loss(params).item() == doctest::Approx(softmax_cross_entropy(net(x), y).item()));
  CHECK_GRADCHECK(gradcheck(loss, params));
  // Each class is an image with a bright quadrant of its own: 100 Adam steps separate them.
  Tensor images = zeros({6, 1, 8, 8}, {.dtype = kFloat64});
  auto& a = images.mutable_value<double>();
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t c = 0; c < 4; ++c)
        a(i, 0, r + (testing::ints(y)[i] == 1 ? 4 : 0), c + (testing::ints(y)[i] == 2 ? 4 : 0)) = 1.0;
  Adam adam(net.parameters(), {.lr = 0.05});
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    adam.zero_grad();
    const Tensor l = softmax_cross_entropy(net(images), y);
    if (step == 0) first = l.item();
    last = l.item();
    l.backward();
    adam.step();
  }
  CHECK(last < 0.1 * first);
  CHECK(accuracy(net(images), y) == 1.0);
}

TEST_CASE(
    "BatchNorm2d: buffers, not parameters; train updates them, eval uses them; saved with the "
    "model") {
  BatchNorm2d bn(3, 1e-5, 0.5);
  CHECK(bn.parameters().size() == 2);
  const auto buffers = bn.named_buffers();
  REQUIRE(buffers.size() == 3);
  CHECK(buffers[0].first == "running_mean");
  CHECK(buffers[2].first == "num_batches_tracked");
  CHECK(bn.str() == "BatchNorm2d(3, eps=1e-05, momentum=0.5, affine=true)");
  Generator gen(7);
  const Tensor x = randn({4, 3, 3, 3}, {}, gen) + 2.0;
  const Tensor y = bn(x);  // training: normalized by the batch
  CHECK(std::abs(mean(y).item()) < 1e-5);
  CHECK(bn.running_mean.value<float>()(0) ==
        doctest::Approx(0.5 * mean(select(x, 1, 0)).item()).epsilon(1e-5));
  CHECK(bn.num_batches_tracked.item() == 1.0);
  bn.eval();
  const Tensor e = bn(x);  // evaluation: the running statistics, which stay
  CHECK(bn.num_batches_tracked.item() == 1.0);
  CHECK(std::abs(mean(e).item()) > 0.1);  // not normalized by the batch any more
  StateDict state = bn.state_dict();
  CHECK(state.size() == 5);
  bn.to(kFloat64);
  CHECK(bn.running_var.dtype() == kFloat64);
  CHECK(BatchNorm1d(4)(zeros({2, 4})).shape() == Shape{2, 4});
  CHECK_THROWS_WITH_AS(BatchNorm2d(3)(zeros({2, 3})),
                       doctest::Contains("BatchNorm2d: needs (N, C, H, W)"), ShapeError);
}

TEST_CASE("BatchNorm2d with a relu epilogue: the module then ReLU, in training and evaluation") {
  Generator gen(8);
  BatchNorm2d fused(4), plain(4);
  fused.epilogue = Epilogue::relu;
  const Tensor w = randn({4}, {}, gen), b = randn({4}, {}, gen);
  for (BatchNorm2d* m : {&fused, &plain}) {
    const NoGradGuard no_grad;
    m->weight.copy_(w);
    m->bias.copy_(b);
  }
  CHECK(fused.str() == plain.str());  // how it runs, not what it is: checkpoints agree
  for (bool training : {true, false}) {
    INFO((training ? "training" : "evaluation"));
    fused.train(training);
    plain.train(training);
    const Tensor x = randn({3, 4, 5, 6}, {}, gen), g = randn({3, 4, 5, 6}, {}, gen);
    const Tensor y = fused(x), z = relu(plain(x));
    CHECK(y.grad_fn()->name() == "batch_norm+relu");
    CHECK(testing::max_difference(cast(y, kFloat64), cast(z, kFloat64)) == 0);
    sum(mul(y, g)).backward();
    sum(mul(z, g)).backward();
    for (auto [a, c] : {std::pair{fused.weight, plain.weight}, std::pair{fused.bias, plain.bias},
                        std::pair{fused.running_mean, plain.running_mean},
                        std::pair{fused.running_var, plain.running_var}}) {
      const Tensor da = a.requires_grad() ? a.grad() : a, dc = c.requires_grad() ? c.grad() : c;
      CHECK(testing::max_difference(cast(da, kFloat64), cast(dc, kFloat64)) == 0);
    }
  }
}

namespace {
// conv, batch norm + ReLU, 2 x 2 max pooling, twice, then a linear layer (the reference CNN's
// blocks, smaller), float32: the loss and every parameter's gradient with the blocked layout on
// or off (autograd/blas.hpp's set_blocked_layout), and whether the activations stayed blocked.
struct CnnRun {
  double loss = 0;
  std::vector<Tensor> grads;
  bool conv_blocked = false, pool_blocked = false;
};
CnnRun cnn_run(bool blocked) {
  set_blocked_layout(blocked);
  Generator gen(9);
  Conv2d conv1(Conv2dOptions(1, 16, 3).padding(1), gen),
      conv2(Conv2dOptions(16, 32, 3).padding(1), gen);
  BatchNorm2d bn1(16), bn2(32);
  bn1.epilogue = bn2.epilogue = Epilogue::relu;
  Linear head(32 * 2 * 2, 3, true, kFloat32, gen);
  const Tensor x = randn({4, 1, 8, 8}, {}, gen);
  const Tensor y = testing::i64({0, 1, 2, 1});
  CnnRun r;
  const Tensor c1 = conv1(x);
  r.conv_blocked = detail::blocked(c1) != nullptr;
  const Tensor p1 = max_pool2d(bn1(c1), 2);
  r.pool_blocked = detail::blocked(p1) != nullptr;
  const Tensor h = max_pool2d(bn2(conv2(p1)), 2);
  const Tensor loss = softmax_cross_entropy(head(flatten(h, 1)), y);
  loss.backward();
  r.loss = loss.item();
  for (Module* m : std::initializer_list<Module*>{&conv1, &bn1, &conv2, &bn2, &head})
    for (const Tensor& p : m->parameters()) r.grads.push_back(cast(p.grad(), kFloat64));
  set_blocked_layout(true);
  return r;
}
}  // namespace

TEST_CASE(
    "the CNN's blocks keep oneDNN's blocked layout from a convolution through batch norm and "
    "pooling to the next: the same loss and gradients as plain") {
  const CnnRun plain = cnn_run(false), blocked = cnn_run(true);
  CHECK_FALSE(plain.conv_blocked);
  CHECK(blocked.pool_blocked == blocked.conv_blocked);  // passed on through batch norm and pooling
  if (detail::onednn_convolution()) CHECK(blocked.conv_blocked);
  CHECK(blocked.loss == doctest::Approx(plain.loss).epsilon(1e-6));
  REQUIRE(blocked.grads.size() == plain.grads.size());
  for (std::size_t i = 0; i < plain.grads.size(); ++i) {
    CAPTURE(i);
    double largest = 1;
    for (double v : testing::flat(plain.grads[i])) largest = std::max(largest, std::abs(v));
    CHECK(testing::max_difference(blocked.grads[i], plain.grads[i]) <= 1e-5 * largest);
  }
}
