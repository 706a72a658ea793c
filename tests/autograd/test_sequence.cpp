// The ops of sequence models against plain loops, in both dtypes; their conventions (padding,
// ignored labels, masks) and errors. Gradients of every order are lines of the op table.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <set>

#include "autograd/detail/kernels.hpp"
#include "autograd/engine.hpp"
#include "autograd/functional.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {

Tensor random64(const Shape& shape, std::uint64_t seed, bool requires_grad = false) {
  Generator gen(seed);
  return randn(shape, {.dtype = kFloat64, .requires_grad = requires_grad}, gen);
}

// The entries of a tensor of either dtype, as doubles.
std::vector<double> values(const Tensor& t) { return testing::flat(cast(t.detach(), kFloat64)); }

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("entry " << i << ": " << a[i] << " against " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= tol * (1 + std::abs(b[i])));
  }
}

// layer_norm of x viewed as (R, D) by its definition.
std::vector<double> naive_layer_norm(const std::vector<double>& x, std::size_t D,
                                     const std::vector<double>& w, const std::vector<double>& b,
                                     double eps) {
  std::vector<double> out(x.size());
  for (std::size_t r = 0; r < x.size() / D; ++r) {
    double m = 0, v = 0;
    for (std::size_t j = 0; j < D; ++j) m += x[r * D + j] / double(D);
    for (std::size_t j = 0; j < D; ++j) v += (x[r * D + j] - m) * (x[r * D + j] - m) / double(D);
    for (std::size_t j = 0; j < D; ++j)
      out[r * D + j] = (x[r * D + j] - m) / std::sqrt(v + eps) * w[j] + b[j];
  }
  return out;
}

// Attention by its definition, one query at a time: (B, T, D) queries, (B, S, D) keys,
// (B, S, E) values; query t sees key s when allowed(t, s).
template <class Allowed>
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    Allowed allowed) {
  const auto Q = values(q), K = values(k), V = values(v);
  const std::size_t B = q.size(0), T = q.size(1), D = q.size(2), S = k.size(1), E = v.size(2);
  std::vector<double> out;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      std::vector<double> score(S, -std::numeric_limits<double>::infinity());
      double m = score[0];
      for (std::size_t s = 0; s < S; ++s) {
        if (!allowed(t, s)) continue;
        double dot = 0;
        for (std::size_t d = 0; d < D; ++d) dot += Q[(b * T + t) * D + d] * K[(b * S + s) * D + d];
        score[s] = dot / std::sqrt(double(D));
        m = std::max(m, score[s]);
      }
      double total = 0;
      for (double& e : score) total += (e = std::exp(e - m));
      for (std::size_t e = 0; e < E; ++e) {
        double acc = 0;
        for (std::size_t s = 0; s < S; ++s) acc += score[s] / total * V[(b * S + s) * E + e];
        out.push_back(acc);
      }
    }
  return out;
}

}  // namespace

TEST_CASE("embedding: rows looked up, repeats sum their gradients, the padding row gets none") {
  const Tensor w = random64({4, 3}, 1, true);
  const Tensor idx = testing::i64({{1, 3}, {1, 0}});
  const Tensor out = embedding(w, idx, 0);
  CHECK(out.shape() == Shape{2, 2, 3});
  const auto W = values(w), O = values(out);
  for (std::size_t p = 0; p < 4; ++p)
    for (std::size_t j = 0; j < 3; ++j)
      CHECK(O[p * 3 + j] == W[std::size_t(testing::ints(idx)[p]) * 3 + j]);  // padding row 0 looked up too
  sum(out * 2.0).backward();
  const auto G = values(w.grad());
  for (std::size_t j = 0; j < 3; ++j) {
    CHECK(G[0 * 3 + j] == 0.0);  // padding
    CHECK(G[1 * 3 + j] == 4.0);  // twice
    CHECK(G[2 * 3 + j] == 0.0);  // never
    CHECK(G[3 * 3 + j] == 2.0);
  }
}

TEST_CASE("embedding: an index out of range names it and the vocabulary size") {
  const Tensor w = random64({5, 2}, 2);
  CHECK_THROWS_WITH_AS(
      embedding(w, testing::i64({1, 5})),
      doctest::Contains("index 5 (position 1) is out of range for a vocabulary of 5"), IndexError);
  CHECK_THROWS_AS(embedding(w, testing::i64({-1})), IndexError);
  CHECK_THROWS_AS(embedding(w, testing::i64({0}), 7), IndexError);
  CHECK_THROWS_AS(embedding(random64({5}, 2), testing::i64({0})), ShapeError);
}

TEST_CASE("layer_norm equals its definition, in both dtypes, and checks its shapes") {
  const Tensor x = random64({3, 2, 5}, 3) * 3.0 + 1.0;
  const Tensor w = random64({5}, 4), b = random64({5}, 5);
  const auto expected = naive_layer_norm(values(x), 5, values(w), values(b), 1e-5);
  check_close(values(layer_norm(x, {5}, w, b)), expected, 1e-12);
  check_close(values(layer_norm(cast(x, kFloat32), {5}, cast(w, kFloat32), cast(b, kFloat32))),
              expected, 1e-5);
  // Over two axes, no affine part.
  const auto two = naive_layer_norm(values(x), 10, std::vector<double>(10, 1.0),
                                    std::vector<double>(10, 0.0), 1e-5);
  check_close(values(layer_norm(x, {2, 5})), two, 1e-12);
  CHECK_THROWS_AS(layer_norm(x, {2}), ShapeError);
  CHECK_THROWS_AS(layer_norm(x, {5}, random64({4}, 1)), ShapeError);
  CHECK_THROWS_AS(layer_norm(x, {5}, {}, {}, 0.0), ValueError);
}

