// conv2d, the pools, unfold/fold, pad and dropout against plain loops, in both dtypes; their
// conventions and errors. Gradients of every order are lines of the op table.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <span>
#include <utility>

#include "autograd/blas.hpp"
#include "autograd/detail/conv_onednn.hpp"
#include "autograd/engine.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// A case's options as plain values (designated initializers), and as conv2d takes them.
struct Settings {
  std::array<std::size_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::size_t groups = 1;
};
Conv2dFuncOptions func(const Settings& o) {
  return Conv2dFuncOptions()
      .stride(o.stride)
      .padding(o.padding)
      .dilation(o.dilation)
      .groups(o.groups);
}

// conv2d by its definition, in double: out[n, o, p, q] = b[o] + sum over the group's channels c
// and the kernel (i, j) of w[o, c, i, j] x[n, g C/G + c, p sh - ph + i dh, q sw - pw + j dw].
template <class T>
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& b,
                               const Settings& o, Shape& shape) {
  const auto& X = x.value<T>();
  const auto& W = w.value<T>();
  const std::size_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
  const std::size_t O = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3);
  const std::size_t oh = (H + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  const std::size_t ow = (Wd + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
  shape = {N, O, oh, ow};
  std::vector<double> out;
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t oc = 0; oc < O; ++oc)
      for (std::size_t p = 0; p < oh; ++p)
        for (std::size_t q = 0; q < ow; ++q) {
          double s = b.defined() ? double(b.value<T>()(oc)) : 0.0;
          const std::size_t g = oc / (O / o.groups);
          for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t i = 0; i < kh; ++i)
              for (std::size_t j = 0; j < kw; ++j) {
                const long y = long(p * o.stride[0] + i * o.dilation[0]) - long(o.padding[0]);
                const long z = long(q * o.stride[1] + j * o.dilation[1]) - long(o.padding[1]);
                if (y < 0 || z < 0 || y >= long(H) || z >= long(Wd)) continue;
                s += double(W(oc, c, i, j)) *
                     double(X(n, g * Cg + c, std::size_t(y), std::size_t(z)));
              }
          out.push_back(s);
        }
  (void)C;
  return out;
}

// conv2d's gradients by its definition, in double, for the output's gradient g: every product
// w[o, c, i, j] x[n, gC + c, y, z] of the sums, times g, added into dx, dw and db.
struct Grads {
  xt::xarray<double> dx, dw, db;
};
Grads naive_grads(const Tensor& x, const Tensor& w, const Tensor& g, const Settings& o) {
  const auto X = cast(x, kFloat64).value<double>();
  const auto Wt = cast(w, kFloat64).value<double>();
  const auto G = cast(g, kFloat64).value<double>();
  Grads r{xt::zeros<double>(x.shape()), xt::zeros<double>(w.shape()),
          xt::zeros<double>({w.size(0)})};
  const std::size_t O = w.size(0), Cg = w.size(1);
  for (std::size_t n = 0; n < g.size(0); ++n)
    for (std::size_t oc = 0; oc < O; ++oc)
      for (std::size_t p = 0; p < g.size(2); ++p)
        for (std::size_t q = 0; q < g.size(3); ++q) {
          r.db(oc) += G(n, oc, p, q);
          const std::size_t grp = oc / (O / o.groups);
          for (std::size_t ch = 0; ch < Cg; ++ch)
            for (std::size_t i = 0; i < w.size(2); ++i)
              for (std::size_t j = 0; j < w.size(3); ++j) {
                const long y = long(p * o.stride[0] + i * o.dilation[0]) - long(o.padding[0]);
                const long z = long(q * o.stride[1] + j * o.dilation[1]) - long(o.padding[1]);
                if (y < 0 || z < 0 || y >= long(x.size(2)) || z >= long(x.size(3))) continue;
                const std::size_t at[] = {n, grp * Cg + ch, std::size_t(y), std::size_t(z)};
                r.dw(oc, ch, i, j) += G(n, oc, p, q) * X(at[0], at[1], at[2], at[3]);
                r.dx(at[0], at[1], at[2], at[3]) += G(n, oc, p, q) * Wt(oc, ch, i, j);
              }
        }
  return r;
}

// Each entry within the bound of a float32 sum of its K products, K eps sum |products|, against
// the exact sum (in double) and the same sum of the products' magnitudes.
void within_sum_bound(const std::vector<double>& got, std::span<const double> exact,
                      std::span<const double> magnitude, double K) {
  REQUIRE(got.size() == exact.size());
  const double eps = std::numeric_limits<float>::epsilon();
  double worst_ratio = 0;
  for (std::size_t i = 0; i < exact.size(); ++i)
    worst_ratio = std::max(worst_ratio, std::abs(got[i] - exact[i]) / (K * eps * magnitude[i]));
  INFO("worst error / (K eps sum |products|): " << worst_ratio);
  CHECK(worst_ratio <= 1);
}
std::span<const double> all(const xt::xarray<double>& a) { return std::span(a.data(), a.size()); }

