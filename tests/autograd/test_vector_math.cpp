// The vectorized float functions (autograd/detail/vector_math.hpp) against std:: in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/error.hpp"

namespace vec = xgrad::detail::vec;

// Each path this processor has (SSE2 always; AVX2, AVX-512 where present: skipped elsewhere).
std::vector<vec::Isa> paths() {
  std::vector<vec::Isa> out;
  for (vec::Isa isa : {vec::Isa::sse2, vec::Isa::avx2, vec::Isa::avx512})
    if (vec::supported(isa))
      out.push_back(isa);
    else
      MESSAGE("no " << vec::isa_name(isa) << " on this processor: its path is not tested");
  return out;
}

TEST_CASE(
    "vectorized exp, tanh and erf agree with std:: to float rounding, at any position, on every "
    "path") {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> x = {0.0,  -0.0,  1e-8, -1e-8, 0.5,   -0.5,   3.0, -3.0,
                           20.0, -20.0, 87.0, -87.0, 100.0, -110.0, inf, -inf};
  for (int i = 0; i < 200; ++i) x.push_back(-9.0 + 0.0917 * i);
  struct Case {
    const char* name;
    void (*f)(float*, std::size_t);
    double (*reference)(double);
  };
  std::vector<Case> cases;
  for (vec::Isa isa : paths()) {
    const vec::Functions& f = vec::functions(isa);
    cases.push_back({vec::isa_name(isa), f.exp, [](double v) { return std::exp(v); }});
    cases.push_back({vec::isa_name(isa), f.tanh, [](double v) { return std::tanh(v); }});
    cases.push_back({vec::isa_name(isa), f.erf, [](double v) { return std::erf(v); }});
  }
  // and the functions as the ops call them, on the chosen path
  cases.push_back({vec::instruction_set(), vec::exp, [](double v) { return std::exp(v); }});
  cases.push_back({vec::instruction_set(), vec::tanh, [](double v) { return std::tanh(v); }});
  cases.push_back({vec::instruction_set(), vec::erf, [](double v) { return std::erf(v); }});
  for (const Case& c : cases) {
    INFO("on " << std::string(c.name));
    // Every length from 1 to 19, so that each element also goes through the padded tail.
    for (std::size_t n = 1; n < 20; ++n)
      for (std::size_t start = 0; start + n <= x.size(); start += n) {
        std::vector<float> v(x.begin() + long(start), x.begin() + long(start + n));
        c.f(v.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          // the exact value rounded to float: exp(100) overflows to inf as std::exp(100.0f) does
          const double want = double(float(c.reference(double(float(x[start + i])))));
          INFO("x = " << x[start + i]);
          if (std::isinf(want))
            CHECK(double(v[i]) == want);
          else
            CHECK(std::abs(double(v[i]) - want) <= 4e-7 * std::abs(want) + 1e-37);
        }
      }
    float nan = std::numeric_limits<float>::quiet_NaN();
    c.f(&nan, 1);
    CHECK(std::isnan(nan));
  }
}

TEST_CASE("every path gives the same values within float rounding; the chosen one is the widest") {
  std::vector<float> x;
  for (int i = 0; i < 1000; ++i) x.push_back(-12.0f + 0.024f * float(i));
  const std::vector<vec::Isa> have = paths();
  if (!std::getenv("XGRAD_CPU_CAPABILITY")) CHECK(vec::chosen() == have.back());
  for (int k = 0; k < 3; ++k) {
    std::vector<std::vector<float>> got;
    for (vec::Isa isa : have) {
      const vec::Functions& f = vec::functions(isa);
      std::vector<float> v = x;
      (k == 0 ? f.exp : k == 1 ? f.tanh : f.erf)(v.data(), v.size());
      got.push_back(v);
    }
    for (std::size_t p = 1; p < got.size(); ++p)
      for (std::size_t i = 0; i < x.size(); ++i) {
        INFO(vec::isa_name(have[p]) << " against sse2, function " << k << ", x = " << x[i]);
        CHECK(std::abs(got[p][i] - got[0][i]) <= 2.5e-7f * std::abs(got[0][i]) + 1e-37f);
      }
  }
  for (vec::Isa isa : {vec::Isa::avx2, vec::Isa::avx512})
    if (!vec::supported(isa))
      CHECK_THROWS_WITH(vec::functions(isa), doctest::Contains("this processor has no"));
}

namespace {
// Values in [-scale, scale) from a fixed linear congruential sequence.
std::vector<float> filled(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float& e : v) {
    seed = seed * 1664525u + 1013904223u;
    e = scale * (float(seed >> 8) / float(1u << 24) * 2.0f - 1.0f);
  }
  return v;
}
}  // namespace