TEST_CASE("layer_norm's float32 gradients agree with float64's") {
  const Tensor x = random64({4, 6}, 6), w = random64({6}, 7), b = random64({6}, 8);
  const Tensor g = random64({4, 6}, 9);
  std::vector<std::vector<double>> grads[2];
  for (Dtype dtype : {kFloat64, kFloat32}) {
    const Tensor xs = cast(x, dtype).requires_grad_(true), ws = cast(w, dtype).requires_grad_(true),
                 bs = cast(b, dtype).requires_grad_(true);
    sum(layer_norm(xs, {6}, ws, bs) * cast(g, dtype)).backward();
    grads[dtype == kFloat32].push_back(values(xs.grad()));
    grads[dtype == kFloat32].push_back(values(ws.grad()));
    grads[dtype == kFloat32].push_back(values(bs.grad()));
  }
  for (std::size_t i = 0; i < 3; ++i) check_close(grads[1][i], grads[0][i], 1e-4);
}

TEST_CASE("attention with a causal mask equals a per-position loop, in both dtypes") {
  const Tensor q = random64({2, 4, 3}, 10), k = random64({2, 4, 3}, 11),
               v = random64({2, 4, 5}, 12);
  const auto expected =
      naive_attention(q, k, v, [](std::size_t t, std::size_t s) { return s <= t; });
  check_close(values(scaled_dot_product_attention(q, k, v, {.is_causal = true})), expected, 1e-12);
  check_close(values(scaled_dot_product_attention(cast(q, kFloat32), cast(k, kFloat32),
                                                  cast(v, kFloat32), {.is_causal = true})),
              expected, 1e-5);
  // The same mask given explicitly (1 = may attend), and 4-D inputs (B, H, T, D).
  const Tensor mask = tril(ones({4, 4}, {.dtype = kFloat64}));
  check_close(values(scaled_dot_product_attention(q, k, v, {.mask = mask})), expected, 1e-12);
  const Tensor q4 = reshape(q, {1, 2, 4, 3}), k4 = reshape(k, {1, 2, 4, 3}),
               v4 = reshape(v, {1, 2, 4, 5});
  check_close(values(scaled_dot_product_attention(q4, k4, v4, {.is_causal = true})), expected,
              1e-12);
}

TEST_CASE("attention is stable for large scores; a query with every key masked gets NaN") {
  const Tensor q = random64({1, 2, 3}, 13) * 1e3, k = random64({1, 3, 3}, 14) * 1e3,
               v = random64({1, 3, 2}, 15);
  const auto out = values(scaled_dot_product_attention(q, k, v));
  for (double e : out) CHECK(std::isfinite(e));
  const Tensor mask = tensor({{0, 0, 0}, {1, 0, 1}}, {.dtype = kFloat64});
  const auto masked = values(scaled_dot_product_attention(q, k, v, {.mask = mask}));
  CHECK(std::isnan(masked[0]));
  CHECK(std::isfinite(masked[2]));
  CHECK_THROWS_AS(scaled_dot_product_attention(q, random64({1, 3, 4}, 1), v), ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, random64({1, 2, 2}, 1)), ShapeError);
}

TEST_CASE("matmul broadcasts batch axes as NumPy's") {
  const Tensor a = random64({2, 1, 3, 4}, 16), b = random64({3, 4, 2}, 17);
  const Tensor z = matmul(a, b);
  REQUIRE(z.shape() == Shape{2, 3, 3, 2});
  const auto A = values(a), B = values(b), Z = values(z);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 2; ++c) {
          double s = 0;
          for (std::size_t t = 0; t < 4; ++t) s += A[(i * 3 + r) * 4 + t] * B[(j * 4 + t) * 2 + c];
          CHECK(Z[((i * 3 + j) * 3 + r) * 2 + c] == doctest::Approx(s).epsilon(1e-12));
        }
  CHECK_THROWS_AS(matmul(random64({2, 3, 4}, 1), random64({3, 4, 2}, 1)), ShapeError);
  CHECK_THROWS_AS(matmul(random64({2, 3, 4}, 1), random64({2, 3, 2}, 1)), ShapeError);
}

TEST_CASE("cross-entropy's ignore_index: no loss, no gradient, not in the mean") {
  const Tensor logits = random64({4, 3}, 18, true);
  const Tensor kept = random64({4, 3}, 18, true);
  const Tensor loss = softmax_cross_entropy(logits, testing::i64({2, -100, 0, -100}));
  const Tensor reference =
      softmax_cross_entropy(index_select(kept, 0, {0, 2}), testing::i64({2, 0}));  // the two kept rows
  CHECK(loss.item() == doctest::Approx(reference.item()).epsilon(1e-14));
  loss.backward();
  reference.backward();
  const auto g = values(logits.grad()), gk = values(kept.grad());
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(g[1 * 3 + c] == 0.0);
    CHECK(g[3 * 3 + c] == 0.0);
    CHECK(g[0 * 3 + c] == doctest::Approx(gk[0 * 3 + c]).epsilon(1e-14));
    CHECK(g[2 * 3 + c] == doctest::Approx(gk[2 * 3 + c]).epsilon(1e-14));
  }
  // Any other out-of-range label is still an error.
  CHECK_THROWS_AS(softmax_cross_entropy(logits, testing::i64({2, -1, 0, 1})), IndexError);
}

