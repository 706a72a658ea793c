// The sequence layers: GRU and LSTM against a hand-unrolled reference of PyTorch's gate equations
// and against finite differences through 5 steps; attention's causality and heads; weight tying;
// errors; and small models that learn.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "nn/sequence.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {

double sigmoid_of(double v) { return 1 / (1 + std::exp(-v)); }

// Row r of W (rows, cols) times v, plus b[r] (b may be empty).
double affine(const std::vector<double>& W, std::size_t cols, std::size_t r,
              const std::vector<double>& v, const std::vector<double>& b) {
  double s = b.empty() ? 0.0 : b[r];
  for (std::size_t c = 0; c < cols; ++c) s += W[r * cols + c] * v[c];
  return s;
}

std::vector<double> flat_of(const Tensor& t) {
  return t.defined() ? testing::flat(t) : std::vector<double>{};
}

// One sample through one layer of a GRU or LSTM, written out gate by gate as PyTorch's
// documentation defines them. xs: T inputs of size I; h, c: the state, updated.
std::vector<std::vector<double>> reference_layer(bool lstm,
                                                 const std::vector<std::vector<double>>& xs,
                                                 std::vector<double>& h, std::vector<double>& c,
                                                 const Tensor& wih, const Tensor& whh,
                                                 const Tensor& bih, const Tensor& bhh) {
  const std::size_t H = h.size(), I = wih.size(1);
  const auto Wi = flat_of(wih), Wh = flat_of(whh), Bi = flat_of(bih), Bh = flat_of(bhh);
  std::vector<std::vector<double>> out;
  for (const auto& x : xs) {
    std::vector<double> next(H), cell(H);
    for (std::size_t j = 0; j < H; ++j) {
      const auto gate = [&](std::size_t k) {  // input and hidden parts of gate k, unit j
        return std::pair{affine(Wi, I, k * H + j, x, Bi), affine(Wh, H, k * H + j, h, Bh)};
      };
      if (lstm) {
        const auto [ii, hi] = gate(0);
        const auto [if_, hf] = gate(1);
        const auto [ig, hg] = gate(2);
        const auto [io, ho] = gate(3);
        const double i = sigmoid_of(ii + hi), f = sigmoid_of(if_ + hf), g = std::tanh(ig + hg),
                     o = sigmoid_of(io + ho);
        cell[j] = f * c[j] + i * g;
        next[j] = o * std::tanh(cell[j]);
      } else {
        const auto [ir, hr] = gate(0);
        const auto [iz, hz] = gate(1);
        const auto [in, hn] = gate(2);
        const double r = sigmoid_of(ir + hr), z = sigmoid_of(iz + hz);
        const double n = std::tanh(in + r * hn);
        next[j] = (1 - z) * n + z * h[j];
      }
    }
    h = next;
    if (lstm) c = cell;
    out.push_back(h);
  }
  return out;
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(tol));
}

}  // namespace

TEST_CASE("GRU and LSTM, two layers deep, equal a hand-unrolled reference of the gate equations") {
  for (bool lstm : {false, true}) {
    INFO((lstm ? "LSTM" : "GRU"));
    Generator gen(1);
    const std::size_t B = 2, T = 3, I = 3, H = 4, L = 2;
    std::shared_ptr<Recurrent> net;
    if (lstm)
      net = std::make_shared<LSTM>(LSTMOptions(I, H).num_layers(L).dtype(kFloat64), gen);
    else
      net = std::make_shared<GRU>(GRUOptions(I, H).num_layers(L).dtype(kFloat64), gen);
    const Tensor x = randn({B, T, I}, {.dtype = kFloat64}, gen);
    const Tensor h0 = randn({L, B, H}, {.dtype = kFloat64}, gen);
    const Tensor c0 = lstm ? randn({L, B, H}, {.dtype = kFloat64}, gen) : Tensor();
    const RecurrentOutput out = net->forward(x, h0, c0);
    REQUIRE(out.output.shape() == Shape{B, T, H});
    REQUIRE(out.h.shape() == Shape{L, B, H});
    const auto named = net->named_parameters();
    REQUIRE(named.size() == 8);
    CHECK(named[0].first == "weight_ih_l0");
    CHECK(named[7].first == "bias_hh_l1");
    const auto X = testing::flat(x), H0 = testing::flat(h0), C0 = flat_of(c0);
    const auto O = testing::flat(out.output), HN = testing::flat(out.h);
    for (std::size_t b = 0; b < B; ++b) {
      std::vector<std::vector<double>> seq;
      for (std::size_t t = 0; t < T; ++t)
        seq.emplace_back(X.begin() + long((b * T + t) * I), X.begin() + long((b * T + t + 1) * I));
      for (std::size_t l = 0; l < L; ++l) {
        std::vector<double> h(H0.begin() + long((l * B + b) * H),
                              H0.begin() + long((l * B + b + 1) * H));
        std::vector<double> c = lstm ? std::vector<double>(C0.begin() + long((l * B + b) * H),
                                                           C0.begin() + long((l * B + b + 1) * H))
                                     : std::vector<double>(H);
        seq = reference_layer(lstm, seq, h, c, named[4 * l].second, named[4 * l + 1].second,
                              named[4 * l + 2].second, named[4 * l + 3].second);
        check_close(std::vector<double>(HN.begin() + long((l * B + b) * H),
                                        HN.begin() + long((l * B + b + 1) * H)),
                    h, 1e-12);
        if (lstm) {
          const auto CN = testing::flat(out.c);
          check_close(std::vector<double>(CN.begin() + long((l * B + b) * H),
                                          CN.begin() + long((l * B + b + 1) * H)),
                      c, 1e-12);
        }
      }
      for (std::size_t t = 0; t < T; ++t)
        check_close(std::vector<double>(O.begin() + long((b * T + t) * H),
                                        O.begin() + long((b * T + t + 1) * H)),
                    seq[t], 1e-12);
    }
  }
}