TEST_CASE("vectorized layer norm rows, forward and backward, against double on every path") {
  for (vec::Isa isa : paths())
    for (std::size_t d : {1u, 3u, 8u, 16u, 17u, 37u, 256u})
      for (int affine = 0; affine < 2; ++affine) {
        INFO(std::string(vec::isa_name(isa))
             << ", width " << d << (affine ? ", with w and b" : ""));
        const std::size_t rows = 19;  // more than one block of the backward's float sums
        const std::vector<float> x = filled(rows * d, unsigned(d), 3.0f);
        const std::vector<float> g = filled(rows * d, unsigned(d) + 7);
        const std::vector<float> w = filled(d, 11), b = filled(d, 13);
        const float* pw = affine ? w.data() : nullptr;
        const float* pb = affine ? b.data() : nullptr;
        const double eps = 1e-5;
        const vec::Functions& f = vec::functions(isa);
        std::vector<float> z(rows * d), mean(rows), invstd(rows), dx(rows * d), scratch(2 * d);
        std::vector<double> dw(d, 0.5), db(d, -0.5);  // added to, as the op's accumulators
        f.layer_norm_forward({x.data(), pw, rows, d}, pb, eps, z.data(), mean.data(),
                             invstd.data());
        f.layer_norm_backward({x.data(), pw, rows, d}, g.data(), mean.data(), invstd.data(),
                              dx.data(), affine ? dw.data() : nullptr, affine ? db.data() : nullptr,
                              scratch.data());
        std::vector<double> want_dw(d, 0.5), want_db(d, -0.5);
        for (std::size_t r = 0; r < rows; ++r) {
          const float* xr = x.data() + r * d;
          const float* gr = g.data() + r * d;
          double m = 0, v = 0;
          for (std::size_t j = 0; j < d; ++j) m += xr[j];
          m /= double(d);
          for (std::size_t j = 0; j < d; ++j) v += (xr[j] - m) * (xr[j] - m);
          const double s = 1 / std::sqrt(v / double(d) + eps);
          CHECK(std::abs(mean[r] - m) <= 1e-6 * 3);
          CHECK(std::abs(invstd[r] - s) <= 1e-6 * s);
          std::vector<double> xhat(d), dxhat(d);
          double sum_d = 0, sum_dx = 0;
          for (std::size_t j = 0; j < d; ++j) {
            xhat[j] = (xr[j] - m) * s;
            dxhat[j] = gr[j] * (affine ? w[j] : 1.0);
            sum_d += dxhat[j];
            sum_dx += dxhat[j] * xhat[j];
            want_dw[j] += gr[j] * xhat[j];
            want_db[j] += gr[j];
          }
          for (std::size_t j = 0; j < d; ++j) {
            const double zj = affine ? xhat[j] * w[j] + b[j] : xhat[j];
            CHECK(std::abs(z[r * d + j] - zj) <= 2e-6 * (1 + std::abs(zj)));
            const double dxj = s * (dxhat[j] - sum_d / double(d) - xhat[j] * sum_dx / double(d));
            // a width-1 row has xhat = 0 and dx = 0 exactly
            CHECK(std::abs(dx[r * d + j] - dxj) <= 2e-5 * (1 + std::abs(dxj)));
          }
        }
        if (affine)
          for (std::size_t j = 0; j < d; ++j) {
            CHECK(std::abs(dw[j] - want_dw[j]) <= 1e-5 * (1 + std::abs(want_dw[j])));
            CHECK(std::abs(db[j] - want_db[j]) <= 1e-5 * (1 + std::abs(want_db[j])));
          }
      }
}

TEST_CASE("column sums (a bias's gradient) equal the row-by-row double loop bit for bit") {
  for (vec::Isa isa : paths())
    for (std::size_t rows : {1u, 3u, 4u, 5u, 9u, 64u})
      for (std::size_t cols : {1u, 7u, 33u})
        for (const auto& [begin, end] :
             {std::pair<std::size_t, std::size_t>{0, cols}, {cols / 3, cols}}) {
          INFO(vec::isa_name(isa) << ", " << rows << " x " << cols << ", columns " << begin << ".."
                                  << end);
          // values of very different sizes, so that another order of the additions would round
          // differently
          std::vector<float> x = filled(rows * cols, unsigned(rows * 31 + cols));
          for (std::size_t i = 0; i < x.size(); i += 3) x[i] *= 1e7f;
          std::vector<double> want(end - begin, 0.5), got(end - begin, 0.5);  // added to
          for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t j = begin; j < end; ++j) want[j - begin] += double(x[r * cols + j]);
          vec::functions(isa).column_sums(x.data(), rows, cols, begin, end, got.data());
          CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(double)) == 0);
        }
}

TEST_CASE("batch_norm's row sums equal eight float running sums then double, bit for bit") {
  // The order of autograd/detail/kernels.hpp's row_sum and row_sums (float64's path): lane k adds
  // entries k, k + 8, ... in float, then the tail and the eight lanes are added in double.
  const auto eight_lanes = [](std::size_t n, auto term) {
    float acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (std::size_t k = 0; k < 8; ++k) acc[k] += term(i + k);
    double total = 0;
    for (; i < n; ++i) total += double(term(i));
    for (float a : acc) total += double(a);
    return total;
  };
  const auto same = [](double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; };
  for (vec::Isa isa : paths())
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 196u, 784u, 1001u}) {
      INFO(vec::isa_name(isa) << ", a row of " << n);
      // values of very different sizes, so that another order of the additions would round
      // differently
      std::vector<float> g = filled(n, unsigned(n * 7 + 1)), x = filled(n, unsigned(n * 7 + 2));
      for (std::size_t i = 0; i < n; i += 3) g[i] *= 1e7f;
      for (std::size_t i = 1; i < n; i += 5) x[i] *= 3e5f;
      const float m = 0.37f;
      const vec::Functions& f = vec::functions(isa);
      CHECK(same(f.row_sum(g.data(), n), eight_lanes(n, [&](std::size_t i) { return g[i]; })));
      CHECK(same(f.row_sum_squares(x.data(), n, m),
                 eight_lanes(n, [&](std::size_t i) { return (x[i] - m) * (x[i] - m); })));
      double sums[2] = {-1, -1};
      f.row_sums(g.data(), x.data(), n, m, sums);
      CHECK(same(sums[0], eight_lanes(n, [&](std::size_t i) { return g[i]; })));
      CHECK(same(sums[1], eight_lanes(n, [&](std::size_t i) { return g[i] * (x[i] - m); })));
    }
}