// A 3 x 3 convolution of padding 1 (the reference CNN's) on random x, w, b, and its gradients for
// a random g, by the definition in double, with the same sums of the products' magnitudes: what
// within_sum_bound holds a float32 run to.
struct SumBounds {
  static constexpr Settings o{.padding = {1, 1}};
  Tensor x, w, b, g;
  std::vector<double> exact, magnitude;
  Grads grads, grads_magnitude;
  SumBounds(const Shape& xs, const Shape& ws, Generator& gen)
      : x(randn(xs, {}, gen)),
        w(randn(ws, {}, gen)),
        b(randn({ws[0]}, {}, gen)),
        g(randn({xs[0], ws[0], xs[2], xs[3]}, {}, gen)) {
    Shape shape;
    exact = naive_conv<float>(x, w, b, o, shape);
    magnitude = naive_conv<float>(abs(x), abs(w), abs(b), o, shape);
    grads = naive_grads(x, w, g, o);
    grads_magnitude = naive_grads(abs(x), abs(w), abs(g), o);
  }
  // One float32 run from copies of x, w and b (x's gradient only when asked for): the output and
  // the gradients of x, w and b as doubles, x's empty when not asked for.
  std::array<std::vector<double>, 4> run(bool input_gradient = true) const {
    const Tensor xv = input_gradient ? x.detach().requires_grad_() : x.detach(),
                 wv = w.detach().requires_grad_(), bv = b.detach().requires_grad_();
    const Tensor y = conv2d(xv, wv, bv, func(o));
    sum(mul(y, g)).backward();
    const auto flat = [](const Tensor& t) { return testing::flat(cast(t, kFloat64)); };
    return {flat(y), input_gradient ? flat(xv.grad()) : std::vector<double>{}, flat(wv.grad()),
            flat(bv.grad())};
  }
  // Each entry of a run within its bound: K = the products per entry of each sum.
  void check(const std::array<std::vector<double>, 4>& r) const {
    const double per_output = double(w.size(1) * 9), per_input = double(w.size(0) * 9),
                 per_weight = double(x.size(0) * x.size(2) * x.size(3));
    within_sum_bound(r[0], exact, magnitude, per_output);
    if (!r[1].empty()) within_sum_bound(r[1], all(grads.dx), all(grads_magnitude.dx), per_input);
    within_sum_bound(r[2], all(grads.dw), all(grads_magnitude.dw), per_weight);
    within_sum_bound(r[3], all(grads.db), all(grads_magnitude.db), per_weight);
  }
  // The shape as oneDNN's plans are keyed
  detail::ConvGeometry geometry() const {
    return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), 3,      3,
            x.size(2), x.size(3), 1,         {1, 1},    {1, 1},    {1, 1}, true};
  }
};

double worst(const std::vector<double>& a, const Tensor& t) {
  const auto b = testing::flat(cast(t, kFloat64));
  REQUIRE(a.size() == b.size());
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::max(w, std::abs(a[i] - b[i]));
  return w;
}
}  // namespace

TEST_CASE("conv2d equals its definition: stride, padding, dilation, groups, batch 1, both dtypes") {
  Generator gen(31);
  struct Case {
    Shape x, w;
    Settings o;
  };
  const Case cases[] = {
      {{1, 1, 5, 5}, {1, 1, 3, 3}, {}},
      {{2, 3, 7, 6}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}}},
      {{3, 4, 9, 8}, {6, 2, 3, 3}, {.dilation = {2, 1}, .groups = 2}},
      {{2, 6, 5, 7},
       {6, 1, 2, 3},
       {.stride = {1, 2}, .padding = {1, 1}, .dilation = {1, 2}, .groups = 6}},
      {{1, 2, 28, 28}, {8, 2, 3, 3}, {.padding = {1, 1}}},
  };
  for (const Case& c : cases)
    for (bool with_bias : {true, false}) {
      INFO("x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.o.groups);
      const Tensor x = randn(c.x, {.dtype = kFloat64}, gen),
                   w = randn(c.w, {.dtype = kFloat64}, gen);
      const Tensor b = with_bias ? randn({c.w[0]}, {.dtype = kFloat64}, gen) : Tensor();
      Shape shape;
      const auto exact = naive_conv<double>(x, w, b, c.o, shape);
      const Tensor y = conv2d(x, w, b, func(c.o));
      CHECK(y.shape() == shape);
      CHECK(worst(exact, y) <= 1e-12);
      const Tensor y32 = conv2d(cast(x, kFloat32), cast(w, kFloat32),
                                with_bias ? cast(b, kFloat32) : Tensor(), func(c.o));
      CHECK(y32.dtype() == kFloat32);
      CHECK(worst(exact, y32) <= 1e-4);  // float32 rounding of sums of at most 54 terms
    }
}

TEST_CASE("conv2d over 70 batch sizes (past the 64 plans a thread keeps) and two thread counts") {
  // Each shape equals the definition; the first shape, whose plan was dropped at the bound and is
  // made again, gives the same bits as before, output and input gradient.
  Generator gen(33);
  const Settings o{.padding = {1, 1}};
  const Tensor w = randn({3, 2, 3, 3}, {}, gen), b = randn({3}, {}, gen);
  const auto run = [&](const Tensor& x) {
    const Tensor xv = x.detach().requires_grad_();
    const Tensor y = conv2d(xv, w, b, func(o));
    sum(mul(y, y)).backward();
    return std::pair{testing::flat(cast(y, kFloat64)), testing::flat(cast(xv.grad(), kFloat64))};
  };
  const Tensor first = randn({1, 2, 5, 5}, {}, gen);
  const auto before = run(first);
  const int threads = num_threads();
  for (int t : {1, 2}) {
    set_num_threads(t);
    for (std::size_t n = 2; n <= 36; ++n) {
      INFO("batch " << n << ", threads " << t);
      const Tensor x = randn({n, 2, 5, 5}, {}, gen);
      Shape shape;
      const auto exact = naive_conv<float>(x, w, b, o, shape);
      CHECK(worst(exact, conv2d(x, w, b, func(o))) <= 1e-4);
    }
  }
  set_num_threads(threads);
  const auto after = run(first);
  CHECK(after.first == before.first);
  CHECK(after.second == before.second);
}