TEST_CASE("cumsum, tril, triu, masked_fill, one_hot, split and chunk") {
  const Tensor x = testing::f64({{1, 2, 3}, {4, 5, 6}});
  CHECK(testing::flat(cumsum(x, 1)) == std::vector<double>{1, 3, 6, 4, 9, 15});
  CHECK(testing::flat(cumsum(x, 0)) == std::vector<double>{1, 2, 3, 5, 7, 9});
  CHECK(testing::flat(tril(x)) == std::vector<double>{1, 0, 0, 4, 5, 0});
  CHECK(testing::flat(triu(x, 1)) == std::vector<double>{0, 2, 3, 0, 0, 6});
  CHECK(testing::flat(tril(x, -1)) == std::vector<double>{0, 0, 0, 4, 0, 0});
  // tril replaces, it does not multiply: an infinity above the diagonal becomes 0.
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(testing::flat(tril(testing::f64({{1, inf}, {2, 3}}))) == std::vector<double>{1, 0, 2, 3});
  const Tensor mask = tensor({{0, 1, 0}, {1, 0, 0}}, {.dtype = kBool});
  CHECK(testing::flat(masked_fill(x, mask, -inf)) == std::vector<double>{1, -inf, 3, -inf, 5, 6});
  CHECK(testing::flat(masked_fill(x, x > 4.0, 0)) == std::vector<double>{1, 2, 3, 4, 0, 0});
  // A float mask is refused, as PyTorch's: which value would count as true is not obvious.
  CHECK_THROWS_WITH_AS(masked_fill(x, testing::f64({{0, 1, 0}, {1, 0, 0}}), 0.0),
                       doctest::Contains("masked_fill: the mask must be a bool tensor, got float64"),
                       DtypeError);
  const Tensor oh = one_hot(testing::i64({2, 0}), 3, kFloat64);
  CHECK(oh.shape() == Shape{2, 3});
  CHECK(testing::flat(oh) == std::vector<double>{0, 0, 1, 1, 0, 0});
  CHECK_THROWS_AS(one_hot(testing::i64({3}), 3), IndexError);
  const auto parts = split(x, 2, 1);
  REQUIRE(parts.size() == 2);
  CHECK(testing::flat(parts[0]) == std::vector<double>{1, 2, 4, 5});
  CHECK(testing::flat(parts[1]) == std::vector<double>{3, 6});
  const auto sized = split(x, std::vector<std::size_t>{1, 2}, -1);
  CHECK(sized[1].shape() == Shape{2, 2});
  CHECK_THROWS_AS(split(x, std::vector<std::size_t>{1, 1}, 1), ShapeError);
  const auto chunks = chunk(random64({5, 2}, 1), 3);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].size(0) == 2);
  CHECK(chunks[2].size(0) == 1);
}

TEST_CASE("multinomial: reproducible from the seed, frequencies as the weights, zeros never") {
  const Tensor p = testing::f64({0.2, 0.0, 0.5, 0.3});
  Generator a(7), b(7);
  const Tensor drawn = multinomial(p, 2000, true, a);
  CHECK(drawn.dtype() == kInt64);
  const testing::I64s first = testing::ints(drawn);
  CHECK(first == testing::ints(multinomial(p, 2000, true, b)));
  std::map<std::int64_t, int> count;
  for (std::int64_t c : first) ++count[c];
  CHECK(count[1] == 0);
  CHECK(count[0] / 2000.0 == doctest::Approx(0.2).epsilon(0.2));
  CHECK(count[2] / 2000.0 == doctest::Approx(0.5).epsilon(0.1));
  // Without replacement: distinct categories, those with weight only.
  const Tensor drawn_rows = multinomial(testing::f64({{1, 1, 1, 0}, {0, 2, 1, 1}}), 3, false, a);
  CHECK(drawn_rows.shape() == Shape{2, 3});
  const auto& rows = drawn_rows.value<std::int64_t>();
  for (std::size_t r = 0; r < 2; ++r) {
    std::set<std::int64_t> seen;
    for (std::size_t s = 0; s < 3; ++s) seen.insert(rows(r, s));
    CHECK(seen.size() == 3);
    CHECK(seen.count(r == 0 ? 3 : 0) == 0);
  }
  CHECK_THROWS_AS(multinomial(p, 4, false, a), ValueError);  // 3 categories can be drawn
  CHECK_THROWS_AS(multinomial(testing::f64({1, -1}), 1, true, a), ValueError);
  CHECK_THROWS_AS(multinomial(p, 5, false, a), ValueError);
}

TEST_CASE("gelu equals x Phi(x) and its derivative Phi(x) + x phi(x), in both dtypes") {
  const Tensor x = random64({50}, 19) * 3.0;
  const auto X = values(x);
  std::vector<double> value, slope;
  for (double v : X) {
    const double cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    value.push_back(v * cdf);
    slope.push_back(cdf + v * std::exp(-v * v / 2) / std::sqrt(2 * M_PI));
  }
  for (Dtype dtype : {kFloat64, kFloat32}) {
    const Tensor leaf = cast(x, dtype).requires_grad_(true);
    const Tensor y = gelu(leaf);
    sum(y).backward();
    const double tol = dtype == kFloat64 ? 1e-14 : 1e-6;
    check_close(values(y), value, tol);
    check_close(values(leaf.grad()), slope, tol);
  }
  // The lower tail keeps its relative digits, where (1 + erf(x / sqrt 2)) / 2 would be 0 (below
  // x = -5.5 in float, -8.3 in double): within 16 units of rounding u and the rounding of the
  // argument carried through the exponential (x^2 u), against long double.
  for (Dtype dtype : {kFloat64, kFloat32}) {
    INFO(dtype_name(dtype));
    const Tensor x =
        dtype == kFloat64 ? testing::f64({-6, -9, -20, -37}) : testing::f64({-4, -6, -8, -10, -12});
    const std::vector<double> X = values(x);
    const Tensor leaf = cast(x, dtype).requires_grad_(true);
    const Tensor y = gelu(leaf);
    sum(y).backward();
    const std::vector<double> v = values(y), d = values(leaf.grad());
    // The slope again as the JVP and as a recorded backward (create_graph) compute it: in ops,
    // Phi from the erfc op.
    const std::vector<double> d_jvp =
        values(jvp([](const Tensor& t) { return gelu(t); }, leaf.detach(), ones_like(leaf)).second);
    const std::vector<double> d_recorded =
        values(grad({sum(gelu(leaf))}, {leaf}, {}, std::nullopt, true)[0]);
    const double u = dtype == kFloat64 ? 0x1p-53 : 0x1p-24;
    for (std::size_t i = 0; i < X.size(); ++i) {
      const long double xl = X[i], cdf = std::erfc(-xl / std::sqrt(2.0L)) / 2;
      const long double pdf =
          std::exp(-xl * xl / 2) / std::sqrt(2 * std::numbers::pi_v<long double>);
      const double want_v = double(xl * cdf), want_d = double(cdf + xl * pdf);
      const double tol = (16 + X[i] * X[i]) * u;
      INFO("x = " << X[i] << ": " << v[i] << " against " << want_v << ", slope " << d[i]
                  << " against " << want_d);
      CHECK(std::abs(v[i] - want_v) <= tol * std::abs(want_v));
      CHECK(std::abs(d[i] - want_d) <= tol * std::abs(want_d));
      CHECK(std::abs(d_jvp[i] - want_d) <= tol * std::abs(want_d));
      CHECK(std::abs(d_recorded[i] - want_d) <= tol * std::abs(want_d));
    }
  }
  CHECK(std::isnan(values(gelu(testing::f64({NAN})))[0]));
  // At +-inf as PyTorch 1.13.1 (float64 and float32): gelu(-inf) = -inf * 0 and the derivative
  // inf * 0 at both ends are NaN; far out but finite, the derivative is 1 or 0.
  for (Dtype dtype : {kFloat64, kFloat32}) {
    const Tensor leaf =
        cast(testing::f64({INFINITY, -INFINITY, 1e30, -1e30}), dtype).requires_grad_(true);
    const Tensor y = gelu(leaf);
    sum(y).backward();
    const std::vector<double> v = values(y), d = values(leaf.grad());
    CHECK(v[0] == INFINITY);
    CHECK(std::isnan(v[1]));
    CHECK(v[2] == doctest::Approx(1e30));
    CHECK(v[3] == 0.0);
    CHECK(std::isnan(d[0]));
    CHECK(std::isnan(d[1]));
    CHECK(d[2] == 1.0);
    CHECK(d[3] == 0.0);
  }
}