TEST_CASE(
    "batch_norm's rows (output, relu's masked sums, input gradient) equal the plain loop bit for "
    "bit") {
  // z = x scale + shift in two roundings, and dx = (a g' + b (x - mean)) + k: a path that fused a
  // multiply and an add, or added in another order, would round differently (XGRAD_TWO_ROUNDINGS).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto same = [](float a, float b) {  // NaNs of any sign and payload alike
    return std::memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b);
  };
  for (vec::Isa isa : paths())
    for (bool relu : {false, true})
      for (bool training : {true, false})
        for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 35u, 196u, 784u}) {
          INFO(std::string(vec::isa_name(isa))
               << (relu ? ", relu" : ", no epilogue") << (training ? ", training" : ", evaluation")
               << ", a row of " << n);
          std::vector<float> x = filled(n, unsigned(n * 5 + 1)), g = filled(n, unsigned(n * 5 + 2));
          if (n > 3) {
            x[3] = nan;            // a NaN passes relu, and its gradient too
            x[1] = -0.25f / 1.7f;  // at the kink, or next to it
          }
          const vec::NormRow r{1.7f, 0.25f, relu, training, 0.9f, -0.31f, 0.013f, 0.21f};
          const vec::Functions& f = vec::functions(isa);
          std::vector<float> z(n, -1.0f), masked(n), dx(n, -1.0f);
          f.norm_row_forward(x.data(), n, r, z.data());
          f.norm_row_backward(g.data(), x.data(), n, r, dx.data());
          for (std::size_t i = 0; i < n; ++i) {
            INFO("entry " << i);
            const float v = x[i] * r.scale + r.shift;
            const bool kept = v > 0 || v != v;
            masked[i] = kept ? g[i] : 0.0f;
            CHECK(same(z[i], relu && !kept ? 0.0f : v));
            const float gv = relu && !kept ? 0.0f : g[i];
            CHECK(same(dx[i], training ? r.a * gv + r.b * (x[i] - r.mean) + r.k : r.a * gv));
            if (!training) CHECK(dx[i] == dx[i]);  // the NaN in x stays out of its gradient
          }
          // relu's gradient's row sums, against row_sums over it made first (which the test
          // above holds to the plain lanes)
          double want[2] = {-1, -1}, got[2] = {-2, -2};
          f.row_sums(masked.data(), x.data(), n, r.mean, want);
          f.masked_row_sums(g.data(), x.data(), n, r.mean, r, got);
          CHECK(std::memcmp(want, got, sizeof want) == 0);
        }
}

TEST_CASE("the vectorized Adam update equals the scalar loop bit for bit on every path") {
  // It fails when a path fuses a multiply and an add (XGRAD_TWO_ROUNDINGS in
  // detail/vector_math_impl.hpp keeps the optimizers' two roundings).
  for (vec::Isa isa : paths())
    for (int decoupled = 0; decoupled < 2; ++decoupled)
      for (std::size_t n : {1u, 7u, 16u, 33u, 100u}) {
        INFO(std::string(vec::isa_name(isa))
             << (decoupled ? ", AdamW" : ", Adam") << ", n = " << n);
        const float lr = 1e-2f, wd = 0.1f;
        // the third step's constants; weight decay as AdamW's or as Adam's L2 term
        const xgrad::AdamStep c = {.b1 = 0.9f,
                                   .b2 = 0.999f,
                                   .lr = lr,
                                   .wd = wd,
                                   .step_size = lr / 0.271f,
                                   .root_c2 = 0.0527f,
                                   .eps = 1e-8f,
                                   .l2 = decoupled ? 0.0f : wd,
                                   .decay_first = decoupled == 1};
        std::vector<float> p = filled(n, 1), m = filled(n, 2, 0.1f), v = filled(n, 3, 0.01f);
        const std::vector<float> g = filled(n, 4);
        for (float& e : v) e = std::abs(e);
        std::vector<float> want_p = p, want_m = m, want_v = v;
        for (std::size_t j = 0; j < n; ++j) {  // nn/optim.cpp's loop
          if (c.decay_first) want_p[j] -= c.lr * c.wd * want_p[j];
          const float d = g[j] + c.l2 * want_p[j];
          want_m[j] = c.b1 * want_m[j] + (1 - c.b1) * d;
          want_v[j] = c.b2 * want_v[j] + (1 - c.b2) * d * d;
          want_p[j] -= c.step_size * want_m[j] / (std::sqrt(want_v[j]) / c.root_c2 + c.eps);
        }
        std::vector<float> p2 = p, m2 = m, v2 = v;  // through the public function too
        vec::functions(isa).adam_update(p.data(), g.data(), m.data(), v.data(), n, c);
        xgrad::adam_update(p2.data(), g.data(), m2.data(), v2.data(), n, c);
        CHECK(p == want_p);
        CHECK(m == want_m);
        CHECK(v == want_v);
        CHECK(p2 == want_p);
        CHECK(m2 == want_m);
        CHECK(v2 == want_v);
      }
}

