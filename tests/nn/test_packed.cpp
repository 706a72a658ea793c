// Ragged batches: pack_padded_sequence, GRU and LSTM over packed sequences (bidirectional too),
// pad_packed_sequence, compared with PyTorch's outputs, final states and gradients recorded by
// tests/data/torch_rnn/make.py; and the packing itself, checked by hand.
#include <doctest/doctest.h>

#include <map>

#include "autograd/engine.hpp"
#include "nn/sequence.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;
using namespace xgrad::nn::utils::rnn;

namespace {

const std::string kData = std::string(XGRAD_SOURCE_DIR) + "/tests/data/torch_rnn/";

std::map<std::string, Tensor> read(const std::string& file) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : load_npz(kData + file)) out[name] = t;
  return out;
}

}  // namespace

TEST_CASE("packing by hand: the steps of the sequences still going, longest first, and back") {
  // Rows b, steps t: entry 10 b + t; lengths 2, 3, 1 (not sorted).
  xt::xarray<double> v = xt::zeros<double>({3, 3, 1});
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t t = 0; t < 3; ++t) v(b, t, 0) = 10.0 * double(b) + double(t);
  const Tensor x(v, true);
  const Tensor lengths = testing::i64({2, 3, 1});
  CHECK_THROWS_WITH_AS(pack_padded_sequence(x, lengths, true), doctest::Contains("enforce_sorted"),
                       ValueError);
  const PackedSequence p = pack_padded_sequence(x, lengths, true, false);
  CHECK(testing::flat(p.data) == std::vector<double>{10, 0, 20, 11, 1, 12});
  CHECK(testing::ints(p.batch_sizes) == testing::I64s{3, 2, 1});
  CHECK(testing::ints(p.sorted_indices) == testing::I64s{1, 0, 2});
  CHECK(testing::ints(p.unsorted_indices) == testing::I64s{1, 0, 2});
  const auto [padded, back] = pad_packed_sequence(p, true, -1.0);
  CHECK(testing::flat(padded) == std::vector<double>{0, 1, -1, 10, 11, 12, 20, -1, -1});
  CHECK(testing::ints(back) == testing::I64s{2, 3, 1});
  CHECK(std::get<0>(pad_packed_sequence(p, true, 0.0, 5)).shape() == Shape{3, 5, 1});
  CHECK_THROWS_AS(pad_packed_sequence(p, true, 0.0, 2), ValueError);
  // Time first, LibTorch's default layout.
  const PackedSequence q = pack_padded_sequence(transpose(x, 0, 1), lengths, false, false);
  CHECK(testing::flat(q.data) == testing::flat(p.data));
  CHECK(std::get<0>(pad_packed_sequence(q)).shape() == Shape{3, 3, 1});
  // Only the real steps get a gradient.
  sum(std::get<0>(pad_packed_sequence(p, true))).backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{1, 1, 0, 1, 1, 1, 1, 0, 0});
  CHECK_THROWS_WITH_AS(pack_padded_sequence(x, testing::i64({2, 4, 1}), true, false),
                       doctest::Contains("sequence 1 has length 4; expected 1 to T = 3"),
                       ValueError);
  CHECK_THROWS_AS(pack_padded_sequence(x, testing::i64({2, 3}), true, false), ShapeError);
}

