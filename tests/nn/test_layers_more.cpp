// The layers a PyTorch user reaches for after the first CNN, each compared with PyTorch 1.13's
// outputs and gradients recorded by tests/data/torch_layers/make.py (same weights, same inputs).
#include <doctest/doctest.h>

#include <map>

#include "nn/conv.hpp"
#include "nn/layers.hpp"
#include "nn/sequence.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {

// The recorded layers: layers.npz, conv.npz and decoder.npz together (their keys differ).
const std::map<std::string, Tensor>& recorded() {
  static const std::map<std::string, Tensor> data = [] {
    std::map<std::string, Tensor> out;
    for (const char* file : {"layers.npz", "conv.npz", "decoder.npz"})
      for (auto& [name, t] :
           load_npz(std::string(XGRAD_SOURCE_DIR) + "/tests/data/torch_layers/" + file))
        out[name] = t;
    return out;
  }();
  return data;
}

// xgrad's name of a parameter -> PyTorch's (the same but for attention's packed projection).
std::string torch_name(std::string name) {
  for (const char* w : {"in_proj.weight", "in_proj.bias"}) {
    const std::size_t at = name.find(w);
    if (at != std::string::npos) name.replace(at + 7, 1, "_");
  }
  return name;
}

// Loads the recorded parameters of `key` into `m`, runs `forward` on the recorded input, and
// compares the output and the gradients of sum(out * u) with PyTorch's.
void check_layer(const std::string& key, Module& m,
                 const std::function<Tensor(const Tensor&)>& forward) {
  const std::string shown_key = key;  // INFO cannot capture a binding (clang 14)
  INFO(shown_key);
  const auto& d = recorded();
  StateDict weights;
  for (const auto& [name, p] : m.named_parameters()) {
    const std::string shown_name = name;  // INFO cannot capture a binding (clang 14)
    INFO(shown_name);
    REQUIRE(d.count(key + "." + torch_name(name)) == 1);
    weights.emplace_back(name, d.at(key + "." + torch_name(name)));
  }
  REQUIRE(weights.size() == m.named_parameters().size());
  m.load_state_dict(weights);
  const Tensor x = d.at(key + ".x").detach().requires_grad_(true);
  const Tensor out = forward(x);
  CHECK(testing::max_difference(out, d.at(key + ".out")) < 1e-12);
  sum(out * d.at(key + ".u")).backward();
  CHECK(testing::max_difference(x.grad(), d.at(key + ".grad_x")) < 1e-12);
  for (const auto& [name, p] : m.named_parameters()) {
    const std::string shown_name = name;  // INFO cannot capture a binding (clang 14)
    INFO(shown_name);
    CHECK(testing::max_difference(p.grad(), d.at(key + ".grad." + torch_name(name))) < 1e-12);
  }
}

}  // namespace

TEST_CASE("PReLU, GroupNorm, InstanceNorm2d, the 1-d pools, Softmax, LogSoftmax, Unflatten") {
  const auto call = [](Module& m) { return [&m](const Tensor& x) { return m.forward(x); }; };
  PReLU one(PReLUOptions().dtype(kFloat64));
  check_layer("prelu1", one, call(one));
  PReLU three(PReLUOptions().num_parameters(3).init(0.1).dtype(kFloat64));
  CHECK(three.weight.value<double>()(2) == 0.1);
  check_layer("prelu3", three, call(three));
  GroupNorm group(GroupNormOptions(2, 4).dtype(kFloat64));
  check_layer("group_norm", group, call(group));
  InstanceNorm2d instance(InstanceNorm2dOptions(3).affine(true).dtype(kFloat64));
  check_layer("instance_norm", instance, call(instance));
  MaxPool1d max(3, 2, 1);
  check_layer("max_pool1d", max, call(max));
  AvgPool1d avg(3, 2, 1);
  check_layer("avg_pool1d", avg, call(avg));
  AdaptiveAvgPool1d adaptive(3);
  check_layer("adaptive_avg_pool1d", adaptive, call(adaptive));
  Softmax softmax(1);
  check_layer("softmax", softmax, call(softmax));
  LogSoftmax log_softmax(-1);
  check_layer("log_softmax", log_softmax, call(log_softmax));
  Unflatten unflatten(1, {2, 3});
  check_layer("unflatten", unflatten, call(unflatten));
  CHECK_THROWS_WITH_AS(unflatten.forward(zeros({2, 5})), doctest::Contains("into [2, 3]"),
                       ShapeError);
  CHECK_THROWS_AS(GroupNorm(3, 4), ValueError);
  CHECK_THROWS_AS(InstanceNorm2d(InstanceNorm2dOptions(3).track_running_stats(true)), ValueError);
  CHECK_THROWS_WITH_AS(group.forward(zeros({2, 3, 4}, {.dtype = kFloat64})),
                       doctest::Contains("GroupNorm: needs x (N, 4, ...)"), ShapeError);
  CHECK_THROWS_WITH_AS(prelu(zeros({2, 3}), zeros({2})), doctest::Contains("one per channel (3"),
                       ShapeError);
  CHECK_THROWS_AS(max_pool1d(zeros({2, 3, 4, 5}), 2), ShapeError);
}