// multi_head_attention in float64 and float32 against the composite on the heads (chunk, heads,
// scaled_dot_product_attention, heads joined), values and gradients, causal or not.
void check_attention_against_composite(std::size_t B, std::size_t T, std::size_t H, std::size_t d,
                                       std::uint64_t seed) {
  const std::size_t E = H * d;
  const Tensor qkv = random64({B, T, 3 * E}, seed);
  const Tensor g = random64({B, T, E}, seed + 1);
  const auto heads = [&](const Tensor& x) {
    return transpose(reshape(x, {long(B), long(T), long(H), long(d)}), 1, 2);
  };
  for (bool causal : {false, true}) {
    const Tensor leaf = qkv.detach().requires_grad_(true);
    const auto parts = chunk(leaf, 3, -1);
    const Tensor composite =
        reshape(transpose(scaled_dot_product_attention(heads(parts[0]), heads(parts[1]),
                                                       heads(parts[2]), {.is_causal = causal}),
                          1, 2),
                {long(B), long(T), long(E)});
    sum(composite * g).backward();
    for (Dtype dtype : {kFloat64, kFloat32}) {
      INFO("T " << T << ", causal " << causal << ", " << dtype);
      const Tensor fused_leaf = cast(qkv, dtype).requires_grad_(true);
      const Tensor fused = multi_head_attention(fused_leaf, H, {.is_causal = causal});
      sum(fused * cast(g, dtype)).backward();
      const double tol = dtype == kFloat64 ? 1e-12 : 2e-5;
      check_close(values(fused), values(composite), tol);
      check_close(values(fused_leaf.grad()), values(leaf.grad()), tol);
    }
  }
}

TEST_CASE("multi_head_attention equals the composite on the heads, values and gradients") {
  const std::size_t B = 2, T = 5, H = 2;
  check_attention_against_composite(B, T, H, 3, 20);
  // A mask takes the composite path and gives the same as is_causal.
  const Tensor qkv = random64({B, T, 18}, 20);
  const Tensor mask = tril(ones({T, T}, {.dtype = kFloat64}));
  check_close(values(multi_head_attention(qkv, H, {.mask = mask})),
              values(multi_head_attention(qkv, H, {.is_causal = true})), 1e-12);
  CHECK_THROWS_WITH_AS(multi_head_attention(qkv, 4),
                       doctest::Contains("4 heads do not divide the width 6"), ShapeError);
  CHECK_THROWS_AS(multi_head_attention(random64({2, 5, 7}, 1), 1), ShapeError);
}

TEST_CASE("multi_head_attention over several blocks of rows, probabilities saved or made again") {
  // T spans two whole blocks of query rows and a short one; the backward reads the probabilities
  // saved whole or makes them again from the rows' log-sum-exp: both equal the composite.
  struct Saves {  // the setting for one scope
    explicit Saves(detail::AttentionSaves s) : before(detail::set_attention_saves(s)) {}
    ~Saves() { detail::set_attention_saves(before); }
    detail::AttentionSaves before;
  };
  for (auto saves :
       {detail::AttentionSaves::probabilities, detail::AttentionSaves::row_statistics}) {
    INFO("row statistics " << (saves == detail::AttentionSaves::row_statistics));
    const Saves scope(saves);
    check_attention_against_composite(2, 2 * detail::kAttentionRows + 5, 2, 3, 26);
    // With dropout (the same mask at every call) against finite differences.
    const Tensor x = random64({1, detail::kAttentionRows + 6, 6}, 28, true);
    for (bool causal : {false, true}) {
      const auto f = [&](const std::vector<Tensor>& in) {
        Generator gen(5);
        return multi_head_attention(in[0], 1,
                                    {.is_causal = causal, .dropout_p = 0.3, .generator = &gen});
      };
      const GradcheckReport report = gradcheck(f, {x});
      CHECK_MESSAGE(report.passed, report);
    }
  }
}

TEST_CASE("gru_cell: float32 values and gradients agree with float64's") {
  const std::vector<Tensor> inputs = {random64({3, 12}, 22), random64({3, 12}, 23),
                                      random64({3, 4}, 24)};
  const Tensor g = random64({3, 4}, 25);
  std::vector<std::vector<double>> got[2];
  for (Dtype dtype : {kFloat64, kFloat32}) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : inputs) leaves.push_back(cast(t, dtype).requires_grad_(true));
    const Tensor h = gru_cell(leaves[0], leaves[1], leaves[2]);
    sum(h * cast(g, dtype)).backward();
    auto& out = got[dtype == kFloat32];
    out.push_back(values(h));
    for (const Tensor& leaf : leaves) out.push_back(values(leaf.grad()));
  }
  for (std::size_t i = 0; i < got[0].size(); ++i) check_close(got[1][i], got[0][i], 1e-5);
  CHECK_THROWS_WITH_AS(gru_cell(random64({3, 12}, 1), random64({3, 9}, 1), random64({3, 4}, 1)),
                       doctest::Contains("gru_cell: needs projections (B, 3H) and a state (B, H)"),
                       ShapeError);
}