// Whether a and b hold the same bits (a NaN equals the same NaN).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_CASE("the vectorized SGD update equals the scalar loops bit for bit on every path") {
  struct Case {
    const char* name;
    xgrad::SgdStep c;
  };
  const Case cases[] = {
      {"plain", {.lr = 0.1f, .wd = 0, .momentum = 0, .damp = 1, .nesterov = false, .first = false}},
      {"weight decay", {0.1f, 0.01f, 0, 1, false, false}},
      {"momentum, first step", {0.1f, 0.01f, 0.9f, 0.75f, false, true}},
      {"momentum, dampening", {0.1f, 0.01f, 0.9f, 0.75f, false, false}},
      {"Nesterov", {0.1f, 0, 0.9f, 1, true, false}},
  };
  for (vec::Isa isa : paths())
    for (const Case& k : cases)
      for (std::size_t n : {1u, 7u, 16u, 33u, 100u}) {
        INFO(vec::isa_name(isa) << ", " << k.name << ", n = " << n);
        const xgrad::SgdStep& c = k.c;
        std::vector<float> p = filled(n, 1), b = filled(n, 2, 0.1f);
        const std::vector<float> g = filled(n, 3);
        // an infinite weight: with weight decay 0 * inf is NaN, without it stays inf
        if (n > 4) p[3] = std::numeric_limits<float>::infinity();
        std::vector<float> want_p = p, want_b = b;
        for (std::size_t j = 0; j < n; ++j) {  // nn/optim.cpp's loops
          float& q = want_p[j];
          if (c.momentum == 0 && c.wd == 0) {
            q -= c.lr * g[j];
            continue;
          }
          const float d = g[j] + c.wd * q;
          if (c.momentum == 0) {
            q -= c.lr * d;
            continue;
          }
          want_b[j] = c.first ? d : c.momentum * want_b[j] + c.damp * d;
          q -= c.nesterov ? c.lr * (d + c.momentum * want_b[j]) : c.lr * want_b[j];
        }
        float* buffer = c.momentum != 0 ? b.data() : nullptr;
        std::vector<float> p2 = p, b2 = b;  // through the public function too
        vec::functions(isa).sgd_update(p.data(), g.data(), buffer, n, c);
        xgrad::sgd_update(p2.data(), g.data(), buffer ? b2.data() : nullptr, n, c);
        CHECK(same_bits(p, want_p));
        CHECK(same_bits(b, want_b));
        CHECK(same_bits(p2, want_p));
        CHECK(same_bits(b2, want_b));
      }
  std::vector<float> p(4), g(4);
  CHECK_THROWS_WITH_AS(xgrad::sgd_update(p.data(), g.data(), nullptr, 4, {0.1f, 0, 0.9f, 1}),
                       "sgd_update: momentum 0.9 needs a momentum buffer", xgrad::ValueError);
}

TEST_CASE("the vectorized RMSprop update equals the scalar loop bit for bit on every path") {
  for (vec::Isa isa : paths())
    for (int centered = 0; centered < 2; ++centered)
      for (float mu : {0.0f, 0.9f})
        for (std::size_t n : {1u, 7u, 16u, 33u, 100u}) {
          INFO(vec::isa_name(isa) << (centered ? ", centered" : "") << ", momentum " << mu
                                  << ", n = " << n);
          const xgrad::RmspropStep c{
              .lr = 0.01f, .alpha = 0.99f, .eps = 1e-8f, .wd = 0.01f, .momentum = mu};
          std::vector<float> p = filled(n, 1), v = filled(n, 2, 0.1f), m = filled(n, 3, 0.01f),
                             b = filled(n, 4, 0.1f);
          const std::vector<float> g = filled(n, 5);
          for (float& e : v) e = std::abs(e);
          std::vector<float> want_p = p, want_v = v, want_m = m, want_b = b;
          for (std::size_t j = 0; j < n; ++j) {  // nn/optim.cpp's loop
            const float d = g[j] + c.wd * want_p[j];
            want_v[j] = c.alpha * want_v[j] + (1 - c.alpha) * d * d;
            float var = want_v[j];
            if (centered) {
              want_m[j] = c.alpha * want_m[j] + (1 - c.alpha) * d;
              var -= want_m[j] * want_m[j];
            }
            const float a = std::sqrt(var) + c.eps;
            if (c.momentum != 0) {
              want_b[j] = c.momentum * want_b[j] + d / a;
              want_p[j] -= c.lr * want_b[j];
            } else {
              want_p[j] -= c.lr * d / a;
            }
          }
          std::vector<float> p2 = p, v2 = v, m2 = m, b2 = b;  // through the public function too
          const auto ptr = [](bool present, std::vector<float>& a) {
            return present ? a.data() : nullptr;
          };
          vec::functions(isa).rmsprop_update(p.data(), g.data(), v.data(), ptr(centered, m),
                                             ptr(mu != 0, b), n, c);
          xgrad::rmsprop_update(p2.data(), g.data(), v2.data(), ptr(centered, m2), ptr(mu != 0, b2),
                                n, c);
          CHECK(same_bits(p, want_p));
          CHECK(same_bits(v, want_v));
          CHECK(same_bits(m, want_m));
          CHECK(same_bits(b, want_b));
          CHECK(same_bits(p2, want_p));
          CHECK(same_bits(v2, want_v));
          CHECK(same_bits(m2, want_m));
          CHECK(same_bits(b2, want_b));
        }
  std::vector<float> p(4), g(4), v(4);
  CHECK_THROWS_WITH_AS(xgrad::rmsprop_update(p.data(), g.data(), v.data(), nullptr, nullptr, 4,
                                             {0.01f, 0.99f, 1e-8f, 0, 0.9f}),
                       "rmsprop_update: momentum 0.9 needs a momentum buffer", xgrad::ValueError);
}