TEST_CASE("conv2d's gradients equal plain loops on every path, both dtypes") {
  // Paths: stride 1 (shifted products over tiles of images: 50 images make two tiles, the last
  // partial), any stride (one image's columns at a time), 1x1 (the image is its own columns).
  Generator gen(32);
  struct Case {
    Shape x, w;
    Settings o;
  };
  const Case cases[] = {
      {{50, 4, 5, 6}, {6, 2, 3, 3}, {.padding = {1, 1}, .groups = 2}},
      {{3, 2, 6, 7}, {4, 2, 2, 3}, {.padding = {0, 2}, .dilation = {2, 1}}},
      {{2, 3, 7, 6}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}}},
      {{2, 4, 3, 3}, {5, 4, 1, 1}, {}},
      {{2, 4, 3, 3}, {6, 2, 1, 1}, {.padding = {1, 0}, .groups = 2}},
  };
  for (const Case& c : cases) {
    INFO("x " << shape_str(c.x) << " w " << shape_str(c.w));
    const Tensor x = randn(c.x, {.dtype = kFloat64}, gen), w = randn(c.w, {.dtype = kFloat64}, gen),
                 b = randn({c.w[0]}, {.dtype = kFloat64}, gen);
    Shape shape;
    naive_conv<double>(x, w, b, c.o, shape);
    const Tensor g = randn(shape, {.dtype = kFloat64}, gen);
    const auto [dx, dw, db] = naive_grads(x, w, g, c.o);
    for (Dtype dtype : {kFloat64, kFloat32}) {
      INFO("dtype " << dtype_name(dtype));
      const Tensor xv = cast(x, dtype).requires_grad_(), wv = cast(w, dtype).requires_grad_(),
                   bv = cast(b, dtype).requires_grad_();
      sum(mul(conv2d(xv, wv, bv, func(c.o)), cast(g, dtype))).backward();
      const double tol = dtype == kFloat64 ? 1e-12 : 1e-4;
      const auto close = [&](const xt::xarray<double>& want, const Tensor& got) {
        const double scale = std::max(1.0, double(xt::amax(xt::abs(want))()));
        return worst(std::vector<double>(want.begin(), want.end()), got) <= tol * scale;
      };
      CHECK(close(dx, xv.grad()));
      CHECK(close(dw, wv.grad()));
      CHECK(close(db, bv.grad()));
    }
  }
}

TEST_CASE("unfold and fold are adjoint: <fold(c), x> = <c, unfold(x)>") {
  Generator gen(32);
  const Window2d win{.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}};
  const Tensor x = randn({2, 3, 6, 5}, {.dtype = kFloat64}, gen);
  const Tensor u = unfold(x, win);
  const Tensor c = randn(u.shape(), {.dtype = kFloat64}, gen);
  const double left = sum(fold(c, {6, 5}, win) * x).item(), right = sum(c * u).item();
  CHECK(left == doctest::Approx(right).epsilon(1e-12));
  CHECK(u.shape() ==
        Shape{2, 3 * 3 * 2, 3 * 5});  // oh = (6 + 2 - 2 - 1) / 2 + 1, ow = (5 + 2 - 2 - 1) + 1
}

TEST_CASE("pools equal their definitions; max pooling pads with -inf, average with zeros") {
  const Tensor x = reshape(
      cast(from_vector(std::vector<double>{1, 5, 2, 0, 3, -1, 4, 4, 7, 6, 2, 8, 0, 1, 9, 2}, {16}),
           kFloat64),
      {1, 1, 4, 4});
  CHECK(testing::flat(max_pool2d(x, {2, 2})) == std::vector<double>{5, 4, 7, 9});
  CHECK(testing::flat(avg_pool2d(x, {2, 2})) == std::vector<double>{2.0, 2.5, 3.5, 5.25});
  // 3x3 windows, stride 2, padding 1: the corner window sees 1, 5, 3, -1 and 5 zeros of padding
  const auto m = testing::flat(max_pool2d(x, {3, 3}, {2, 2}, {1, 1}));
  CHECK(m == std::vector<double>{5, 5, 7, 9});
  const auto a = testing::flat(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}));
  CHECK(a[0] == doctest::Approx((1 + 5 + 3 - 1) / 9.0));
  const Tensor negative = x * -1.0 - 10.0;
  CHECK(testing::flat(max_pool2d(negative, {3, 3}, {2, 2}, {1, 1}))[0] == -9.0);  // not a pad's 0
  // ties: the gradient goes to the first maximum of the window, row-major
  const Tensor tie = testing::f64({{1.0, 3.0}, {3.0, 2.0}}, true);
  sum(max_pool2d(reshape(tie, {1, 1, 2, 2}), {2, 2})).backward();
  CHECK(testing::flat(tie.grad()) == std::vector<double>{0, 1, 0, 0});
  // a NaN counts as the largest: the first NaN of the window takes the value and the gradient
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor with_nan = testing::f64({{1.0, nan, 5.0}, {nan, 2.0, 7.0}}, true);
  const Tensor pooled = max_pool2d(reshape(with_nan, {1, 1, 2, 3}), {2, 2}, {1, 1});
  CHECK(std::isnan(pooled.value<double>()(0, 0, 0, 0)));
  CHECK(std::isnan(pooled.value<double>()(0, 0, 0, 1)));
  sum(mul(pooled, testing::f64({{{{10.0, 100.0}}}}))).backward();
  CHECK(testing::flat(with_nan.grad()) == std::vector<double>{0, 110, 0, 0, 0, 0});
  // a window of -inf only, next to the padding: its first entry (padding is never chosen)
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor low = testing::f64({{-inf, -inf}, {-inf, -inf}}, true);
  sum(max_pool2d(reshape(low, {1, 1, 2, 2}), {2, 2}, {2, 2}, {1, 1})).backward();
  CHECK(testing::flat(low.grad()) == std::vector<double>{1, 1, 1, 1});
  CHECK_THROWS_WITH_AS(max_pool2d(x, {2, 2}, {2, 2}, {2, 2}), doctest::Contains("at most half"),
                       ValueError);
  CHECK_THROWS_AS(avg_pool2d(reshape(x, {1, 4, 4}), {2, 2}), ShapeError);
}