TEST_CASE("lstm_cell: equals the LSTM step written in ops, float64 and float32; saturated gates") {
  const std::size_t B = 3, H = 4;
  const Tensor xp = random64({B, 4 * H}, 31), hp = random64({B, 4 * H}, 32);
  const Tensor c = random64({B, H}, 33), gh = random64({B, H}, 34), gc = random64({B, H}, 35);
  // The composite: PyTorch's LSTM equations, one op at a time.
  std::vector<Tensor> ref_leaves = {xp.detach().requires_grad_(true),
                                    hp.detach().requires_grad_(true),
                                    c.detach().requires_grad_(true)};
  const std::vector<Tensor> a = chunk(add(ref_leaves[0], ref_leaves[1]), 4, -1);
  const Tensor c_next = add(mul(sigmoid(a[1]), ref_leaves[2]), mul(sigmoid(a[0]), tanh(a[2])));
  const Tensor h_next = mul(sigmoid(a[3]), tanh(c_next));
  sum(add(mul(h_next, gh), mul(c_next, gc))).backward();
  for (Dtype dtype : {kFloat64, kFloat32}) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : {xp, hp, c}) leaves.push_back(cast(t, dtype).requires_grad_(true));
    const Tensor out = lstm_cell(leaves[0], leaves[1], leaves[2]);
    REQUIRE(out.shape() == Shape{2, B, H});
    const Tensor h = select(out, 0, 0), cn = select(out, 0, 1);
    CHECK(h.is_contiguous());
    CHECK(cn.is_contiguous());
    sum(add(mul(h, cast(gh, dtype)), mul(cn, cast(gc, dtype)))).backward();
    const double tol = dtype == kFloat64 ? 1e-13 : 1e-6;
    check_close(values(h), values(h_next), tol);
    check_close(values(cn), values(c_next), tol);
    for (std::size_t k = 0; k < 3; ++k)
      check_close(values(leaves[k].grad()), values(ref_leaves[k].grad()), tol);
  }
  // Saturated gates: sigmoid(+-200) is 1 or 0 and tanh(200) is 1, with no NaN in the gradients.
  for (Dtype dtype : {kFloat64, kFloat32}) {
    const Tensor leaf = cast(testing::f64({{-200, 200, 200, 200}, {200, -200, 200, -200}}), dtype)
                            .requires_grad_(true);
    const Tensor out =
        lstm_cell(leaf, zeros({2, 4}, {.dtype = dtype}), full({2, 1}, 0.5, {.dtype = dtype}));
    // row 0: i = 0, f = 1, o = 1, so c' = c = 0.5, h' = tanh(0.5); row 1: i = 1, f = 0, o = 0,
    // so c' = g = 1, h' = 0. Laid out h' (both rows), then c'.
    check_close(values(out), {std::tanh(0.5), 0.0, 0.5, 1.0}, dtype == kFloat64 ? 1e-15 : 1e-7);
    sum(out).backward();
    for (double v : values(leaf.grad())) CHECK(std::isfinite(v));
  }
  CHECK_THROWS_WITH_AS(
      lstm_cell(random64({3, 12}, 1), random64({3, 12}, 1), random64({3, 4}, 1)),
      doctest::Contains("lstm_cell: needs projections (B, 4H) and a cell state (B, H)"),
      ShapeError);
}