TEST_CASE("GRU and LSTM over a ragged batch, bidirectional, two layers, agree with PyTorch") {
  for (const bool lstm : {false, true}) {
    INFO((lstm ? "LSTM" : "GRU"));
    std::map<std::string, Tensor> d = read(lstm ? "lstm.npz" : "gru.npz");
    const RecurrentOptions options =
        RecurrentOptions(3, 4).num_layers(2).bidirectional(true).dtype(kFloat64);
    std::shared_ptr<Recurrent> layer =
        lstm ? std::shared_ptr<Recurrent>(std::make_shared<LSTM>(options))
             : std::make_shared<GRU>(options);
    StateDict weights;
    for (const auto& [name, p] : layer->named_parameters()) {
      REQUIRE(d.count(name) == 1);  // PyTorch's names: weight_ih_l0_reverse, ...
      weights.emplace_back(name, d[name]);
    }
    layer->load_state_dict(weights);
    const Tensor x = d["x"].detach().requires_grad_(true);
    const Tensor h0 = d["h0"].detach().requires_grad_(true);
    const Tensor c0 = lstm ? d["c0"].detach().requires_grad_(true) : Tensor();
    const PackedRecurrentOutput r =
        layer->forward(pack_padded_sequence(x, d["lengths"], true, false), h0, c0);
    const auto [out, lengths] = pad_packed_sequence(r.output, true);
    CHECK(testing::ints(lengths) == testing::I64s{5, 2, 4, 1});
    CHECK(testing::max_difference(out, d["out"]) < 1e-12);
    CHECK(testing::max_difference(r.h, d["h"]) < 1e-12);
    Tensor loss = sum(out * d["u"]) + sum(r.h * d["v"]);
    if (lstm) {
      CHECK(testing::max_difference(r.c, d["c"]) < 1e-12);
      loss = loss + sum(r.c * d["w"]);
    }
    backward({loss});
    CHECK(testing::max_difference(x.grad(), d["grad_x"]) <
          1e-12);  // zero at the padding (1e3 there)
    CHECK(testing::max_difference(h0.grad(), d["grad_h0"]) < 1e-12);
    if (lstm) CHECK(testing::max_difference(c0.grad(), d["grad_c0"]) < 1e-12);
    for (const auto& [name, p] : layer->named_parameters()) {
      const std::string shown_name = name;  // INFO cannot capture a binding (clang 14)
      INFO(shown_name);
      CHECK(testing::max_difference(p.grad(), d["grad_" + name]) < 1e-12);
    }
    // Outputs at padded steps are zero; the padded input reached nothing.
    CHECK(out.value<double>()(3, 1, 0) == 0.0);
    CHECK(x.grad().value<double>()(1, 4, 2) == 0.0);
  }
}

TEST_CASE("a sequence's final state is its own last real step; padding changes nothing") {
  Generator gen(4);
  GRU gru(GRUOptions(2, 3).dtype(kFloat64), gen);
  const Tensor x = randn({3, 4, 2}, {.dtype = kFloat64}, gen);
  const Tensor lengths = testing::i64({4, 2, 3});
  const PackedRecurrentOutput r = gru.forward(pack_padded_sequence(x, lengths, true, false));
  for (std::size_t b = 0; b < 3; ++b) {
    const auto n = static_cast<std::size_t>(testing::ints(lengths)[b]);
    // The same sequence alone, cut to its length: the same final state.
    const Tensor alone = narrow(narrow(x, 0, std::ptrdiff_t(b), 1), 1, 0, n);
    const RecurrentOutput one = gru.forward(alone, Tensor());
    CHECK(testing::max_difference(select(r.h, 1, std::ptrdiff_t(b)), select(one.h, 1, 0)) < 1e-14);
  }
}

TEST_CASE("equal lengths, bidirectional: each direction in one op equals the steps one by one") {
  // Sequences of one length run each direction as one gru_sequence or lstm_sequence (the reverse
  // one over the steps flipped); with one more, shorter sequence in the batch every step runs on
  // its own. The equal sequences' outputs, final states and gradients agree.
  const std::size_t B = 3, T = 4;
  for (const bool lstm : {false, true}) {
    INFO((lstm ? "LSTM" : "GRU"));
    Generator gen(7);
    const RecurrentOptions options =
        RecurrentOptions(2, 3).num_layers(2).bidirectional(true).dtype(kFloat64);
    std::shared_ptr<Recurrent> layer =
        lstm ? std::shared_ptr<Recurrent>(std::make_shared<LSTM>(options, gen))
             : std::make_shared<GRU>(options, gen);
    const Tensor x = randn({B, T, 2}, {.dtype = kFloat64}, gen);
    const Tensor u = randn({B, T, 6}, {.dtype = kFloat64}, gen),
                 v = randn({4, B, 3}, {.dtype = kFloat64}, gen);
    const auto loss = [&](const Tensor& out, const Tensor& h) { return sum(out * u) + sum(h * v); };
    // Whole: every direction in one op.
    const Tensor whole_x = x.detach().requires_grad_(true);
    const RecurrentOutput whole = layer->forward(whole_x, Tensor());
    backward({loss(whole.output, whole.h)});
    std::vector<Tensor> whole_grads;
    for (const Tensor& p : layer->parameters()) whole_grads.push_back(p.grad().detach());
    layer->zero_grad();
    // Step by step: the same rows and a sequence of length 1 after them.
    const Tensor steps_x = x.detach().requires_grad_(true);
    const Tensor extra = randn({1, T, 2}, {.dtype = kFloat64}, gen);
    const PackedRecurrentOutput r = layer->forward(
        pack_padded_sequence(concat({steps_x, extra}, 0), testing::i64({4, 4, 4, 1}), true));
    const Tensor out = narrow(std::get<0>(pad_packed_sequence(r.output, true)), 0, 0, B);
    const Tensor h = narrow(r.h, 1, 0, B);
    CHECK(testing::max_difference(out, whole.output) < 1e-14);
    CHECK(testing::max_difference(h, whole.h) < 1e-14);
    if (lstm) CHECK(testing::max_difference(narrow(r.c, 1, 0, B), whole.c) < 1e-14);
    backward({loss(out, h)});
    CHECK(testing::max_difference(steps_x.grad(), whole_x.grad()) < 1e-13);
    const std::vector<Tensor> params = layer->parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
      CHECK(testing::max_difference(params[i].grad(), whole_grads[i]) < 1e-13);
  }
}