TEST_CASE("max_pool2d 2x2 stride 2 (its own loop) equals a naive loop: ties, NaN, odd sizes") {
  // Entries from {0, 1, 2} (ties in most windows), a NaN in some, planes of odd height and width
  // (the last row and column are in no window), float32 and float64.
  const std::size_t N = 2, C = 3, H = 7, W = 9, oh = 3, ow = 4;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> x(N * C * H * W);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = double((i * 7 + i / 5) % 3);
  for (std::size_t i : {std::size_t{10}, std::size_t{11}, std::size_t{29}, std::size_t{200},
                        std::size_t{201}, std::size_t{210}})
    x[i] = nan;
  // The naive definition: the first largest of each window in row-major order, a NaN counting as
  // the largest (the first NaN).
  std::vector<double> want(N * C * oh * ow);
  std::vector<std::size_t> chosen(want.size());
  for (std::size_t p = 0; p < N * C; ++p)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j) {
        std::size_t best = p * H * W + 2 * i * W + 2 * j;
        for (std::size_t r = 2 * i; r < 2 * i + 2; ++r)
          for (std::size_t c = 2 * j; c < 2 * j + 2; ++c) {
            const std::size_t at = p * H * W + r * W + c;
            const bool best_nan = std::isnan(x[best]);
            if (!best_nan && (std::isnan(x[at]) || x[at] > x[best])) best = at;
          }
        want[(p * oh + i) * ow + j] = x[best];
        chosen[(p * oh + i) * ow + j] = best;
      }
  for (Dtype dtype : {kFloat64, kFloat32}) {
    INFO(dtype_name(dtype));
    const Tensor input = cast(from_vector(x, {N, C, H, W}), dtype).requires_grad_(true);
    const Tensor y = max_pool2d(input, 2);
    REQUIRE(y.shape() == Shape{N, C, oh, ow});
    const std::vector<double> got = testing::flat(cast(y.detach(), kFloat64));
    std::vector<double> g(want.size()), want_grad(x.size(), 0.0);
    for (std::size_t k = 0; k < g.size(); ++k) {
      g[k] = double(k + 1);
      want_grad[chosen[k]] += g[k];
    }
    for (std::size_t k = 0; k < want.size(); ++k) {
      INFO("output " << k);
      CHECK((std::isnan(want[k]) ? std::isnan(got[k]) : got[k] == want[k]));
    }
    y.backward(cast(from_vector(g, {N, C, oh, ow}), dtype));
    CHECK(testing::flat(cast(input.grad(), kFloat64)) == want_grad);
  }
}

TEST_CASE("pad and dropout") {
  const Tensor x = testing::f64({{1.0, 2.0}, {3.0, 4.0}});
  const Tensor p = pad(x, {1, 0, 0, 1}, -1.0);  // last axis: 1 before; first axis: 1 after
  CHECK(p.shape() == Shape{3, 3});
  CHECK(testing::flat(p) == std::vector<double>{-1, 1, 2, -1, 3, 4, -1, -1, -1});
  CHECK_THROWS_AS(pad(x, {1, 1, 1}), ValueError);
  CHECK_THROWS_AS(pad(x, {1, 1, 1, 1, 1, 1}), ValueError);

  Generator a(9), b(9);
  const Tensor big = ones({200, 500}, {.dtype = kFloat64});
  const Tensor da = dropout(big, 0.3, true, a), db = dropout(big, 0.3, true, b);
  CHECK(testing::flat(da) == testing::flat(db));  // the same seed, the same mask
  const auto v = testing::flat(da);
  std::size_t zeros = 0;
  for (double e : v) {
    zeros += e == 0;
    REQUIRE((e == 0 || std::abs(e - 1 / 0.7) < 1e-12));
  }
  // 100000 draws: the kept fraction is 0.7 within 5 standard deviations (0.0072), the mean 1
  CHECK(std::abs(double(zeros) / double(v.size()) - 0.3) < 0.0072);
  CHECK(mean(da).item() == doctest::Approx(1.0).epsilon(0.011));
  CHECK(dropout(big, 0.3, false).impl() == big.impl());  // evaluation: the identity
  CHECK(sum(dropout(big, 1.0, true, a)).item() == 0.0);
  CHECK_THROWS_WITH_AS(dropout(big, 1.5),
                       doctest::Contains("dropout: p must be in [0, 1], got 1.5"), ValueError);
}

