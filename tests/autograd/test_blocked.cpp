// The blocked layout's storage (autograd/node.hpp's BlockedArray, autograd/detail/blocked.hpp): a
// tensor over blocked values reads as its plain values through every reader, and turns plain once,
// in place, for every tensor that shares the values, its version unchanged.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <string>

#include "autograd/blas.hpp"
#include "autograd/detail/blocked.hpp"
#include "autograd/detail/conv_onednn.hpp"
#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {
// 20 channels: the last block of 8 or 16 is padded.
Tensor random_images(std::uint64_t seed) {
  Generator gen(seed);
  return randn({2, 20, 3, 5}, {}, gen);
}
}  // namespace

TEST_CASE("a tensor over blocked values reads as its plain values through every reader") {
  if (!detail::onednn_convolution()) return;  // blocked values come from oneDNN's reorders
  const Tensor x = random_images(1);
  const xt::xarray<float> want = x.value<float>();
  for (const std::size_t block : {std::size_t{8}, std::size_t{16}}) {
    CAPTURE(block);
    const auto make = [&] { return detail::make_blocked(detail::to_blocked(x, block)); };
    {
      const Tensor b = make();
      const BlockedArray* held = detail::blocked(b);
      REQUIRE(held);
      CHECK(held->values.shape() == Shape{2, (20 + block - 1) / block, 3, 5, block});
      // the padding channels are zero; the others hold x's values at (n, c / block, h, w, c %
      // block)
      const float* v = held->values.data();
      const std::size_t blocks = (20 + block - 1) / block;
      bool placed = true;
      for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t c = 0; c < blocks * block; ++c)
          for (std::size_t s = 0; s < 15; ++s) {
            const float got = v[((n * blocks + c / block) * 15 + s) * block + c % block];
            placed &= got == (c < 20 ? want.data()[(n * 20 + c) * 15 + s] : 0.0f);
          }
      CHECK(placed);
      // shape, dtype and count without making it plain
      CHECK(b.dtype() == Dtype::float32);
      CHECK(b.shape() == Shape{2, 20, 3, 5});
      CHECK(b.numel() == 600);
      CHECK(b.is_contiguous());
      CHECK(detail::blocked(b));
      const std::uint64_t version = b.impl()->version->load();
      CHECK(b.value<float>() == want);
      CHECK_FALSE(detail::blocked(b));  // plain now, in place
      CHECK(b.impl()->version->load() == version);
    }
    // every other way in: data_ptr, a view, an op, a copy, a detached tensor sharing the values
    CHECK(make().data_ptr<float>()[7] == want.data()[7]);
    CHECK(transpose(make(), 1, 3).contiguous().value<float>() ==
          transpose(x, 1, 3).contiguous().value<float>());
    CHECK(reshape(make(), {2, -1}).value<float>() == reshape(x, {2, -1}).value<float>());
    CHECK(add(make(), x).value<float>() == add(x, x).value<float>());
    CHECK(make().clone().value<float>() == want);
    CHECK(std::get<xt::xarray<float>>(make().storage()) == want);
    const Tensor shared = make(), detached = shared.detach();
    CHECK(detached.value<float>() == want);
    CHECK_FALSE(detail::blocked(shared));  // the values both hold turned plain once
    CHECK(shared.value<float>() == want);
    // an in-place change counts once, the layout's change not at all
    const Tensor changed = make();
    changed.mutable_value<float>() += 1.0f;
    CHECK(changed.impl()->version->load() == 1);
    CHECK(changed.value<float>() == want + 1.0f);
    // saved by a node and read in the backward
    Tensor leaf = make();
    leaf.requires_grad_();
    mul(leaf, leaf).sum().backward();
    CHECK(leaf.grad().value<float>() == 2.0f * want);
  }
}

TEST_CASE("blocked values: bad shapes and blocks are errors that name the layout") {
  if (!detail::onednn_convolution()) return;
  CHECK_THROWS_WITH_AS(detail::to_blocked(zeros({2, 3}), 8),
                       doctest::Contains("blocked layout: needs (N, C, H, W)"), Error);
  CHECK_THROWS_WITH_AS(detail::to_blocked(zeros({1, 3, 2, 2}), 4),
                       doctest::Contains("a block of 8 or 16"), Error);
  CHECK_THROWS_AS(detail::to_blocked(zeros({1, 3, 2, 2}, {.dtype = Dtype::float64}), 8),
                  DtypeError);
}