TEST_CASE("the vectorized Adagrad update equals the scalar loop bit for bit on every path") {
  for (vec::Isa isa : paths())
    for (float wd : {0.0f, 0.01f})
      for (std::size_t n : {1u, 7u, 16u, 33u, 100u}) {
        INFO(vec::isa_name(isa) << ", weight decay " << wd << ", n = " << n);
        const xgrad::AdagradStep c{.lr = 0.01f, .eps = 1e-10f, .wd = wd};
        std::vector<float> p = filled(n, 1), s = filled(n, 2, 0.1f);
        const std::vector<float> g = filled(n, 3);
        for (float& e : s) e = std::abs(e);
        std::vector<float> want_p = p, want_s = s;
        for (std::size_t j = 0; j < n; ++j) {  // nn/optim.cpp's loop
          const float d = g[j] + c.wd * want_p[j];
          want_s[j] += d * d;
          want_p[j] -= c.lr * d / (std::sqrt(want_s[j]) + c.eps);
        }
        std::vector<float> p2 = p, s2 = s;  // through the public function too
        vec::functions(isa).adagrad_update(p.data(), g.data(), s.data(), n, c);
        xgrad::adagrad_update(p2.data(), g.data(), s2.data(), n, c);
        CHECK(same_bits(p, want_p));
        CHECK(same_bits(s, want_s));
        CHECK(same_bits(p2, want_p));
        CHECK(same_bits(s2, want_s));
      }
}

TEST_CASE(
    "the one-pass GELU loops equal x Phi(x) and its slope in double to float rounding, the lower "
    "tail in relative terms, on every path and at any position") {
  // From -12 (Phi 1.8e-33, where 1 + erf(x / sqrt 2) in float is 0) to 12, and ragged lengths so
  // that every value also goes through a padded tail.
  std::vector<float> grid;
  for (int i = 0; i <= 24000; ++i) grid.push_back(float(-12.0 + 0.001 * i) + 1e-4f);
  grid.push_back(-0.0f);
  grid.push_back(0.0f);
  const std::vector<float> g = filled(grid.size(), 7);
  for (vec::Isa isa : paths())
    for (std::size_t n : {1u, 5u, 16u, 37u, 300u}) {
      INFO(std::string(vec::isa_name(isa)) << ", n = " << n);
      const vec::Functions& f = vec::functions(isa);
      for (std::size_t start = 0; start + n <= grid.size(); start += n) {
        std::vector<float> z(n), dx(n);
        f.gelu_forward(grid.data() + start, z.data(), n);
        f.gelu_backward(grid.data() + start, g.data() + start, dx.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          const double x = grid[start + i], gv = g[start + i];
          const double cdf = std::erfc(-x / std::numbers::sqrt2) / 2;
          const double pdf = std::exp(-x * x / 2) * std::numbers::inv_sqrtpi / std::numbers::sqrt2;
          // 16 ulp, and the rounding of x^2 / 2 carried through the exponential (2.2e-6 at -10)
          const double ulp = std::ldexp(1.0, -24), tol = (16 + x * x / 2) * ulp;
          const double ez = std::abs(z[i] - x * cdf) / std::abs(x * cdf);
          const double edx =
              std::abs(dx[i] - gv * (cdf + x * pdf)) / std::abs(gv * (cdf + std::abs(x) * pdf));
          if (ez > tol || edx > tol) {
            INFO("x = " << x << ": z " << z[i] << " against " << x * cdf << ", dx " << dx[i]
                        << " against " << gv * (cdf + x * pdf));
            CHECK(ez <= tol);
            CHECK(edx <= tol);
          }
        }
      }
    }
  // The ends, as PyTorch 1.13.1 has them: gelu(-inf) = -inf * 0 and the slope inf * 0 at both ends
  // are NaN; far out but finite the slope is 1 or 0; NaN stays NaN; -0 keeps its sign.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  const std::vector<float> ends = {inf, -inf, 1e30f, -1e30f, nan, -0.0f};
  const std::vector<float> ones(ends.size(), 1.0f);
  for (vec::Isa isa : paths()) {
    INFO(std::string(vec::isa_name(isa)));
    std::vector<float> z(ends.size()), dx(ends.size());
    vec::functions(isa).gelu_forward(ends.data(), z.data(), ends.size());
    vec::functions(isa).gelu_backward(ends.data(), ones.data(), dx.data(), ends.size());
    CHECK(z[0] == inf);
    CHECK(std::isnan(z[1]));
    CHECK(z[2] == 1e30f);
    CHECK(z[3] == 0.0f);
    CHECK(std::isnan(z[4]));
    CHECK((z[5] == 0.0f && std::signbit(z[5])));
    CHECK(std::isnan(dx[0]));
    CHECK(std::isnan(dx[1]));
    CHECK(dx[2] == 1.0f);
    CHECK(dx[3] == 0.0f);
    CHECK(std::isnan(dx[4]));
    CHECK(dx[5] == 0.5f);
  }
}

namespace {
double sigmoid(double a) { return 1 / (1 + std::exp(-a)); }

// A float32 result against its double value.
bool near(double got, double want) { return std::abs(got - want) <= 2e-6 * (1 + std::abs(want)); }

// f(path's functions, H) for each path and gate widths H with and without a padded tail.
template <class F>
void for_each_path_and_width(F f) {
  for (vec::Isa isa : paths())
    for (std::size_t H : {1u, 5u, 16u, 19u, 40u}) {
      INFO(std::string(vec::isa_name(isa)) << ", H = " << H);
      f(vec::functions(isa), H);
    }
}
}  // namespace