TEST_CASE("conv2d refuses bad input with the op and the shapes in the message") {
  const Tensor x = zeros({2, 3, 5, 5}), w = zeros({4, 3, 3, 3});
  CHECK_THROWS_WITH_AS(
      conv2d(x, zeros({4, 2, 3, 3})),
      doctest::Contains("expects 2 input channels (groups 1), the input [2, 3, 5, 5] has 3"),
      ShapeError);
  CHECK_THROWS_WITH_AS(
      conv2d(x, zeros({4, 3, 7, 3})),
      doctest::Contains(
          "the kernel spans 7 entries (dilation included), more than the padded input's 5"),
      ShapeError);
  CHECK_THROWS_WITH_AS(conv2d(x, w, {}, Conv2dFuncOptions().stride({0, 1})),
                       doctest::Contains("kernel, stride and dilation must be > 0"), ValueError);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 1, 3, 3}), {}, Conv2dFuncOptions().groups(2)),
                       doctest::Contains("groups 2 must divide the input channels 3"), ValueError);
  CHECK_THROWS_WITH_AS(conv2d(zeros({3, 5, 5}), w), doctest::Contains("needs input (N, C, H, W)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(conv2d(x, w, zeros({3})),
                       doctest::Contains("bias [3] for 4 output channels"), ShapeError);
  CHECK_THROWS_AS(conv2d(x, zeros({4, 3, 3, 3}, {.dtype = kFloat64})), DtypeError);
}

TEST_CASE("batch_norm: the batch's statistics in training, the running ones after, by hand") {
  Generator gen(33);
  const Tensor x = randn({4, 3, 2, 5}, {.dtype = kFloat64}, gen) * 2.0 + 1.0;
  const Tensor w = testing::f64({1.5, -0.5, 2.0}), b = testing::f64({0.1, 0.2, -0.3});
  Tensor rm = zeros({3}, {.dtype = kFloat64}), rv = ones({3}, {.dtype = kFloat64});
  const auto& X = x.value<double>();
  const Tensor y = batch_norm(x, rm, rv, w, b, true, 0.2, 1e-5);
  for (std::size_t c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (std::size_t n = 0; n < 4; ++n)
      for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 5; ++j) m += X(n, c, i, j) / 40;
    for (std::size_t n = 0; n < 4; ++n)
      for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 5; ++j) v += (X(n, c, i, j) - m) * (X(n, c, i, j) - m) / 40;
    INFO("channel " << c);
    CHECK(rm.value<double>()(c) == doctest::Approx(0.2 * m).epsilon(1e-12));
    CHECK(rv.value<double>()(c) == doctest::Approx(0.8 + 0.2 * v * 40 / 39).epsilon(1e-12));
    const double expected =
        (X(1, c, 1, 3) - m) / std::sqrt(v + 1e-5) * w.value<double>()(c) + b.value<double>()(c);
    CHECK(y.value<double>()(1, c, 1, 3) == doctest::Approx(expected).epsilon(1e-12));
  }
  // Evaluation: the running statistics, which do not move.
  const auto before = testing::flat(rm);
  const Tensor e = batch_norm(x, rm, rv, w, b, false);
  CHECK(testing::flat(rm) == before);
  const double expected =
      (X(0, 2, 0, 0) - rm.value<double>()(2)) / std::sqrt(rv.value<double>()(2) + 1e-5) * 2.0 - 0.3;
  CHECK(e.value<double>()(0, 2, 0, 0) == doctest::Approx(expected).epsilon(1e-12));
  // float32 agrees with float64 at float32's precision
  const Tensor y32 =
      batch_norm(cast(x, kFloat32), {}, {}, cast(w, kFloat32), cast(b, kFloat32), true);
  CHECK(worst(testing::flat(batch_norm(x, {}, {}, w, b, true)), y32) <= 1e-5);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({1, 3}), {}, {}, {}, {}, true),
                       doctest::Contains("more than one value per channel"), ValueError);
  CHECK_THROWS_WITH_AS(batch_norm(x, {}, {}, zeros({4}, {.dtype = kFloat64}), {}, true),
                       doctest::Contains("batch_norm: weight [4] for 3 channels"), ShapeError);
  CHECK_THROWS_WITH_AS(batch_norm(x, {}, {}, {}, {}, false),
                       doctest::Contains("evaluation needs the running statistics"), ValueError);
}

Tensor activated(Epilogue act, const Tensor& z) {
  return act == Epilogue::relu ? relu(z) : act == Epilogue::tanh ? tanh(z) : sigmoid(z);
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
  return testing::max_difference(cast(a, kFloat64), cast(b, kFloat64));
}