TEST_CASE("the float32 path of every sequence op agrees with float64, values and gradients") {
  using F = std::function<Tensor(const std::vector<Tensor>&)>;
  struct Case {
    const char* op;
    std::vector<Shape> shapes;
    F f;
  };
  const std::vector<Case> cases = {
      {"embedding", {{5, 3}}, [](const auto& x) { return embedding(x[0], testing::i64({{1, 4}, {1, 0}})); }},
      {"cumsum", {{3, 4}}, [](const auto& x) { return cumsum(x[0], 1); }},
      {"tril", {{2, 3, 3}}, [](const auto& x) { return tril(x[0], -1); }},
      {"masked_fill",
       {{2, 3}},
       [](const auto& x) {
         return masked_fill(x[0], tensor({{1, 0, 0}, {0, 0, 1}}, {.dtype = kBool}), 2.0);
       }},
      {"matmul", {{2, 1, 3, 4}, {3, 4, 2}}, [](const auto& x) { return matmul(x[0], x[1]); }},
      {"scaled_dot_product_attention",
       {{2, 4, 3}, {2, 5, 3}, {2, 5, 2}},
       [](const auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
  };
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    INFO(std::string(c.op));
    std::vector<std::vector<double>> got[2];
    for (Dtype dtype : {kFloat64, kFloat32}) {
      std::vector<Tensor> leaves;
      for (std::size_t i = 0; i < c.shapes.size(); ++i)
        leaves.push_back(cast(random64(c.shapes[i], 100 + 10 * k + i), dtype).requires_grad_(true));
      const Tensor y = c.f(leaves);
      sum(y * cast(random64(y.shape(), 99), dtype)).backward();
      auto& out = got[dtype == kFloat32];
      out.push_back(values(y));
      for (const Tensor& leaf : leaves) out.push_back(values(leaf.grad()));
    }
    for (std::size_t i = 0; i < got[0].size(); ++i) check_close(got[1][i], got[0][i], 1e-5);
  }
}

TEST_CASE("masking selects: an unselected position's gradient is exactly 0, whatever flows there") {
  const double nan = std::numeric_limits<double>::quiet_NaN(),
               inf = std::numeric_limits<double>::infinity();
  // where: a NaN or inf upstream at a position that took b gives a exactly 0 there (0 x NaN was
  // NaN), and b exactly 0 where a was taken; in the second derivative too.
  const Tensor a = testing::f64({1.0, 2.0, 3.0}, true), b = testing::f64({4.0, 5.0, 6.0}, true);
  const Tensor c = testing::f64({1.0, 0.0, 1.0});
  const Tensor upstream = testing::f64({1.0, nan, inf});
  std::vector<Tensor> g = grad({where(c, a, b)}, {a, b}, {upstream});
  CHECK(values(g[0])[1] == 0.0);
  CHECK(values(g[1])[0] == 0.0);
  CHECK(values(g[1])[2] == 0.0);
  CHECK(std::isnan(values(g[1])[1]));  // the selected position carries what came
  const Tensor u = testing::f64({1.0, 2.0, 3.0}, true);
  const Tensor first = grad({sum(mul(where(c, mul(u, u), b), upstream))}, {u}, {}, std::nullopt,
                            true)[0];
  const std::vector<double> second = values(grad({sum(first)}, {u})[0]);
  CHECK(second[1] == 0.0);
  CHECK(std::isinf(second[2]));
  // masked_fill, tril: the filled positions get 0 even when the rest of the graph gives NaN.
  const Tensor x = testing::f64({{1.0, 2.0}, {3.0, 4.0}}, true);
  const Tensor fill_mask = tensor({{0, 1}, {0, 0}}, {.dtype = kBool});
  const Tensor nan_up = testing::f64({{1.0, nan}, {1.0, 1.0}});
  CHECK(values(grad({masked_fill(x, fill_mask, 0.0)}, {x}, {nan_up})[0])[1] == 0.0);
  CHECK(values(grad({tril(x)}, {x}, {nan_up})[0])[1] == 0.0);
  // clamp and elu through where: a NaN upstream at a clamped entry.
  const Tensor y = testing::f64({-5.0, 0.5, 5.0}, true);
  const Tensor clamp_up = testing::f64({nan, 1.0, inf});
  const std::vector<double> gc = values(grad({clamp(y, -1.0, 1.0)}, {y}, {clamp_up})[0]);
  CHECK(gc[0] == 0.0);
  CHECK(gc[1] == 1.0);
  CHECK(gc[2] == 0.0);
  // max along an axis and maximum: the losing entries get 0 under a NaN upstream.
  const Tensor m = testing::f64({{1.0, 3.0, 2.0}}, true);
  const std::vector<double> gm =
      values(grad({max(m, Axes{1}, true)}, {m}, {full({1, 1}, nan, {.dtype = kFloat64})})[0]);
  CHECK(gm[0] == 0.0);
  CHECK(std::isnan(gm[1]));
  CHECK(gm[2] == 0.0);
  const std::vector<Tensor> gx = grad({maximum(a, b)}, {a, b}, {upstream});
  for (double e : values(gx[0])) CHECK(e == 0.0);  // b wins everywhere
}

TEST_CASE("attention: a query whose keys are all masked leaves the other gradients finite") {
  // As PyTorch's masked_fill + softmax + matmul: that query's output is NaN, and so are its
  // attention weights, so v's gradient (weights^T g) is NaN even where g is 0; q's and k's are
  // finite (before, every entry of k's gradient was NaN: 0 x NaN through the mask).
  const Tensor q = random64({1, 3, 4}, 21, true), k = random64({1, 5, 4}, 22, true),
               v = random64({1, 5, 2}, 23, true);
  const Tensor mask = tensor({{0, 0, 0, 0, 0}, {1, 1, 0, 1, 0}, {1, 1, 1, 1, 1}}, {.dtype = kFloat64});
  const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = mask});
  REQUIRE(std::isnan(values(out)[0]));
  // The loss reads the two queries that have keys.
  const Tensor loss = sum(index_select(out, 1, {1, 2}));
  const std::vector<Tensor> g = grad({loss}, {q, k});
  for (const Tensor& t : g)
    for (double e : values(t)) CHECK(std::isfinite(e));
  for (std::size_t j = 0; j < 4; ++j) CHECK(values(g[0])[j] == 0.0);  // the masked query's
}

TEST_CASE("cross-entropy over a batch whose labels are all ignore_index: NaN loss, gradient 0") {
  const Tensor logits = random64({3, 4}, 24, true);
  const Tensor loss = softmax_cross_entropy(logits, testing::i64({-100, -100, -100}));
  CHECK(std::isnan(loss.item()));  // 0 / 0, as PyTorch
  loss.backward();
  for (double e : values(logits.grad())) CHECK(e == 0.0);
  // Second order too.
  const Tensor first = grad({softmax_cross_entropy(logits, testing::i64({-100, -100, -100}))}, {logits}, {},
                            std::nullopt, true)[0];
  for (double e : values(first)) CHECK(e == 0.0);
  // Summed, the loss is 0 and so is the gradient.
  CHECK(softmax_cross_entropy(logits, testing::i64({-100, -100, -100}), {.reduction = Reduction::sum})
            .item() == 0.0);
}

TEST_CASE("float32 softmax, log_softmax and cross-entropy are exact for equal logits at any scale") {
  // [v, v, v, v]: softmax 1/4 each, log_softmax -log 4, cross-entropy log 4. Computed as
  // x - (m + log s), the row summed to 1.0035 at 1e5, 4.0 at 1e8, and the loss was 0.
  for (const double v : {1e5, 1e7, 1e8, 1e15, 1e30, -1e30}) {
    INFO("v = " << v);
    const Tensor x = full({2, 4}, v, {.dtype = kFloat32});
    for (double p : values(softmax(x, -1))) CHECK(p == doctest::Approx(0.25).epsilon(1e-6));
    for (double l : values(log_softmax(x, -1)))
      CHECK(l == doctest::Approx(-std::log(4.0)).epsilon(1e-6));
    CHECK(softmax_cross_entropy(x, testing::i64({0, 3})).item() ==
          doctest::Approx(std::log(4.0)).epsilon(1e-6));
    // One logit larger by 1: the exact softmax of [1, 0, 0, 0].
    const Tensor y = add(x, tensor({{1, 0, 0, 0}, {0, 0, 0, 1}}, {.dtype = kFloat32}));
    const double top = std::exp(1.0) / (std::exp(1.0) + 3);
    if (std::abs(v) < 1e7) {  // float32 keeps v + 1 apart from v only below 2^24
      CHECK(values(softmax(y, -1))[0] == doctest::Approx(top).epsilon(1e-5));
      CHECK(softmax_cross_entropy(y, testing::i64({0, 3})).item() ==
            doctest::Approx(-std::log(top)).epsilon(1e-5));
    }
  }
}