TEST_CASE("GRU and LSTM gradients through 5 steps agree with finite differences") {
  for (bool lstm : {false, true}) {
    INFO((lstm ? "LSTM" : "GRU"));
    Generator gen(2);
    const std::size_t I = 2, H = 3, G = lstm ? 4 : 3;
    const Tensor w = randn({2, 5, H}, {.dtype = kFloat64}, gen);  // weights the outputs
    std::vector<Tensor> inputs = {randn({2, 5, I}, {.dtype = kFloat64}, gen),
                                  randn({2, H}, {.dtype = kFloat64}, gen),
                                  randn({2, H}, {.dtype = kFloat64}, gen),  // c0, for the LSTM
                                  randn({G * H, I}, {.dtype = kFloat64}, gen) * 0.5,
                                  randn({G * H, H}, {.dtype = kFloat64}, gen) * 0.5,
                                  randn({G * H}, {.dtype = kFloat64}, gen),
                                  randn({G * H}, {.dtype = kFloat64}, gen)};
    for (Tensor& t : inputs) t = t.detach().requires_grad_(true);
    const TensorFn f = [&](const std::vector<Tensor>& p) {
      const Tensor xp = linear(p[0], p[3], p[5]);
      LSTMState state{p[1], p[2]};
      std::vector<Tensor> outs;
      for (std::ptrdiff_t t = 0; t < 5; ++t) {
        if (lstm)
          state = lstm_step(select(xp, 1, t), state, p[4], p[6]);
        else
          state.h = gru_step(select(xp, 1, t), state.h, p[4], p[6]);
        outs.push_back(state.h);
      }
      return sum(stack(outs, 1) * w) + (lstm ? sum(state.c) : scalar(0.0, {.dtype = kFloat64}));
    };
    // The functional steps are what the layer runs: same output with the layer's parameters.
    std::shared_ptr<Recurrent> net;
    if (lstm)
      net = std::make_shared<LSTM>(LSTMOptions(I, H).dtype(kFloat64));
    else
      net = std::make_shared<GRU>(GRUOptions(I, H).dtype(kFloat64));
    const auto params = net->parameters();
    const RecurrentOutput out =
        net->forward(inputs[0], unsqueeze(inputs[1], 0), lstm ? unsqueeze(inputs[2], 0) : Tensor());
    const Tensor expected =
        f({inputs[0], inputs[1], inputs[2], params[0], params[1], params[2], params[3]});
    const Tensor got = sum(out.output * w) + (lstm ? sum(out.c) : scalar(0.0, {.dtype = kFloat64}));
    CHECK(got.item() == doctest::Approx(expected.item()).epsilon(1e-12));
    CHECK_GRADCHECK(gradcheck(f, inputs));
  }
}