TEST_CASE("batch_norm with an epilogue: the activation after batch_norm, to the last bit") {
  // Rows of 35 and 196 floats: whole vectors and a tail on every path.
  Generator gen(35);
  for (Dtype dtype : {kFloat64, kFloat32})
    for (Epilogue act : {Epilogue::relu, Epilogue::tanh, Epilogue::sigmoid})
      for (bool training : {true, false})
        for (bool affine : {true, false})
          for (const Shape& shape : {Shape{4, 3, 5, 7}, Shape{2, 2, 14, 14}}) {
            INFO(epilogue_name(act) << (dtype == kFloat64 ? " float64" : " float32")
                                    << (training ? " training" : " evaluation")
                                    << (affine ? " affine " : " ") << shape_str(shape));
            const std::size_t c = shape[1];
            const TensorOptions o{.dtype = dtype, .requires_grad = true};
            const Tensor x = randn(shape, o, gen) * 1.5 + 0.3;
            const Tensor w = affine ? randn({c}, o, gen) : Tensor();
            const Tensor b = affine ? randn({c}, o, gen) : Tensor();
            const Tensor g = randn(shape, {.dtype = dtype}, gen);
            const auto stats = [&] {
              return std::pair{cast(randn({c}, {}, gen) * 0.1, dtype),
                               cast(rand({c}, {}, gen) + 0.5, dtype)};
            };
            auto [rm1, rv1] = stats();
            const Tensor rm2 = rm1.clone(), rv2 = rv1.clone();
            const Tensor fused = batch_norm(x, rm1, rv1, w, b, training, 0.1, 1e-5, act);
            const Tensor plain = activated(act, batch_norm(x, rm2, rv2, w, b, training));
            CHECK(fused.grad_fn()->name() == "batch_norm+" + std::string(epilogue_name(act)));
            CHECK(max_abs_diff(fused, plain) == 0);
            CHECK(max_abs_diff(rm1, rm2) == 0);
            CHECK(max_abs_diff(rv1, rv2) == 0);
            std::vector<Tensor> inputs = {x};
            if (affine) inputs.insert(inputs.end(), {w, b});
            const auto expected = grad({sum(mul(plain, g))}, inputs);
            const auto got = grad({sum(mul(fused, g))}, inputs);
            for (std::size_t i = 0; i < inputs.size(); ++i) {
              INFO("gradient " << i);
              CHECK(max_abs_diff(got[i], expected[i]) == 0);
            }
          }
}

TEST_CASE("batch_norm with relu against a double loop; its kink and NaN as relu's") {
  Generator gen(36);
  const Tensor x = randn({3, 2, 4, 5}, {.dtype = kFloat64}, gen);
  const Tensor w = testing::f64({1.5, -0.5}), b = testing::f64({0.1, 0.2});
  const auto& X = x.value<double>();
  const Tensor y = batch_norm(x, {}, {}, w, b, true, 0.1, 1e-5, Epilogue::relu);
  for (std::size_t c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t i = 0; i < 20; ++i) m += X(n, c, i / 5, i % 5) / 60;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t i = 0; i < 20; ++i)
        v += (X(n, c, i / 5, i % 5) - m) * (X(n, c, i / 5, i % 5) - m) / 60;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t i = 0; i < 20; ++i) {
        const double z = (X(n, c, i / 5, i % 5) - m) / std::sqrt(v + 1e-5) * w.value<double>()(c) +
                         b.value<double>()(c);
        CHECK(y.value<double>()(n, c, i / 5, i % 5) ==
              doctest::Approx(std::max(z, 0.0)).epsilon(1e-12));
      }
  }
  // In evaluation, z = x - 1 for every entry: 0 at x = 1 exactly, the kink, where relu's gradient
  // is 0; a NaN stays NaN and its gradient passes, as relu's.
  for (Dtype dtype : {kFloat64, kFloat32}) {
    INFO((dtype == kFloat64 ? "float64" : "float32"));
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor in =
        from_vector(std::vector<double>{1.0, nan, 0.5, 3.0}, {1, 1, 1, 4}, {.dtype = dtype})
            .requires_grad_();
    const Tensor rm = cast(testing::f64({1.0}), dtype), rv = cast(testing::f64({1.0}), dtype);
    const Tensor out = cast(batch_norm(in, rm, rv, {}, {}, false, 0.1, 0.0625, Epilogue::relu),
                            kFloat64);  // eps 1/16: 1 / sqrt(1 + eps) = 4 / sqrt(17)
    const auto& Y = out.value<double>();
    CHECK(Y(0, 0, 0, 0) == 0.0);
    CHECK(std::isnan(Y(0, 0, 0, 1)));
    CHECK(Y(0, 0, 0, 2) == 0.0);
    CHECK(Y(0, 0, 0, 3) == doctest::Approx(2 * 4 / std::sqrt(17.0)).epsilon(1e-6));
    sum(out).backward();
    const Tensor dx = cast(in.grad(), kFloat64);
    const double s = 4 / std::sqrt(17.0);
    CHECK(dx.value<double>()(0, 0, 0, 0) == 0.0);
    CHECK(dx.value<double>()(0, 0, 0, 1) == doctest::Approx(s).epsilon(1e-6));
    CHECK(dx.value<double>()(0, 0, 0, 2) == 0.0);
    CHECK(dx.value<double>()(0, 0, 0, 3) == doctest::Approx(s).epsilon(1e-6));
  }
}

TEST_CASE("adaptive_avg_pool2d averages each cell of the grid, unequal cells included") {
  Generator gen(34);
  const Tensor x = randn({2, 3, 5, 7}, {.dtype = kFloat64}, gen);
  const auto& X = x.value<double>();
  const Tensor y = adaptive_avg_pool2d(x, {3, 2});
  REQUIRE(y.shape() == Shape{2, 3, 3, 2});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 2; ++j) {
      const std::size_t r0 = i * 5 / 3, r1 = ((i + 1) * 5 + 2) / 3, c0 = j * 7 / 2,
                        c1 = ((j + 1) * 7 + 1) / 2;
      double s = 0;
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c) s += X(1, 2, r, c);
      CHECK(y.value<double>()(1, 2, i, j) == doctest::Approx(s / double((r1 - r0) * (c1 - c0))));
    }
  CHECK(testing::flat(adaptive_avg_pool2d(x, {1, 1})) == testing::flat(mean(x, {2, 3}, true)));
}