TEST_CASE("attention's scale: any finite value is used (0 and negative too); NaN and inf refused") {
  const Tensor q = random64({1, 3, 4}, 31), k = random64({1, 5, 4}, 32), v = random64({1, 5, 2}, 33);
  const Tensor qkv = random64({2, 3, 12}, 34);
  for (const double scale : {-0.7, 0.0, 0.35}) {
    INFO("scale " << scale);
    // softmax(scale q k^T) v, by hand.
    const std::vector<double> expected =
        values(matmul(softmax(mul(matmul(q, transpose(k)), scale), -1), v));
    check_close(values(scaled_dot_product_attention(q, k, v, {.scale = scale})), expected, 1e-12);
    // The fused multi-head path takes the same scale as the composite on the heads.
    const std::vector<Tensor> parts = chunk(qkv, 3, -1);
    const std::vector<double> fused = values(multi_head_attention(qkv, 1, {.scale = scale}));
    check_close(fused, values(scaled_dot_product_attention(parts[0], parts[1], parts[2],
                                                           {.scale = scale})),
                1e-12);
  }
  check_close(values(scaled_dot_product_attention(q, k, v)),
              values(scaled_dot_product_attention(q, k, v, {.scale = 0.5})), 1e-14);  // 1/sqrt(4)
  for (const double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, {.scale = bad}),
                         doctest::Contains("scale must be finite"), ValueError);
    CHECK_THROWS_WITH_AS(multi_head_attention(qkv, 1, {.scale = bad}),
                         doctest::Contains("scale must be finite"), ValueError);
  }
}

TEST_CASE("float32 fast backwards equal the ones written in ops, over arrays of several blocks") {
  // The fast paths (one pass, cache blocks of detail::kCacheBlock = 2048 elements) against the
  // same op's backward under create_graph, which is written in ops: same inputs, same dtype.
  using F = std::function<Tensor(const Tensor&)>;
  const std::size_t n = 2 * 2048 + 37;  // two whole blocks and a short one
  const Tensor w = cast(random64({64}, 51), kFloat32), b = cast(random64({64}, 52), kFloat32);
  const std::vector<std::pair<const char*, F>> cases = {
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"layer_norm",
       [](const Tensor& x) {
         return layer_norm(reshape(x, {-1, 64}), {64});
       }},
      {"layer_norm affine",
       [&](const Tensor& x) {
         return layer_norm(reshape(x, {-1, 64}), {64}, w, b);
       }},
      {"multi_head_attention",
       [](const Tensor& x) {
         return multi_head_attention(reshape(x, {4, 32, -1}), 2);
       }},
  };
  const std::size_t rows = 4 * 32;  // divides n rounded down to whole rows of 64 and of 96
  for (const auto& [op, f] : cases) {
    INFO(op);
    const std::size_t size = std::string(op) == "multi_head_attention"   ? rows * 96
                             : std::string(op).starts_with("layer_norm") ? n / 64 * 64
                                                                         : n;
    const Tensor x = cast(random64({size}, 53) * 2.0, kFloat32).requires_grad_(true);
    const Tensor y = f(x);
    const Tensor g = cast(random64(y.shape(), 54), kFloat32);
    const Tensor fast = grad({y}, {x}, {g}, true, false)[0];
    const Tensor in_ops = grad({y}, {x}, {g}, true, true)[0];
    check_close(values(fast), values(in_ops), 2e-5);
  }
  // The blocks do not change a value: each entry as computed alone.
  const Tensor x = cast(random64({n}, 55) * 3.0, kFloat32);
  for (const auto& [op, f] :
       std::vector<std::pair<const char*, F>>(cases.begin(), cases.begin() + 3)) {
    INFO(op);
    const std::vector<double> all = values(f(x));
    for (std::size_t i : {std::size_t{0}, std::size_t{2047}, std::size_t{2048}, n - 1})
      CHECK(values(f(slice(x, 0, i, i + 1)))[0] == all[i]);
  }
}

TEST_CASE(
    "gru_sequence equals the loop of linear and gru_cell, float64 and float32, with and "
    "without a bias") {
  const std::size_t T = 4, B = 3, H = 5;
  const Tensor xp = random64({T, B, 3 * H}, 61), h0 = random64({B, H}, 62);
  const Tensor w = random64({3 * H, H}, 63) * 0.5, b = random64({3 * H}, 64);
  const Tensor g = random64({T, B, H}, 65);
  for (bool with_bias : {true, false}) {
    for (Dtype dtype : {kFloat64, kFloat32}) {
      INFO("bias " << with_bias << ", " << dtype_name(dtype));
      std::vector<Tensor> fused, loop;
      for (const Tensor& t : {xp, h0, w, b}) {
        fused.push_back(cast(t, dtype).requires_grad_(true));
        loop.push_back(cast(t, dtype).requires_grad_(true));
      }
      const Tensor bias = with_bias ? fused[3] : Tensor();
      const Tensor out = gru_sequence(fused[0], fused[1], fused[2], bias);
      REQUIRE(out.shape() == Shape{T, B, H});
      std::vector<Tensor> states;
      Tensor h = loop[1];
      for (std::size_t t = 0; t < T; ++t) {
        h = gru_cell(select(loop[0], 0, std::ptrdiff_t(t)),
                     linear(h, loop[2], with_bias ? loop[3] : Tensor()), h);
        states.push_back(h);
      }
      const Tensor want = stack(states, 0);
      const double tol = dtype == kFloat64 ? 1e-13 : 2e-6;
      check_close(values(out), values(want), tol);
      sum(mul(out, cast(g, dtype))).backward();
      sum(mul(want, cast(g, dtype))).backward();
      for (std::size_t k = 0; k < (with_bias ? 4u : 3u); ++k) {
        INFO("gradient of input " << k);
        check_close(values(fused[k].grad()), values(loop[k].grad()), tol);
      }
      if (!with_bias) CHECK_FALSE(fused[3].grad().defined());
    }
  }
  CHECK_THROWS_WITH_AS(
      gru_sequence(random64({2, 3, 12}, 1), random64({3, 5}, 1), random64({15, 5}, 1)),
      doctest::Contains("gru_sequence: needs projections xp (T, B, 3H)"), ShapeError);
  CHECK_THROWS_WITH_AS(
      gru_sequence(random64({0, 3, 15}, 1), random64({3, 5}, 1), random64({15, 5}, 1)),
      doctest::Contains("with T > 0"), ShapeError);
  CHECK_THROWS_AS(gru_sequence(xp, h0, w, random64({H}, 1)), ShapeError);
  CHECK_THROWS_AS(gru_sequence(xp, cast(h0, kFloat32), w), DtypeError);
}