TEST_CASE("vectorized LSTM gates, forward and backward, against double on every path") {
  for_each_path_and_width([](const vec::Functions& f, std::size_t H) {
    const std::size_t B = 3;
    const std::vector<float> xp = filled(B * 4 * H, 1, 4.0f), hp = filled(B * 4 * H, 2, 2.0f);
    const std::vector<float> c = filled(B * H, 3, 2.0f);
    const std::vector<float> gh = filled(B * H, 4), gc = filled(B * H, 5);
    std::vector<float> h_out(B * H), c_out(B * H), gates(B * 5 * H), da(B * 4 * H), dc(B * H);
    f.lstm_gates_forward(xp.data(), hp.data(), c.data(), B, H, h_out.data(), c_out.data(),
                         gates.data());
    f.lstm_gates_backward(gh.data(), gc.data(), c.data(), gates.data(), B, H, da.data(), dc.data());
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t j = 0; j < H; ++j) {
        const auto a = [&](std::size_t gate) {
          return double(xp[b * 4 * H + gate * H + j]) + double(hp[b * 4 * H + gate * H + j]);
        };
        const double i = sigmoid(a(0)), fg = sigmoid(a(1)), g = std::tanh(a(2)), o = sigmoid(a(3)),
                     cv = c[b * H + j];
        const double cn = fg * cv + i * g, t = std::tanh(cn);
        const std::size_t k = b * H + j;
        CHECK(near(h_out[k], o * t));
        CHECK(near(c_out[k], cn));
        const double saved[5] = {i, fg, g, o, t};
        for (std::size_t r = 0; r < 5; ++r) CHECK(near(gates[b * 5 * H + r * H + j], saved[r]));
        const double dcn = gc[k] + gh[k] * o * (1 - t * t);
        const double want[4] = {dcn * g * i * (1 - i), dcn * cv * fg * (1 - fg),
                                dcn * i * (1 - g * g), gh[k] * t * o * (1 - o)};
        for (std::size_t r = 0; r < 4; ++r) CHECK(near(da[b * 4 * H + r * H + j], want[r]));
        CHECK(near(dc[k], dcn * fg));
      }
  });
}

TEST_CASE("vectorized GRU gates, forward and backward, against double on every path") {
  for_each_path_and_width([](const vec::Functions& f, std::size_t H) {
    const std::size_t B = 3;
    const std::vector<float> xp = filled(B * 3 * H, 6, 4.0f), hp = filled(B * 3 * H, 7, 2.0f);
    const std::vector<float> h = filled(B * H, 8), g = filled(B * H, 9);
    std::vector<float> next(B * H), gates(B * 4 * H), dxp(B * 3 * H), dhp(B * 3 * H), dh(B * H);
    f.gru_gates_forward(xp.data(), hp.data(), h.data(), B, H, next.data(), gates.data());
    f.gru_gates_backward(g.data(), h.data(), gates.data(), B, H, dxp.data(), dhp.data(), dh.data());
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t j = 0; j < H; ++j) {
        const auto x = [&](std::size_t gate) { return double(xp[b * 3 * H + gate * H + j]); };
        const auto p = [&](std::size_t gate) { return double(hp[b * 3 * H + gate * H + j]); };
        const double r = sigmoid(x(0) + p(0)), z = sigmoid(x(1) + p(1));
        const double n = std::tanh(x(2) + r * p(2));
        const std::size_t k = b * H + j;
        CHECK(near(next[k], (1 - z) * n + z * h[k]));
        const double saved[4] = {r, z, n, p(2)};
        for (std::size_t q = 0; q < 4; ++q) CHECK(near(gates[b * 4 * H + q * H + j], saved[q]));
        const double da_n = g[k] * (1 - z) * (1 - n * n);
        const double da_r = da_n * p(2) * r * (1 - r), da_z = g[k] * (h[k] - n) * z * (1 - z);
        const double want_x[3] = {da_r, da_z, da_n}, want_h[3] = {da_r, da_z, da_n * r};
        for (std::size_t q = 0; q < 3; ++q) {
          CHECK(near(dxp[b * 3 * H + q * H + j], want_x[q]));
          CHECK(near(dhp[b * 3 * H + q * H + j], want_h[q]));
        }
        CHECK(near(dh[k], g[k] * z));
      }
  });
}