TEST_CASE("TransformerEncoderLayer (post-norm and norm_first) and TransformerEncoder, padded") {
  const Tensor padding = reshape(testing::i64({0, 0, 0, 0, 0, 0, 0, 0, 1, 1}).to(kBool), {2, 5});
  const auto options =
      TransformerEncoderLayerOptions(8, 2).dim_feedforward(16).dropout(0.0).dtype(kFloat64);
  TransformerEncoderLayer post(options);
  check_layer("encoder_post", post, [&](const Tensor& x) { return post.forward(x, padding); });
  TransformerEncoderLayer pre(
      TransformerEncoderLayerOptions(options).activation("gelu").norm_first(true));
  check_layer("encoder_pre", pre, [&](const Tensor& x) { return pre.forward(x, padding); });
  TransformerEncoder encoder(options, 2, true);
  check_layer("encoder", encoder, [&](const Tensor& x) { return encoder.forward(x, padding); });
  // PyTorch's defaults.
  const TransformerEncoderLayerOptions defaults(512, 8);
  CHECK(defaults.dim_feedforward() == 2048);
  CHECK(defaults.dropout() == 0.1);
  CHECK(defaults.activation() == "relu");
  CHECK_FALSE(defaults.norm_first());
  CHECK_THROWS_AS(TransformerEncoderLayer(TransformerEncoderLayerOptions(8, 2).activation("tanh")),
                  ValueError);
  CHECK_THROWS_AS(TransformerEncoderLayer(TransformerEncoderLayerOptions(8, 2).batch_first(false)),
                  ValueError);
}

TEST_CASE("Embedding::from_pretrained: the rows given, frozen unless asked") {
  const Tensor rows = testing::f64({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}});
  const auto frozen = Embedding::from_pretrained(rows);
  CHECK(testing::flat(frozen->forward(testing::i64({2, 0}))) == std::vector<double>{5, 6, 1, 2});
  CHECK_FALSE(frozen->weight.requires_grad());
  CHECK(frozen->parameters().size() == 1);
  const auto trained = Embedding::from_pretrained(rows, false, 1);
  CHECK(trained->weight.requires_grad());
  CHECK(testing::flat(trained->weight) == testing::flat(rows));  // the padding row kept as given
  sum(trained->forward(testing::i64({0, 1}))).backward();
  CHECK(testing::flat(trained->weight.grad()) == std::vector<double>{1, 1, 0, 0, 0, 0});
  rows.mutable_value<double>()(0, 0) = 100;  // a copy, not a view of the caller's tensor
  CHECK(trained->weight.value<double>()(0, 0) == 1.0);
  CHECK_THROWS_AS(Embedding::from_pretrained(testing::f64({1.0, 2.0})), ShapeError);
}

TEST_CASE("prelu, group_norm and max_pool1d: a loop reference and the conventions at 0 and ties") {
  // prelu at 0 takes the slope's side, as PyTorch's: d/dx = weight there.
  const Tensor x = testing::f64({-2.0, 0.0, 3.0}, true), w = testing::f64({0.5}, true);
  const Tensor y = prelu(x, w);
  CHECK(testing::flat(y) == std::vector<double>{-1.0, 0.0, 3.0});
  sum(y).backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{0.5, 0.5, 1.0});
  CHECK(testing::flat(w.grad()) == std::vector<double>{-2.0});
  // group_norm against a loop: each (sample, group) by its own mean and biased variance.
  Generator gen(8);
  const Tensor v = randn({2, 4, 3}, {.dtype = kFloat64}, gen);
  const xt::xarray<double> a = v.value<double>();
  const xt::xarray<double> got = group_norm(v, 2, Tensor(), Tensor(), 1e-5).value<double>();
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t g = 0; g < 2; ++g) {
      double mean = 0, var = 0;
      for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
        for (std::size_t l = 0; l < 3; ++l) mean += a(n, c, l) / 6;
      for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
        for (std::size_t l = 0; l < 3; ++l) var += (a(n, c, l) - mean) * (a(n, c, l) - mean) / 6;
      for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
        for (std::size_t l = 0; l < 3; ++l)
          CHECK(got(n, c, l) ==
                doctest::Approx((a(n, c, l) - mean) / std::sqrt(var + 1e-5)).epsilon(1e-12));
    }
  // max_pool1d: a tie sends the gradient to the first of the window's largest entries.
  const Tensor t = testing::f64({{1.0, 3.0, 3.0, 2.0}}, true);
  sum(max_pool1d(t, 4)).backward();
  CHECK(testing::flat(t.grad()) == std::vector<double>{0, 1, 0, 0});
}