TEST_CASE("GRUCell and LSTMCell are one step of the layers") {
  Generator gen(3);
  GRUCell gru(3, 4, true, kFloat64, gen);
  const Tensor x = randn({2, 3}, {.dtype = kFloat64}, gen),
               h = randn({2, 4}, {.dtype = kFloat64}, gen);
  check_close(
      testing::flat(gru.forward(x, h)),
      testing::flat(gru_step(linear(x, gru.weight_ih, gru.bias_ih), h, gru.weight_hh, gru.bias_hh)),
      1e-15);
  LSTMCell lstm(3, 4, false, kFloat64, gen);
  CHECK(lstm.parameters().size() == 2);
  CHECK(lstm.str() == "LSTMCell(3, 4, bias=false)");
  const LSTMState s = lstm.forward(x, {h, h});
  CHECK(s.c.shape() == Shape{2, 4});
  CHECK_THROWS_WITH_AS(
      gru.forward(x, randn({2, 5}, {.dtype = kFloat64})),
      doctest::Contains("GRUCell: needs input (B, 3) and state (B, 4), got [2, 3] and [2, 5]"),
      ShapeError);
  GRU layer(3, 4);
  CHECK_THROWS_WITH_AS(layer.forward(zeros({2, 5, 2})),
                       doctest::Contains("GRU: needs input (B, T, 3), got [2, 5, 2]"), ShapeError);
  CHECK_THROWS_WITH_AS(
      layer.forward(zeros({2, 5, 3}), zeros({2, 2, 4})),
      doctest::Contains("expected (num_layers * directions, B, hidden) = [1, 2, 4]"), ShapeError);
}

TEST_CASE("sequence layers take LibTorch's options classes") {
  const GRU gru(GRUOptions(4, 3).num_layers(2).bias(false).batch_first(true));
  CHECK(gru.num_layers() == 2);
  CHECK(gru.named_parameters().size() == 4);  // weight_ih and weight_hh per layer, no bias
  CHECK(gru.str().find("GRU(4, 3, num_layers=2, bias=false, batch_first=true)") !=
        std::string::npos);
  CHECK_THROWS_WITH_AS(LSTM(LSTMOptions(4, 3).batch_first(false)),
                       doctest::Contains("batch_first(false) is not supported"), ValueError);
  CHECK_THROWS_WITH_AS(LSTM(LSTMOptions(4, 3).dropout(1.0)), doctest::Contains("dropout in [0, 1)"),
                       ValueError);
  const MultiheadAttention attn(MultiheadAttentionOptions(8, 2).bias(false).dropout(0.1));
  CHECK_FALSE(attn.in_proj->bias.defined());
  CHECK(attn.str().find("dropout=0.1") != std::string::npos);
  const TransformerBlock block(TransformerBlockOptions(8, 2).mlp_hidden(12).dtype(kFloat64));
  CHECK(block.fc1->weight.shape() == Shape{12, 8});
  CHECK(block.fc1->weight.dtype() == kFloat64);
}

TEST_CASE("MultiheadAttention: causal, heads that must divide the width, cross-attention") {
  Generator gen(4);
  MultiheadAttention attn(MultiheadAttentionOptions(8, 2).causal(true).dtype(kFloat64), gen);
  CHECK(attn.str().find("embed_dim=8, num_heads=2") != std::string::npos);
  const Tensor x = randn({2, 5, 8}, {.dtype = kFloat64}, gen);
  const Tensor y = attn(x);
  REQUIRE(y.shape() == Shape{2, 5, 8});
  // Changing the last position leaves every earlier output as it was.
  const Tensor changed = concat({slice(x, 1, 0, 4), randn({2, 1, 8}, {.dtype = kFloat64}, gen)}, 1);
  const auto a = testing::flat(y), b = testing::flat(attn(changed));
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t i = 0; i < 4 * 8; ++i) CHECK(a[n * 40 + i] == doctest::Approx(b[n * 40 + i]));
  CHECK(a[39] != doctest::Approx(b[39]));
  // Self-attention through the three-input form gives the same.
  check_close(testing::flat(attn.forward(x, x, x, Tensor(), true)), a, 1e-12);
  CHECK_THROWS_WITH_AS(MultiheadAttention(8, 3),
                       doctest::Contains("3 heads do not divide the width 8"), ValueError);
  CHECK_THROWS_AS(attn(zeros({2, 5, 6}, {.dtype = kFloat64})), ShapeError);
  // Gradients with respect to the input, through a whole block, against finite differences.
  TransformerBlock block(TransformerBlockOptions(8, 2).mlp_hidden(6).dtype(kFloat64), gen);
  const Tensor w = randn({2, 3, 8}, {.dtype = kFloat64}, gen);
  const TensorFn f = [&](const std::vector<Tensor>& p) { return sum(block(p[0]) * w); };
  CHECK_GRADCHECK(
      gradcheck(f, {randn({2, 3, 8}, {.dtype = kFloat64, .requires_grad = true}, gen)}));
  CHECK(block.named_parameters().size() == 12);
}

TEST_CASE("Embedding takes int64 token ids and sits first in a Sequential") {
  Generator gen(4);
  Sequential net;
  net.push_back(std::make_shared<Embedding>(5, 3, std::nullopt, kFloat64, gen))
      .push_back(std::make_shared<Linear>(3, 2, true, kFloat64, gen));
  const Tensor tokens = testing::i64({{1, 4}, {0, 0}});
  const Tensor out = net(tokens);
  CHECK(out.shape() == Shape{2, 2, 2});
  const Tensor table = net.parameters()[0];
  sum(out).backward();
  CHECK(table.grad().defined());
  CHECK_THROWS_WITH_AS(net(tensor({{1, 4}, {0, 0}})),
                       doctest::Contains("embedding: indices must be an int64 tensor, got float32"),
                       DtypeError);
}