TEST_CASE("vectorized softmax rows and their backward against double on every path") {
  const double inf = std::numeric_limits<double>::infinity();
  for_each_path_and_width([&](const vec::Functions& f, std::size_t n) {
    // Three rows of n entries, 3 more between rows (ld = n + 3); the second row's last half
    // masked with -inf as a causal block's.
    const std::size_t rows = 3, ld = n + 3;
    std::vector<float> x = filled(rows * ld, unsigned(n) + 20, 6.0f);
    for (std::size_t j = n / 2 + 1; j < n; ++j) x[ld + j] = -float(inf);
    const std::vector<float> in = x;
    std::vector<float> top(rows), total(rows);
    f.softmax_rows(x.data(), rows, n, ld, top.data(), total.data());
    std::vector<std::vector<double>> want(rows, std::vector<double>(n));
    for (std::size_t r = 0; r < rows; ++r) {
      double t = -inf, s = 0;
      for (std::size_t j = 0; j < n; ++j) t = std::max(t, double(in[r * ld + j]));
      for (std::size_t j = 0; j < n; ++j) s += std::exp(double(in[r * ld + j]) - t);
      CHECK(top[r] == float(t));
      CHECK(near(total[r], s));
      for (std::size_t j = 0; j < n; ++j) {
        want[r][j] = std::exp(double(in[r * ld + j]) - t) / s;
        CHECK(near(x[r * ld + j], want[r][j]));
      }
      for (std::size_t j = n; j < ld; ++j) CHECK(x[r * ld + j] == in[r * ld + j]);  // untouched
    }
    // The backward from d: p (d - sum d p) scale, against double from the same float p.
    std::vector<float> d = filled(rows * ld, unsigned(n) + 21, 2.0f);
    const std::vector<float> d_in = d;
    f.softmax_backward_rows(d.data(), ld, x.data(), ld, rows, n, 0.25f);
    for (std::size_t r = 0; r < rows; ++r) {
      double dot = 0;
      for (std::size_t j = 0; j < n; ++j) dot += double(d_in[r * ld + j]) * double(x[r * ld + j]);
      for (std::size_t j = 0; j < n; ++j)
        CHECK(near(d[r * ld + j], double(x[r * ld + j]) * (double(d_in[r * ld + j]) - dot) * 0.25));
      for (std::size_t j = n; j < ld; ++j) CHECK(d[r * ld + j] == d_in[r * ld + j]);
    }
    // A row all -inf, a row with a NaN, a row with +inf: NaN throughout, as the composite.
    for (const double bad : {-inf, std::numeric_limits<double>::quiet_NaN(), inf}) {
      INFO("an entry " << bad);
      std::vector<float> row = filled(n, 30, 3.0f);
      if (std::isinf(bad) && bad < 0)
        std::fill(row.begin(), row.end(), float(bad));
      else
        row[n / 2] = float(bad);
      float t, s;
      f.softmax_rows(row.data(), 1, n, n, &t, &s);
      for (std::size_t j = 0; j < n; ++j) CHECK(std::isnan(row[j]));
    }
  });
}

TEST_CASE("max_pool2d's vectorized 2x2 windows equal their definition on every path") {
  // Widths whose windows fill whole batches of 4, 8 and 16 lanes and leave tails (ow = 1, 4, 14,
  // 16, 18, 33), odd heights and widths (the last row and column in no window). Entries from
  // {-0, 0, 1, 2} (ties in most windows, -0 against 0 among them), NaN, +-inf.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  const float pick[] = {-0.0f, 0.0f, 1.0f, 2.0f, 2.0f, 1.0f, 0.0f, -0.0f, nan, inf, -inf};
  for (vec::Isa isa : paths())
    for (std::size_t W : {2u, 9u, 28u, 33u, 37u, 66u})
      for (std::size_t H : {2u, 5u}) {
        INFO(vec::isa_name(isa) << ", planes of " << H << " x " << W);
        const std::size_t planes = 3, oh = H / 2, ow = W / 2;
        std::vector<float> x(planes * H * W);
        unsigned seed = unsigned(W * 31 + H);
        for (float& e : x) {
          seed = seed * 1664525u + 1013904223u;
          const unsigned r = seed >> 24;  // NaN and the infinities rarer than the rest
          e = pick[r < 240 ? r % 8 : 8 + r % 3];
        }
        std::vector<float> y(planes * oh * ow, 7.0f);
        std::vector<std::uint32_t> where(y.size(), 0);
        vec::functions(isa).max_pool_2x2({x.data(), planes, H, W, oh, ow}, y.data(), where.data());
        for (std::size_t p = 0; p < planes; ++p)
          for (std::size_t i = 0; i < oh; ++i)
            for (std::size_t j = 0; j < ow; ++j) {
              // the first largest in row-major order, then the first NaN
              const std::size_t at[4] = {2 * i * W + 2 * j, 2 * i * W + 2 * j + 1,
                                         (2 * i + 1) * W + 2 * j, (2 * i + 1) * W + 2 * j + 1};
              const float* plane = x.data() + p * H * W;
              std::size_t best = at[0];
              for (std::size_t k = 1; k < 4; ++k)
                if (plane[at[k]] > plane[best]) best = at[k];
              for (std::size_t k = 0; k < 4; ++k)
                if (std::isnan(plane[at[k]])) {
                  best = at[k];
                  break;
                }
              const std::size_t out = (p * oh + i) * ow + j;
              INFO("output " << out);
              CHECK(where[out] == best);
              CHECK(std::memcmp(&y[out], &plane[best], sizeof(float)) == 0);  // -0 is not 0
            }
      }
}