TEST_CASE("ConvTranspose2d and Upsample (nearest, bilinear, align_corners) agree with PyTorch") {
  const auto call = [](Module& m) { return [&m](const Tensor& x) { return m.forward(x); }; };
  ConvTranspose2d deconv(
      ConvTranspose2dOptions(3, 4, 3).stride(2).padding(1).output_padding(1).dtype(kFloat64));
  check_layer("deconv", deconv, call(deconv));
  CHECK(deconv.forward(zeros({1, 3, 5, 6}, {.dtype = kFloat64})).shape() == Shape{1, 4, 10, 12});
  ConvTranspose2d grouped(
      ConvTranspose2dOptions(4, 2, {2, 3}).groups(2).dilation(2).bias(false).dtype(kFloat64));
  check_layer("deconv_groups", grouped, call(grouped));
  using M = InterpolateMode;
  const std::vector<std::pair<std::string, UpsampleOptions>> ups = {
      {"nearest_size", UpsampleOptions().size({5, 7})},
      {"nearest_factor", UpsampleOptions().scale_factor({2.0})},
      {"bilinear", UpsampleOptions().size({5, 7}).mode(M::bilinear).align_corners(false)},
      {"bilinear_corners",
       UpsampleOptions().scale_factor({2.0, 1.5}).mode(M::bilinear).align_corners(true)},
      {"bilinear_down", UpsampleOptions().size({2, 3}).mode(M::bilinear)}};
  for (const auto& [key, options] : ups) {
    Upsample up(options);
    check_layer(key, up, call(up));
  }
  CHECK_THROWS_AS(interpolate(zeros({1, 1, 2, 2}), InterpolateFuncOptions()), ValueError);
  CHECK_THROWS_AS(
      interpolate(zeros({1, 1, 2, 2}), InterpolateFuncOptions().size({3}).align_corners(true)),
      ValueError);
  CHECK_THROWS_WITH_AS(interpolate(zeros({2, 2}), InterpolateFuncOptions().size({3})),
                       doctest::Contains("interpolate: needs floating images (N, C, H, W)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(conv_transpose2d(zeros({1, 3, 2, 2}), zeros({2, 4, 3, 3})),
                       doctest::Contains("conv_transpose2d: needs x (N, C, H, W) and weight (C"),
                       ShapeError);
}

TEST_CASE(
    "TransformerDecoderLayer (post-norm and norm_first) and TransformerDecoder agree with "
    "PyTorch, with a causal target mask and a padded memory") {
  const auto& d = recorded();
  const Tensor causal = tril(ones({4, 4})).to(kBool);  // xgrad's: true where a query may look
  const Tensor memory_padding =
      reshape(testing::i64({0, 0, 0, 0, 0, 0, 0, 0, 1, 1}).to(kBool), {2, 5});
  const auto options =
      TransformerDecoderLayerOptions(8, 2).dim_feedforward(16).dropout(0.0).dtype(kFloat64);
  TransformerDecoderLayer post(options);
  TransformerDecoderLayer pre(
      TransformerDecoderLayerOptions(options).activation("gelu").norm_first(true));
  TransformerDecoder decoder(options, 2, true);
  for (const auto& [key, module] : std::vector<std::pair<std::string, Module*>>{
           {"decoder_post", &post}, {"decoder_pre", &pre}, {"decoder", &decoder}}) {
    const Tensor memory = d.at(key + ".memory").detach().requires_grad_(true);
    check_layer(key, *module, [&, m = module](const Tensor& x) {
      if (auto* layer = dynamic_cast<TransformerDecoderLayer*>(m))
        return layer->forward(x, memory, causal, Tensor(), Tensor(), memory_padding);
      return static_cast<TransformerDecoder*>(m)->forward(x, memory, causal, Tensor(), Tensor(),
                                                          memory_padding);
    });
    const std::string shown_key = key;  // INFO cannot capture a binding (clang 14)
    INFO(shown_key);
    CHECK(testing::max_difference(memory.grad(), d.at(key + ".grad_memory")) < 1e-12);
  }
  CHECK_THROWS_WITH_AS(post.forward(zeros({1, 2, 8})), doctest::Contains("needs the memory"),
                       ValueError);
}