TEST_CASE("conv1d is conv2d over a height of 1, and says conv1d in its errors") {
  Generator gen(35);
  const Tensor x = randn({2, 4, 9}, {.dtype = kFloat64}, gen),
               w = randn({6, 2, 3}, {.dtype = kFloat64}, gen);
  const Tensor b = randn({6}, {.dtype = kFloat64}, gen);
  const Conv1dFuncOptions o = Conv1dFuncOptions().stride(2).padding(2).dilation(2).groups(2);
  const Tensor y = conv1d(x, w, b, o);
  Shape shape;
  const auto exact = naive_conv<double>(
      unsqueeze(x, 2), unsqueeze(w, 2), b,
      {.stride = {1, 2}, .padding = {0, 2}, .dilation = {1, 2}, .groups = 2}, shape);
  CHECK(y.shape() == Shape{2, 6, 5});
  CHECK(worst(exact, y) <= 1e-12);
  CHECK_THROWS_WITH_AS(conv1d(unsqueeze(x, 0), w),
                       doctest::Contains("conv1d: needs input (N, C, L)"), ShapeError);
}

TEST_CASE("every convolution op: float32 (what training runs) agrees with float64, values and gradients") {
  using F = std::function<Tensor(const std::vector<Tensor>&)>;
  struct Case {
    const char* name;
    std::vector<Shape> inputs;
    F f;
  };
  const std::vector<Case> cases = {
      {"conv2d stride 1", {{9, 3, 8, 7}, {6, 3, 3, 3}, {6}},
       [](const auto& x) { return conv2d(x[0], x[1], x[2], Conv2dFuncOptions().padding(1)); }},
      {"conv2d stride 2", {{3, 4, 8, 7}, {6, 2, 3, 2}, {6}},
       [](const auto& x) {
         return conv2d(x[0], x[1], x[2], Conv2dFuncOptions().stride(2).groups(2));
       }},
      {"conv2d 1x1", {{3, 4, 5, 5}, {2, 4, 1, 1}},
       [](const auto& x) { return conv2d(x[0], x[1]); }},
      {"conv1d", {{3, 4, 9}, {6, 4, 3}, {6}},
       [](const auto& x) { return conv1d(x[0], x[1], x[2], Conv1dFuncOptions().padding(1)); }},
      {"max_pool2d", {{3, 4, 9, 8}},
       [](const auto& x) { return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); }},
      {"avg_pool2d", {{3, 4, 9, 8}},
       [](const auto& x) { return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}); }},
      {"adaptive_avg_pool2d", {{3, 4, 9, 8}},
       [](const auto& x) { return adaptive_avg_pool2d(x[0], {4, 3}); }},
      {"batch_norm", {{8, 4, 5, 5}, {4}, {4}},
       [](const auto& x) { return batch_norm(x[0], {}, {}, x[1], x[2], true); }},
      {"pad", {{3, 4, 5}}, [](const auto& x) { return pad(x[0], {1, 2, 3, 0}, 0.5); }},
      {"unfold", {{2, 3, 6, 5}},
       [](const auto& x) { return unfold(x[0], {.kernel = {3, 2}, .padding = {1, 1}}); }},
      {"fold", {{2, 12, 9}}, [](const auto& x) { return fold(x[0], {4, 4}, {.kernel = {2, 2}}); }},
      {"dropout", {{4, 50}},
       [](const auto& x) {
         Generator gen(5);  // the same draws in both dtypes
         return dropout(x[0], 0.3, true, gen);
       }},
  };
  Generator gen(40);
  for (const Case& c : cases) {
    INFO(c.name);
    std::vector<Tensor> x64, x32;
    for (const Shape& s : c.inputs) {
      x64.push_back(randn(s, {.dtype = kFloat64}, gen).requires_grad_());
      x32.push_back(cast(x64.back(), kFloat32).detach().requires_grad_());
    }
    const Tensor y64 = c.f(x64), y32 = c.f(x32);
    REQUIRE(y32.dtype() == kFloat32);
    const Tensor g = randn(y64.shape(), {.dtype = kFloat64}, gen);
    sum(mul(y64, g)).backward();
    sum(mul(y32, cast(g, kFloat32))).backward();
    const auto scaled_gap = [](const Tensor& a, const Tensor& b) {
      const auto va = testing::flat(a), vb = testing::flat(cast(b, kFloat64));
      double gap = 0, scale = 1;
      for (std::size_t i = 0; i < va.size(); ++i) {
        gap = std::max(gap, std::abs(va[i] - vb[i]));
        scale = std::max(scale, std::abs(va[i]));
      }
      return gap / scale;
    };
    CHECK(scaled_gap(y64, y32) <= 1e-5);
    for (std::size_t i = 0; i < x64.size(); ++i) CHECK(scaled_gap(x64[i].grad(), x32[i].grad()) <= 1e-5);
  }
}