TEST_CASE(
    "lstm_sequence equals the loop of linear and lstm_cell, float64 and float32, with and "
    "without a bias") {
  const std::size_t T = 4, B = 3, H = 5;
  const Tensor xp = random64({T, B, 4 * H}, 71), h0 = random64({B, H}, 72),
               c0 = random64({B, H}, 73);
  const Tensor w = random64({4 * H, H}, 74) * 0.5, b = random64({4 * H}, 75);
  const Tensor g = random64({2, T, B, H}, 76);
  for (bool with_bias : {true, false}) {
    for (Dtype dtype : {kFloat64, kFloat32}) {
      INFO("bias " << with_bias << ", " << dtype_name(dtype));
      std::vector<Tensor> fused, loop;
      for (const Tensor& t : {xp, h0, c0, w, b}) {
        fused.push_back(cast(t, dtype).requires_grad_(true));
        loop.push_back(cast(t, dtype).requires_grad_(true));
      }
      const Tensor out =
          lstm_sequence(fused[0], fused[1], fused[2], fused[3], with_bias ? fused[4] : Tensor());
      REQUIRE(out.shape() == Shape{2, T, B, H});
      std::vector<Tensor> hs, cs;
      Tensor h = loop[1], c = loop[2];
      for (std::size_t t = 0; t < T; ++t) {
        const Tensor next = lstm_cell(select(loop[0], 0, std::ptrdiff_t(t)),
                                      linear(h, loop[3], with_bias ? loop[4] : Tensor()), c);
        h = select(next, 0, 0);
        c = select(next, 0, 1);
        hs.push_back(h);
        cs.push_back(c);
      }
      const Tensor want = stack({stack(hs, 0), stack(cs, 0)}, 0);
      const double tol = dtype == kFloat64 ? 1e-13 : 2e-6;
      check_close(values(out), values(want), tol);
      sum(mul(out, cast(g, dtype))).backward();
      sum(mul(want, cast(g, dtype))).backward();
      for (std::size_t k = 0; k < (with_bias ? 5u : 4u); ++k) {
        INFO("gradient of input " << k);
        check_close(values(fused[k].grad()), values(loop[k].grad()), tol);
      }
    }
  }
  CHECK_THROWS_WITH_AS(lstm_sequence(random64({2, 3, 15}, 1), random64({3, 5}, 1),
                                     random64({3, 5}, 1), random64({20, 5}, 1)),
                       doctest::Contains("lstm_sequence: needs projections xp (T, B, 4H)"),
                       ShapeError);
  CHECK_THROWS_AS(lstm_sequence(xp, h0, random64({B, H + 1}, 1), w), ShapeError);
  CHECK_THROWS_AS(lstm_sequence(xp, h0, cast(c0, kFloat32), w), DtypeError);
}

TEST_CASE(
    "lstm_sequence's W_hh gradient equals the loop's where the gate rows lie 4 KB apart (made as "
    "its transpose) and where they do not") {
  // 4H entries of 8 bytes at H = 128 and of 4 bytes at H = 256 are 4096 bytes:
  // recurrent_weight_grad then takes its transposed product; H = 96 in float64 keeps the direct
  // one.
  const std::size_t T = 3, B = 2;
  for (auto [dtype, H] :
       {std::pair{kFloat64, std::size_t(128)}, std::pair{kFloat64, std::size_t(96)},
        std::pair{kFloat32, std::size_t(256)}}) {
    INFO(dtype_name(dtype) << ", H = " << H);
    std::vector<Tensor> fused, loop;
    for (const Tensor& t : {random64({T, B, 4 * H}, 81), random64({B, H}, 82), random64({B, H}, 83),
                            random64({4 * H, H}, 84) * (1.0 / double(H))}) {
      fused.push_back(cast(t, dtype).requires_grad_(true));
      loop.push_back(cast(t, dtype).requires_grad_(true));
    }
    const Tensor g = cast(random64({2, T, B, H}, 85), dtype);
    sum(mul(lstm_sequence(fused[0], fused[1], fused[2], fused[3]), g)).backward();
    std::vector<Tensor> hs, cs;
    Tensor h = loop[1], c = loop[2];
    for (std::size_t t = 0; t < T; ++t) {
      const Tensor next =
          lstm_cell(select(loop[0], 0, std::ptrdiff_t(t)), linear(h, loop[3], Tensor()), c);
      h = select(next, 0, 0);
      c = select(next, 0, 1);
      hs.push_back(h);
      cs.push_back(c);
    }
    sum(mul(stack({stack(hs, 0), stack(cs, 0)}, 0), g)).backward();
    check_close(values(fused[3].grad()), values(loop[3].grad()), dtype == kFloat64 ? 1e-13 : 2e-6);
  }
}