TEST_CASE(
    "small_gemm equals the product summed in double within the error bound of a sum, for each "
    "transposition, ragged sizes, alpha and beta, without reading C when beta is 0") {
  struct Path {
    std::string name;
    void (*f)(const vec::Product&, float*);
  };
  std::vector<Path> run;
  for (vec::Isa isa : paths())
    if (vec::functions(isa).small_gemm)
      run.push_back({vec::isa_name(isa), vec::functions(isa).small_gemm});
  // the products as the attention op calls them (detail::gemm where the path has none)
  run.push_back({std::string("chosen: ") + vec::instruction_set(), vec::small_gemm});
  if (!vec::supported(vec::Isa::avx512)) MESSAGE("no AVX-512: only the fallback to gemm is tested");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float eps = std::numeric_limits<float>::epsilon();
  std::uint32_t state = 7;
  const auto draw = [&state] {  // values in [-1, 1)
    state = state * 1664525u + 1013904223u;
    return float(int(state >> 8) - (1 << 23)) / float(1 << 23);
  };
  for (const Path& path : run)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (std::size_t m : {1, 3, 4, 5, 13, 64})
          for (std::size_t n : {1, 7, 16, 17, 32, 33, 47, 64, 100})
            for (std::size_t k : {0, 1, 8, 9, 32, 67})
              for (float beta : {0.0f, 1.0f, -0.5f}) {
                const float alpha = k % 2 ? 0.125f : 1.0f;
                // op(A) is m x k, op(B) k x n; stored rows 3 entries longer than they need
                const std::size_t ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k,
                                  cb = tb ? k : n;
                const std::size_t lda = ca + 3, ldb = cb + 3, ldc = n + 3;
                std::vector<float> a(ra * lda), b(rb * ldb), c(m * ldc), scratch(n * k + 1, nan);
                for (float& v : a) v = draw();
                for (float& v : b) v = draw();
                for (float& v : c) v = beta == 0.0f ? nan : draw();
                const std::vector<float> before = c;
                path.f({ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc},
                       scratch.data());
                INFO(path.name << (ta ? " T" : " N") << (tb ? "T " : "N ") << m << " x " << n
                               << " x " << k << " alpha " << alpha << " beta " << beta);
                const auto at_a = [&](std::size_t i, std::size_t q) {
                  return double(ta ? a[q * lda + i] : a[i * lda + q]);
                };
                const auto at_b = [&](std::size_t q, std::size_t j) {
                  return double(tb ? b[j * ldb + q] : b[q * ldb + j]);
                };
                std::size_t wrong = 0;
                for (std::size_t i = 0; i < m; ++i)
                  for (std::size_t j = 0; j < ldc; ++j) {
                    const float got = c[i * ldc + j];
                    if (j >= n) {  // past the row's n columns: untouched
                      if (std::memcmp(&got, &before[i * ldc + j], sizeof got) != 0) ++wrong;
                      continue;
                    }
                    double sum = 0, size = 0;
                    for (std::size_t q = 0; q < k; ++q) {
                      sum += at_a(i, q) * at_b(q, j);
                      size += std::fabs(at_a(i, q) * at_b(q, j));
                    }
                    const double old = beta == 0.0f ? 0.0 : double(before[i * ldc + j]);
                    const double want = double(alpha) * sum + double(beta) * old;
                    const double bound = double(k + 2) * eps *
                                         (double(alpha) * size + std::fabs(double(beta) * old));
                    if (!(std::fabs(double(got) - want) <= bound)) ++wrong;
                  }
                CHECK(wrong == 0);
              }
}

TEST_CASE("small_gemm's products count in the float32 FLOPs of a step's roofline, as gemm's do") {
  // 2 m n k for each product, on the tiles (m n k <= kSmallProduct) and in gemm above that
  for (std::size_t m : {4, 64, 100}) {
    const std::size_t n = 64, k = 64;
    std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n), scratch(n * k);
    const std::uint64_t before = xgrad::detail::float32_product_flops();
    vec::small_gemm({false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n},
                    scratch.data());
    INFO(m << " x " << n << " x " << k);
    CHECK(xgrad::detail::float32_product_flops() - before == 2 * m * n * k);
    CHECK(c[m * n - 1] == doctest::Approx(double(k) * 0.125));
  }
}

TEST_CASE(
    "panel_product adds A W^T to C against W packed in panels, within the error bound of a sum, "
    "for ragged sizes; nothing past C is written") {
  const float eps = std::numeric_limits<float>::epsilon();
  std::uint32_t state = 11;
  const auto draw = [&state] {  // values in [-1, 1)
    state = state * 1664525u + 1013904223u;
    return float(int(state >> 8) - (1 << 23)) / float(1 << 23);
  };
  std::size_t tested = 0;
  for (vec::Isa isa : paths()) {
    const auto f = vec::functions(isa).panel_product;
    if (!f) continue;
    ++tested;
    for (std::size_t m : {1, 5, 6, 7, 13, 32})
      for (std::size_t n : {1, 8, 15, 16, 17, 40, 64})
        for (std::size_t k : {0, 1, 7, 64}) {
          std::vector<float> a(m * k), w(n * k), c(m * n + 5), panels(vec::panels_size(n, k));
          for (float& v : a) v = draw();
          for (float& v : w) v = draw();
          for (float& v : c) v = draw();
          // past C: -0, which a lane loaded and stored back after adding 0 products turns to +0
          for (std::size_t i = m * n; i < c.size(); ++i) c[i] = -0.0f;
          const std::vector<float> before = c;
          vec::pack_panels(w.data(), n, k, panels.data());
          f(m, n, k, a.data(), panels.data(), c.data());
          INFO(vec::isa_name(isa) << ": " << m << " x " << n << " x " << k);
          std::size_t wrong = 0;
          for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
              double want = before[i * n + j], size = std::fabs(want);
              for (std::size_t q = 0; q < k; ++q) {
                want += double(a[i * k + q]) * double(w[j * k + q]);
                size += std::fabs(double(a[i * k + q]) * double(w[j * k + q]));
              }
              if (!(std::fabs(double(c[i * n + j]) - want) <= double(k + 1) * eps * size)) ++wrong;
            }
          for (std::size_t i = m * n; i < c.size(); ++i)
            if (std::memcmp(&c[i], &before[i], sizeof(float)) != 0) ++wrong;
          CHECK(wrong == 0);
        }
  }
  if (tested == 0) MESSAGE("no path with panel_product on this processor");
}