TEST_CASE("conv2d gives each input's gradient alone: frozen weight, frozen bias, input only") {
  Generator gen(41);
  const Tensor x = randn({3, 4, 6, 5}, {.dtype = kFloat64}, gen),
               w = randn({6, 4, 3, 3}, {.dtype = kFloat64}, gen), b = randn({6}, {.dtype = kFloat64}, gen);
  const Tensor g = randn({3, 6, 6, 5}, {.dtype = kFloat64}, gen);
  // all three in float64 (xgrad's own kernels), the reference
  const Tensor x64 = x.detach().requires_grad_(), w64 = w.detach().requires_grad_(),
               b64 = b.detach().requires_grad_();
  sum(mul(conv2d(x64, w64, b64, Conv2dFuncOptions().padding(1)), g)).backward();
  for (int which = 0; which < 3; ++which) {  // float32 (oneDNN where built), one input at a time
    INFO("only input " << which);
    Tensor xs = cast(x, kFloat32), ws = cast(w, kFloat32), bs = cast(b, kFloat32);
    Tensor& trained = which == 0 ? xs : which == 1 ? ws : bs;
    trained.requires_grad_();
    sum(mul(conv2d(xs, ws, bs, Conv2dFuncOptions().padding(1)), cast(g, kFloat32))).backward();
    const Tensor& want = which == 0 ? x64.grad() : which == 1 ? w64.grad() : b64.grad();
    const auto a = testing::flat(want), c = testing::flat(cast(trained.grad(), kFloat64));
    double gap = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
      gap = std::max(gap, std::abs(a[i] - c[i]));
      scale = std::max(scale, std::abs(a[i]));
    }
    CHECK(gap / scale <= 1e-5);
    for (const Tensor* other : {&xs, &ws, &bs})
      if (other != &trained) CHECK_FALSE(other->grad().defined());
  }
}

TEST_CASE("conv2d float32 on the reference CNN's 3 x 3 layers keeps the error bound of a sum") {
  // On an AVX-512 processor and one thread oneDNN takes its Winograd convolution for these
  // (forward and both gradients; detail/conv_onednn.cpp) unless set_allow_winograd(false): tiles
  // transformed, multiplied and transformed back, so the sums are not the direct ones. Each entry
  // must still be within the bound of a float32 sum of its K products, K eps sum |products|
  // (linear's product is held to 2 K eps), against the definition in double: the output and the
  // gradients of the input, the weights and the bias, Winograd allowed or not. (Measured on a
  // Zen 5: Winograd's worst entries reach 0.02-0.04 of it, the direct convolution's 0.004.)
  // Switching back and forth gives each setting's own bits again, and where oneDNN takes Winograd
  // (on AVX-512, unless its instruction set is capped) the two differ.
  const int threads = num_threads();
  set_num_threads(1);
  Generator gen(34);
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  REQUIRE(allow_winograd());  // the default
  for (const auto& [xs, ws] : {std::pair{Shape{16, 32, 14, 14}, Shape{32, 32, 3, 3}},
                               std::pair{Shape{16, 32, 14, 14}, Shape{64, 32, 3, 3}}}) {
    INFO("x " << shape_str(xs) << " w " << shape_str(ws));
    const SumBounds bounds(xs, ws, gen);
    // Winograd allowed, not, allowed again: the output and the three gradients of each
    std::vector<std::array<std::vector<double>, 4>> runs;
    for (bool allow : {true, false, true, false}) {
      INFO("Winograd allowed: " << allow);
      set_allow_winograd(allow);
      runs.push_back(bounds.run());
      bounds.check(runs.back());
    }
    set_allow_winograd(true);
    CHECK(runs[2] == runs[0]);
    CHECK(runs[3] == runs[1]);
    const bool taken = detail::onednn_conv_choice(bounds.geometry()).winograd;
    if (std::string(gemm_backend()) == "onednn" && avx512 && !std::getenv("ONEDNN_MAX_CPU_ISA") &&
        !std::getenv("DNNL_MAX_CPU_ISA"))
      CHECK(taken);  // the bound above was Winograd's
    if (std::string(gemm_backend()) == "onednn" && taken) {
      CHECK(runs[0][0] != runs[1][0]);
      CHECK(runs[0][1] != runs[1][1]);
      CHECK(runs[0][2] != runs[1][2]);
    }
  }
  set_num_threads(threads);
}

TEST_CASE(
    "conv2d float32 with one input channel: the weights' gradient, on oneDNN's GEMM under AVX2, "
    "keeps the error bound of a sum") {
  // With one input channel and oneDNN's direct AVX2 kernel, the weights' gradient runs on its
  // GEMM-based convolution instead (detail/conv_onednn.cpp, make_plan): another order of the
  // same sums. CI runs this case a second time with ONEDNN_MAX_CPU_ISA=AVX2 (tests/meson.build),
  // so an AVX-512 machine takes that path too. The input's gradient asked for or not: the
  // weights' pass reads the output's gradient in the plain layout, the input's pass in oneDNN's
  // blocked one (a reorder), so the weights' pass is held alone and after the input's.
  const int threads = num_threads();
  set_num_threads(1);
  Generator gen(35);
  const SumBounds bounds({16, 1, 28, 28}, {32, 1, 3, 3}, gen);
  for (bool input_gradient : {false, true}) {
    INFO("the input's gradient asked for: " << input_gradient);
    const auto r = bounds.run(input_gradient);
    CHECK(r[1].empty() == !input_gradient);
    bounds.check(r);
  }
  // Which kernel: the GEMM-based one exactly where oneDNN's widest is AVX2 (capped or not)
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
             avx512 = __builtin_cpu_supports("avx512f");
  if (std::string(gemm_backend()) == "onednn" && !std::getenv("DNNL_MAX_CPU_ISA")) {
    const bool widest_avx2 = avx2 && (cap ? std::string(cap) == "AVX2" : !avx512);
    if (widest_avx2 || (avx512 && !cap))
      CHECK(detail::onednn_conv_choice(bounds.geometry()).weights_on_gemm == widest_avx2);
  }
  set_num_threads(threads);
}