TEST_CASE("MultiheadAttention and TransformerBlock with a key padding mask agree with PyTorch") {
  std::map<std::string, Tensor> d = read("attention.npz");
  const Tensor padding = testing::i64({0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1}).to(kBool);
  const Tensor key_padding_mask = reshape(padding, {3, 5});
  // PyTorch's names -> xgrad's: in_proj_weight is in_proj.weight; the encoder layer's norm1,
  // linear1, ... are the block's ln1, fc1, ...
  const std::map<std::string, std::string> names = {
      {"in_proj.weight", "in_proj_weight"},
      {"in_proj.bias", "in_proj_bias"},
      {"out_proj.weight", "out_proj.weight"},
      {"out_proj.bias", "out_proj.bias"},
      {"attn.in_proj.weight", "self_attn.in_proj_weight"},
      {"attn.in_proj.bias", "self_attn.in_proj_bias"},
      {"attn.out_proj.weight", "self_attn.out_proj.weight"},
      {"attn.out_proj.bias", "self_attn.out_proj.bias"},
      {"ln1.weight", "norm1.weight"},
      {"ln1.bias", "norm1.bias"},
      {"ln2.weight", "norm2.weight"},
      {"ln2.bias", "norm2.bias"},
      {"fc1.weight", "linear1.weight"},
      {"fc1.bias", "linear1.bias"},
      {"fc2.weight", "linear2.weight"},
      {"fc2.bias", "linear2.bias"}};
  MultiheadAttention mha(MultiheadAttentionOptions(8, 2).dtype(kFloat64));
  TransformerBlock block(
      TransformerBlockOptions(8, 2).mlp_hidden(16).causal(false).dtype(kFloat64));
  for (const auto& [prefix, module] :
       std::vector<std::pair<std::string, Module*>>{{"mha.", &mha}, {"block.", &block}}) {
    const std::string shown_prefix = prefix;  // INFO cannot capture a binding (clang 14)
    INFO(shown_prefix);
    StateDict weights;
    for (const auto& [name, p] : module->named_parameters())
      weights.emplace_back(name, d.at(prefix + names.at(name)));
    module->load_state_dict(weights);
    const Tensor x = d["x"].detach().requires_grad_(true);
    const Tensor out =
        prefix == "mha." ? mha.forward(x, key_padding_mask) : block.forward(x, key_padding_mask);
    CHECK(testing::max_difference(out, d[prefix + "out"]) < 1e-12);
    sum(out * d[prefix + "u"]).backward();
    CHECK(testing::max_difference(x.grad(), d[prefix + "grad_x"]) < 1e-12);
    for (const auto& [name, p] : module->named_parameters()) {
      const std::string shown_name = name;  // INFO cannot capture a binding (clang 14)
      INFO(shown_name);
      CHECK(testing::max_difference(p.grad(), d.at(prefix + "grad." + names.at(name))) < 1e-12);
    }
  }
  // The padded keys get nothing from any query: the gradient of x there comes only from their
  // own (query) rows, and changing them changes no real step's output.
  const Tensor changed = d["x"].clone();
  changed.mutable_value<double>()(2, 4, 0) += 100.0;
  const Tensor a = mha.forward(d["x"], key_padding_mask),
               b = mha.forward(changed, key_padding_mask);
  CHECK(testing::max_difference(narrow(a, 1, 0, 2), narrow(b, 1, 0, 2)) == 0.0);
  CHECK_THROWS_WITH_AS(mha.forward(d["x"], zeros({3, 4}, {.dtype = kBool})),
                       doctest::Contains("key_padding_mask must be bool (B, S) = (3, 5)"),
                       ShapeError);
}