namespace {
// Two 3 x 3 convolutions of padding 1 in a row (1 -> 32 -> 32 channels, the reference CNN's first
// two), float32: the output, and every gradient for a random g.
struct TwoConvolutions {
  Tensor y, dx, dw1, db1, dw2, db2;
  bool output_blocked = false, middle_blocked = false;
};
TwoConvolutions two_convolutions(bool blocked) {
  set_blocked_layout(blocked);
  Generator gen(3);
  Tensor x = randn({4, 1, 9, 7}, {}, gen).requires_grad_();
  Tensor w1 = mul(randn({32, 1, 3, 3}, {}, gen), from_vector(std::vector<float>{0.3f}, {1}))
                  .detach()
                  .requires_grad_();
  Tensor b1 = randn({32}, {}, gen).requires_grad_();
  Tensor w2 = mul(randn({32, 32, 3, 3}, {}, gen), from_vector(std::vector<float>{0.1f}, {1}))
                  .detach()
                  .requires_grad_();
  Tensor b2 = randn({32}, {}, gen).requires_grad_();
  const Tensor g = randn({4, 32, 9, 7}, {}, gen);
  const auto opt = Conv2dFuncOptions().padding(1);
  const Tensor middle = conv2d(x, w1, b1, opt);
  TwoConvolutions r;
  r.middle_blocked = detail::blocked(middle) != nullptr;
  r.y = conv2d(middle, w2, b2, opt);
  r.output_blocked = detail::blocked(r.y) != nullptr;
  r.y.backward(g);
  r.dx = x.grad();
  r.dw1 = w1.grad();
  r.db1 = b1.grad();
  r.dw2 = w2.grad();
  r.db2 = b2.grad();
  set_blocked_layout(true);
  return r;
}
}  // namespace

TEST_CASE("conv2d float32 keeps oneDNN's blocked layout between convolutions, the same bits") {
  if (!detail::onednn_convolution()) return;
  const detail::ConvGeometry second{4, 32, 9, 7, 32, 3, 3, 9, 7, 1, {1, 1}, {1, 1}, {1, 1}, true};
  const detail::ConvBlocks blocks = detail::onednn_conv_blocks(second);
  const detail::ConvGeometry first{4, 1, 9, 7, 32, 3, 3, 9, 7, 1, {1, 1}, {1, 1}, {1, 1}, true};
  const TwoConvolutions plain = two_convolutions(false), blocked = two_convolutions(true);
  CHECK_FALSE(plain.middle_blocked);
  CHECK_FALSE(plain.output_blocked);
  // oneDNN gives the 32 channels blocked on every ISA it has a direct kernel for
  CHECK(blocks.output != 0);
  CHECK(blocked.output_blocked == (blocks.output != 0));
  CHECK(blocked.middle_blocked == (detail::onednn_conv_blocks(first).output != 0));
  // the same primitives on the same values: only the reorders between them are gone
  CHECK(blocked.y.value<float>() == plain.y.value<float>());
  CHECK(blocked.dx.value<float>() == plain.dx.value<float>());
  CHECK(blocked.dw1.value<float>() == plain.dw1.value<float>());
  CHECK(blocked.db1.value<float>() == plain.db1.value<float>());
  CHECK(blocked.dw2.value<float>() == plain.dw2.value<float>());
  CHECK(blocked.db2.value<float>() == plain.db2.value<float>());
}

namespace {
// batch_norm (with `act`) of x, on its values as given (plain or blocked), and its gradients for g
// (given plain, or blocked as x); the running statistics start from fixed values each time.
struct NormRun {
  Tensor y, dx, dw, db, running_mean, running_var;
  bool blocked_out = false;
};
std::vector<float> floats(const Tensor& t) {
  const auto& a = t.value<float>();
  return {a.begin(), a.end()};
}
// The entries' bits: equal where the floats are the same, NaN included.
std::vector<std::uint32_t> bits(const Tensor& t) {
  std::vector<std::uint32_t> out;
  for (float v : floats(t)) out.push_back(std::bit_cast<std::uint32_t>(v));
  return out;
}
// 32 values from lo to hi, evenly spaced.
Tensor ramp(float lo, float hi) {
  std::vector<float> v(32);
  for (std::size_t i = 0; i < 32; ++i) v[i] = lo + (hi - lo) * float(i) / 31;
  return from_vector(v, {32});
}
std::size_t nans(const Tensor& t) {
  std::size_t n = 0;
  for (float v : floats(t)) n += std::isnan(v) ? 1 : 0;
  return n;
}
NormRun norm_run(const Tensor& x_in, const Tensor& g, Epilogue act, bool training) {
  NormRun r;
  Tensor x = x_in.detach().requires_grad_();
  Tensor w = ramp(0.5f, 1.5f).requires_grad_(), b = ramp(-0.3f, 0.4f).requires_grad_();
  r.running_mean = ramp(-0.2f, 0.2f);
  r.running_var = ramp(0.5f, 2.0f);
  r.y = batch_norm(x, r.running_mean, r.running_var, w, b, training, 0.1, 1e-5, act);
  r.blocked_out = detail::blocked(r.y) != nullptr;
  r.y.backward(g);
  r.dx = x.grad();
  r.dw = w.grad();
  r.db = b.grad();
  return r;
}
Tensor blocked_copy(const Tensor& x, std::size_t block) {
  return detail::make_blocked(detail::to_blocked(x, block));
}
// Within float32's rounding of the sums (different orders of the same sums), relative to the
// largest entry: a wrong channel or mask is off by O(1).
bool near(const Tensor& got, const Tensor& want) {
  const std::vector<float> a = floats(got), b = floats(want);
  double largest = 1, worst = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    largest = std::max(largest, double(std::abs(b[i])));
    worst = std::max(worst, double(std::abs(a[i] - b[i])));  // NaN: fails below
  }
  return a.size() == b.size() && worst <= 1e-5 * largest;
}
}  // namespace