TEST_CASE("Embedding: padding row zero and frozen; a tied output layer lists the matrix once") {
  Generator gen(5);
  Embedding emb(6, 4, 0, kFloat64, gen);
  CHECK(emb.str() == "Embedding(6, 4, padding_idx=0)");
  for (std::size_t j = 0; j < 4; ++j) CHECK(emb.weight.value<double>()(0, j) == 0.0);
  CHECK(emb.weight.value<double>()(1, 0) != 0.0);
  CHECK_THROWS_WITH_AS(emb(testing::i64({1, 6})), doctest::Contains("vocabulary of 6"), IndexError);

  // Weight tying: the output layer is the embedding's matrix, registered under a second name.
  struct Tied : Module {
    std::shared_ptr<Embedding> tok;
    Tensor head;
    explicit Tied(Generator& g) {
      tok = register_module("tok", std::make_shared<Embedding>(6, 4, std::nullopt, kFloat64, g));
      head = register_parameter("head", tok->weight);
    }
    Tensor logits(const Tensor& idx) { return linear(tok->forward(idx), head); }
    std::string name() const override { return "Tied"; }
  };
  Tied net(gen);
  REQUIRE(net.parameters().size() == 1);
  CHECK(net.named_parameters()[0].first == "head");  // its own parameters come first
  softmax_cross_entropy(net.logits(testing::i64({1, 2, 1})), testing::i64({2, 1, 0})).backward();
  // The gradient is the sum of both uses: the rows looked up, and the output layer.
  const Tensor copy = net.head.detach().requires_grad_(true);
  softmax_cross_entropy(linear(embedding(copy, testing::i64({1, 2, 1})), copy), testing::i64({2, 1, 0})).backward();
  check_close(testing::flat(net.head.grad()), testing::flat(copy.grad()), 1e-14);
  const Tensor lookup_only = net.head.detach().requires_grad_(true);
  softmax_cross_entropy(linear(embedding(lookup_only, testing::i64({1, 2, 1})), net.head.detach()),
                        testing::i64({2, 1, 0}))
      .backward();
  CHECK(testing::flat(lookup_only.grad()) != testing::flat(copy.grad()));
  PositionalEmbedding pos(4, 3);
  CHECK_THROWS_WITH_AS(
      pos(zeros({2, 5, 3})),
      doctest::Contains("a sequence of length 5 is longer than the table's 4 positions"),
      ShapeError);
  LayerNorm ln({3});
  CHECK(ln.str() == "LayerNorm([3], eps=1e-05, elementwise_affine=true)");
}

TEST_CASE("a small transformer and a GRU learn a repeating sequence") {
  // Next-character prediction on "0123 0123 ...": each character determines the next.
  const std::size_t V = 4, T = 8, B = 4;
  std::vector<std::int64_t> inputs(B * T), targets(B * T);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      inputs[b * T + t] = std::int64_t((b + t) % V);
      targets[b * T + t] = std::int64_t((b + t + 1) % V);
    }
  const Tensor x = from_vector(inputs, {B, T}), y = from_vector(targets, {B * T});
  Generator gen(6);
  Embedding tok(V, 16, std::nullopt, kFloat32, gen);
  PositionalEmbedding pos(T, 16, kFloat32, gen);
  TransformerBlock block(16, 2, gen);
  LayerNorm ln({16});
  Linear head(16, V, true, kFloat32, gen);
  GRU gru(16, 16, gen);
  Linear gru_head(16, V, true, kFloat32, gen);
  for (bool transformer : {true, false}) {
    INFO((transformer ? "transformer" : "GRU"));
    std::vector<Tensor> params = tok.parameters();
    for (Module* m : std::initializer_list<Module*>{&pos, &block, &ln, &head, &gru, &gru_head})
      for (const Tensor& p : m->parameters()) params.push_back(p);
    Adam adam(params, {.lr = 0.01});
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      adam.zero_grad();
      const Tensor e = tok(x);
      const Tensor logits = transformer ? head(ln(block(pos(e)))) : gru_head(gru(e));
      const Tensor loss = softmax_cross_entropy(reshape(logits, {-1, std::ptrdiff_t(V)}), y);
      if (step == 0) first = loss.item();
      last = loss.item();
      loss.backward();
      adam.step();
    }
    CHECK(last < 0.1 * first);
  }
}