TEST_CASE(
    "batch_norm on blocked float32 values keeps the layout: the plain op's values, every "
    "epilogue, training and evaluation") {
  if (!detail::onednn_convolution()) return;
  Generator gen(5);
  // 5 x 7 positions: with a block of 8 on 16 lanes each plane ends in half a vector
  Tensor x = randn({3, 32, 5, 7}, {}, gen);
  const Tensor g = randn({3, 32, 5, 7}, {}, gen);
  // evaluation's conventions: an entry at relu's kink (x = running mean: z = 0 exactly, masked)
  // and a NaN (kept: its gradient passes)
  const Tensor finite = x.clone();
  x.mutable_value<float>()(0, 3, 1, 1) = ramp(-0.2f, 0.2f).value<float>()(3);
  x.mutable_value<float>()(1, 9, 2, 4) = std::nanf("");
  for (const std::size_t block : {std::size_t{8}, std::size_t{16}})
    for (const Epilogue act : {Epilogue::none, Epilogue::relu, Epilogue::tanh, Epilogue::sigmoid})
      for (const bool training : {true, false}) {
        CAPTURE(block);
        CAPTURE(std::string(epilogue_name(act)));
        CAPTURE(training);
        const Tensor& in = training ? finite : x;  // a NaN makes its channel's statistics NaN
        const NormRun plain = norm_run(in, g, act, training);
        const NormRun blocked =
            norm_run(blocked_copy(in, block), blocked_copy(g, block), act, training);
        const NormRun g_plain = norm_run(blocked_copy(in, block), g, act, training);
        CHECK_FALSE(plain.blocked_out);
        CHECK(blocked.blocked_out);
        if (training) {
          CHECK(near(blocked.y, plain.y));
          CHECK(near(blocked.dx, plain.dx));
          CHECK(near(blocked.running_mean, plain.running_mean));
          CHECK(near(blocked.running_var, plain.running_var));
        } else {  // per-entry arithmetic from the same constants: the same bits, NaN included
          CHECK(bits(blocked.y) == bits(plain.y));
          CHECK(nans(blocked.y) == 1);
          CHECK(bits(blocked.dx) == bits(plain.dx));
          CHECK(bits(blocked.running_mean) == bits(plain.running_mean));
        }
        CHECK(near(blocked.dw, plain.dw));
        CHECK(near(blocked.db, plain.db));
        // a gradient that arrives plain is reordered into x's layout: the same bits
        CHECK(bits(g_plain.dx) == bits(blocked.dx));
        CHECK(bits(g_plain.dw) == bits(blocked.dw));
      }
}

TEST_CASE(
    "max_pool2d's 2 x 2 windows on blocked float32 values keep the layout: the plain op's "
    "values, ties and NaN included") {
  if (!detail::onednn_convolution()) return;
  Generator gen(7);
  // rounded to halves, so that windows hold ties; a NaN; 7 x 9: the last row and column dropped
  xt::xarray<float> values = randn({2, 32, 7, 9}, {}, gen).value<float>();
  values = xt::round(values * 2.0f) / 2.0f;
  values(1, 17, 2, 3) = std::nanf("");
  const Tensor x(values);
  const Tensor g = randn({2, 32, 3, 4}, {}, gen);
  const auto run = [&](const Tensor& in, const Tensor& grad_out) {
    Tensor leaf = in.detach().requires_grad_();
    Tensor y = max_pool2d(leaf, 2);
    const bool kept = detail::blocked(y) != nullptr;
    y.backward(grad_out);
    return std::tuple{y, leaf.grad(), kept};
  };
  for (const std::size_t block : {std::size_t{8}, std::size_t{16}}) {
    CAPTURE(block);
    const auto [y, dx, plain_kept] = run(x, g);
    const auto [by, bdx, kept] = run(blocked_copy(x, block), blocked_copy(g, block));
    const auto [py, pdx, kept_too] = run(blocked_copy(x, block), g);  // the gradient plain
    CHECK_FALSE(plain_kept);
    CHECK(kept);
    CHECK(detail::blocked(bdx));
    CHECK(bits(by) == bits(y));
    CHECK(bits(bdx) == bits(dx));
    CHECK(bits(pdx) == bits(dx));
    // the path that reads the chosen entries in the plain order: a backward recorded for a second
    // derivative
    Tensor leaf = blocked_copy(x, block).requires_grad_();
    const Tensor first = grad({max_pool2d(leaf, 2)}, {leaf}, {g}, true)[0];
    Tensor plain_leaf = x.detach().requires_grad_();
    const Tensor plain_first = grad({max_pool2d(plain_leaf, 2)}, {plain_leaf}, {g}, true)[0];
    CHECK(bits(first) == bits(plain_first));
  }
}
