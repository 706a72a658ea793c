// float32 convolution on oneDNN (see conv_onednn.hpp). Primitives are created once per shape and
// kept per thread; data moves between xgrad's NCHW and the layout oneDNN chose (blocked over
// channels) by reorders inside each call, into per-thread scratch arrays that every shape shares
// (so that an evaluation batch of another size costs no second set of arrays), or not at all where
// oneDNN chose NCHW itself.
#include "autograd/detail/conv_onednn.hpp"

#ifdef XGRAD_ONEDNN
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "autograd/detail/onednn.hpp"
#endif

#include "autograd/detail/blas.hpp"
#include "autograd/error.hpp"

namespace xgrad::detail {

#ifndef XGRAD_ONEDNN
bool onednn_convolution() { return false; }
ConvChoice onednn_conv_choice(const ConvGeometry&) { return {}; }
ConvBlocks onednn_conv_blocks(const ConvGeometry&) { return {}; }
void onednn_conv_forward(const ConvGeometry&, Activation<const float>, const float*, const float*,
                         Activation<float>) {
  throw Error("conv2d: this build has no oneDNN");
}
void onednn_conv_backward(const ConvGeometry&, Activation<const float>, const float*,
                          Activation<const float>, Activation<float>, float*, float*) {
  throw Error("conv2d: this build has no oneDNN");
}
#else
namespace {
using dnnl::memory;
using tag = memory::format_tag;
using Dims = memory::dims;

// One shape's primitives, and the layouts they take.
struct Plan {
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
  memory::desc src_user, weights_user, dst_user, bias_desc;  // xgrad's: NCHW, OIHW (GOIHW)
  // oneDNN's: for the forward, and for each backward (they may differ)
  memory::desc src, weights, dst;                 // forward
  memory::desc bd_weights, bd_diff_dst, bd_diff_src;  // backward data
  memory::desc bw_src, bw_diff_dst, bw_diff_weights;  // backward weights
  ConvChoice choice;
  ConvBlocks blocks;
  // xgrad's NCHW arrays and its blocked ones (autograd/node.hpp's BlockedArray), by block
  memory::desc src_user_of(std::size_t block) const {
    return block ? src_blocked[block / 16] : src_user;
  }
  memory::desc dst_user_of(std::size_t block) const {
    return block ? dst_blocked[block / 16] : dst_user;
  }
  memory::desc src_blocked[2], dst_blocked[2];  // aBcd8b, aBcd16b
};

// The block of `have` when it is one of `blocked` (aBcd8b, aBcd16b) with whole blocks of channels.
std::size_t block_of(const memory::desc& have, const memory::desc (&blocked)[2], std::size_t c) {
  for (const std::size_t block : {std::size_t{8}, std::size_t{16}})
    if (have == blocked[block / 16] && c % block == 0) return block;
  return 0;
}

// Whether the convolution may take oneDNN's Winograd convolution (convolution_auto for the
// forward and the input's gradient: oneDNN takes F(4x4, 3x3) where it has it and judges it faster,
// on AVX-512 for 3 x 3 windows of stride 1, and the direct one elsewhere; the weights' gradient
// follows the forward, make_plan): from 16 channels in and out of a group, unless
// set_allow_winograd(false) (autograd/blas.hpp). With one input channel (the reference CNN's first
// layer) its forward took 5x the direct time. Winograd adds and subtracts transformed tiles, so its
// sums are not the direct ones: conv2d's float32 tests bound the difference.
bool winograd_allowed(const ConvGeometry& g) {
  return allow_winograd() && g.c / g.groups >= 16 && g.o / g.groups >= 16;
}

Plan make_plan(const ConvGeometry& g) {
  const auto d = [](std::size_t v) { return static_cast<memory::dim>(v); };
  const Dims src = {d(g.n), d(g.c), d(g.h), d(g.w)}, dst = {d(g.n), d(g.o), d(g.oh), d(g.ow)};
  const Dims weights = g.groups == 1
                           ? Dims{d(g.o), d(g.c), d(g.kh), d(g.kw)}
                           : Dims{d(g.groups), d(g.o / g.groups), d(g.c / g.groups), d(g.kh), d(g.kw)};
  const Dims strides = {d(g.stride[0]), d(g.stride[1])};
  const Dims dilates = {d(g.dilation[0] - 1), d(g.dilation[1] - 1)};  // oneDNN counts from 0
  const Dims pad = {d(g.padding[0]), d(g.padding[1])};
  // oneDNN's right padding makes the output size exact: what the window leaves over on the right
  const auto right = [&](std::size_t in, std::size_t k, std::size_t s, std::size_t p, std::size_t dl,
                         std::size_t out) {
    return static_cast<memory::dim>((out - 1) * s + (k - 1) * dl + 1) - static_cast<memory::dim>(in + p);
  };
  const Dims pad_r = {right(g.h, g.kh, g.stride[0], g.padding[0], g.dilation[0], g.oh),
                      right(g.w, g.kw, g.stride[1], g.padding[1], g.dilation[1], g.ow)};
  const auto f32 = memory::data_type::f32;
  const memory::desc any_src(src, f32, tag::any), any_w(weights, f32, tag::any),
      any_dst(dst, f32, tag::any);
  const memory::desc bias = g.bias ? memory::desc({d(g.o)}, f32, tag::x) : memory::desc();
  const auto direct = dnnl::algorithm::convolution_direct;
  const auto algo = winograd_allowed(g) ? dnnl::algorithm::convolution_auto : direct;
  dnnl::convolution_forward::primitive_desc fwd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, any_src, any_w, bias,
                                      any_dst, strides, dilates, pad, pad_r),
      onednn_engine());
  dnnl::convolution_backward_data::primitive_desc bwd_data(
      dnnl::convolution_backward_data::desc(algo, any_src, any_w, any_dst, strides, dilates, pad,
                                            pad_r),
      onednn_engine(), fwd);
  // The weights' gradient takes Winograd where the forward did (convolution_auto never chooses it
  // for this pass, but asked for, it was 5-15% faster than the direct one on each of the reference
  // CNN's 32- and 64-channel layers), and the direct one elsewhere or where oneDNN has none.
  const auto weights_pd = [&](dnnl::algorithm a) {
    return dnnl::convolution_backward_weights::primitive_desc(
        dnnl::convolution_backward_weights::desc(a, any_src, any_w, bias, any_dst, strides, dilates,
                                                 pad, pad_r),
        onednn_engine(), fwd);
  };
  dnnl::convolution_backward_weights::primitive_desc bwd_weights;
  const bool winograd = std::string(fwd.impl_info_str()).find("wino") != std::string::npos;
  if (winograd) {
    try {
      bwd_weights = weights_pd(dnnl::algorithm::convolution_winograd);
    } catch (const dnnl::error&) {  // none for this shape: the direct one below
    }
  }
  if (!bwd_weights) bwd_weights = weights_pd(direct);
  // With one input channel, oneDNN's direct AVX2 kernel for the weights' gradient took twice the
  // time of its GEMM-based one (columns of the plain NCHW source, then one product per image) at
  // batch 1 to 64; its AVX-512 kernel took a sixth of it (docs/performance.md, "The first layer's
  // weights' gradient on AVX2"). oneDNN takes the GEMM-based one for plain layouts.
  bool weights_on_gemm = false;
  if (g.groups == 1 && g.c == 1 && std::string(bwd_weights.impl_info_str()) == "jit:avx2") {
    const memory::desc plain_src(src, f32, tag::nchw), plain_w(weights, f32, tag::oihw),
        plain_dst(dst, f32, tag::nchw);
    try {
      bwd_weights = dnnl::convolution_backward_weights::primitive_desc(
          dnnl::convolution_backward_weights::desc(direct, plain_src, plain_w, bias, plain_dst,
                                                   strides, dilates, pad, pad_r),
          onednn_engine(), fwd);
      weights_on_gemm = true;
    } catch (const dnnl::error&) {  // none: the direct one stays
    }
  }
  Plan p;
  p.choice = {.winograd = winograd, .weights_on_gemm = weights_on_gemm};
  p.forward = dnnl::convolution_forward(fwd);
  p.backward_data = dnnl::convolution_backward_data(bwd_data);
  p.backward_weights = dnnl::convolution_backward_weights(bwd_weights);
  p.src_user = memory::desc(src, f32, tag::nchw);
  p.dst_user = memory::desc(dst, f32, tag::nchw);
  p.src_blocked[0] = memory::desc(src, f32, tag::aBcd8b);
  p.src_blocked[1] = memory::desc(src, f32, tag::aBcd16b);
  p.dst_blocked[0] = memory::desc(dst, f32, tag::aBcd8b);
  p.dst_blocked[1] = memory::desc(dst, f32, tag::aBcd16b);
  p.weights_user = memory::desc(weights, f32, g.groups == 1 ? tag::oihw : tag::goihw);
  p.bias_desc = bias;
  p.src = fwd.src_desc();
  p.weights = fwd.weights_desc();
  p.dst = fwd.dst_desc();
  p.bd_weights = bwd_data.weights_desc();
  p.bd_diff_dst = bwd_data.diff_dst_desc();
  p.bd_diff_src = bwd_data.diff_src_desc();
  p.bw_src = bwd_weights.src_desc();
  p.bw_diff_dst = bwd_weights.diff_dst_desc();
  p.bw_diff_weights = bwd_weights.diff_weights_desc();
  p.blocks = {block_of(p.dst, p.dst_blocked, g.o), block_of(p.bd_diff_src, p.src_blocked, g.c)};
  return p;
}

// The plans of a thread, by shape and whether Winograd is allowed (and thread count:
// cached_plan).
const Plan& plan(const ConvGeometry& g) {
  using Key = std::tuple<std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                         std::size_t, std::size_t, std::size_t, std::array<std::size_t, 2>,
                         std::array<std::size_t, 2>, std::array<std::size_t, 2>, bool, bool>;
  thread_local OnednnPlans<Key, Plan> plans;
  const bool winograd = winograd_allowed(g);
  const Key key{g.n,      g.c,      g.h,       g.w,        g.o,    g.kh,    g.kw,
                g.groups, g.stride, g.padding, g.dilation, g.bias, winograd};
  return cached_plan(plans, key, [&] { return make_plan(g); });
}

// Per-thread arrays for the data in oneDNN's layouts, grown to the largest shape seen.
enum Slot { kSrc, kWeights, kDst, kSlots };
float* scratch(Slot slot, const memory::desc& desc) {
  thread_local std::vector<float> arrays[kSlots];
  std::vector<float>& a = arrays[slot];
  const std::size_t floats = desc.get_size() / sizeof(float);
  if (a.size() < floats) a.resize(floats);
  return a.data();
}

// The user's array `data` (layout `user`) as a memory of layout `want`: the array itself when
// they agree, else a reordered copy in scratch `slot`.
memory input(dnnl::stream& s, const memory::desc& user, const float* data,
             const memory::desc& want, Slot slot) {
  memory from(user, onednn_engine(), const_cast<float*>(data));
  if (want == user) return from;
  memory to(want, onednn_engine(), scratch(slot, want));
  dnnl::reorder(from, to).execute(s, from, to);
  return to;
}
// A memory of layout `have` for a result that goes to `data` (layout `user`), and the copy back.
memory output(const memory::desc& user, float* data, const memory::desc& have, Slot slot) {
  return have == user ? memory(user, onednn_engine(), data)
                      : memory(have, onednn_engine(), scratch(slot, have));
}
void deliver(dnnl::stream& s, memory& result, const memory::desc& user, float* data) {
  if (result.get_desc() == user) return;
  memory to(user, onednn_engine(), data);
  dnnl::reorder(result, to).execute(s, result, to);
}

// The multiply-adds of one pass (forward, data or weights backward): every output entry of every
// group sums over its group's input channels and the kernel.
double multiply_adds(const ConvGeometry& g) {
  return double(g.n) * double(g.o) * double(g.oh) * double(g.ow) * double(g.c / g.groups) *
         double(g.kh) * double(g.kw);
}
}  // namespace

bool onednn_convolution() { return true; }

ConvChoice onednn_conv_choice(const ConvGeometry& g) {
  ConvChoice choice;
  onednn_guarded("conv2d: oneDNN's convolution plan failed", [&] { choice = plan(g).choice; });
  return choice;
}

ConvBlocks onednn_conv_blocks(const ConvGeometry& g) {
  ConvBlocks blocks;
  onednn_guarded("conv2d: oneDNN's convolution plan failed", [&] { blocks = plan(g).blocks; });
  return blocks;
}

void onednn_conv_forward(const ConvGeometry& g, Activation<const float> x, const float* w,
                         const float* b, Activation<float> y) {
  onednn_guarded("conv2d: oneDNN's forward convolution failed", [&] {
    const Plan& p = plan(g);
    dnnl::stream& s = onednn_stream();
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, input(s, p.src_user_of(x.block), x.data, p.src, kSrc)},
        {DNNL_ARG_WEIGHTS, input(s, p.weights_user, w, p.weights, kWeights)}};
    const memory::desc y_desc = p.dst_user_of(y.block);
    memory dst = output(y_desc, y.data, p.dst, kDst);
    args[DNNL_ARG_DST] = dst;
    if (g.bias) args[DNNL_ARG_BIAS] = memory(p.bias_desc, onednn_engine(), const_cast<float*>(b));
    p.forward.execute(s, args);
    count_float32_product(multiply_adds(g));
    deliver(s, dst, y_desc, y.data);
    s.wait();
  });
}

// The data backward first (diff_dst in kDst, weights in kWeights, diff_src in kSrc), then the
// weights backward (src in kSrc, diff_dst in kDst again unless the layouts agree, diff_weights in
// kWeights): each step's arrays are free when the next one takes them.
void onednn_conv_backward(const ConvGeometry& g, Activation<const float> x, const float* w,
                          Activation<const float> dy, Activation<float> dx, float* dw, float* db) {
  onednn_guarded("conv2d: oneDNN's backward convolution failed", [&] {
    const Plan& p = plan(g);
    dnnl::stream& s = onednn_stream();
    std::vector<float> bias_sink;  // the bias gradient when only dw is asked for
    memory diff_dst;
    const memory::desc dy_desc = p.dst_user_of(dy.block), dx_desc = p.src_user_of(dx.block);
    if (dx.data) {
      diff_dst = input(s, dy_desc, dy.data, p.bd_diff_dst, kDst);
      memory diff_src = output(dx_desc, dx.data, p.bd_diff_src, kSrc);
      p.backward_data.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_WEIGHTS, input(s, p.weights_user, w, p.bd_weights, kWeights)},
                                  {DNNL_ARG_DIFF_SRC, diff_src}});
      count_float32_product(multiply_adds(g));
      deliver(s, diff_src, dx_desc, dx.data);
    }
    if (dw || db) {
      if (!dx.data || p.bw_diff_dst != p.bd_diff_dst)
        diff_dst = input(s, dy_desc, dy.data, p.bw_diff_dst, kDst);
      memory diff_weights = output(p.weights_user, dw ? dw : nullptr, p.bw_diff_weights, kWeights);
      std::vector<float> weights_sink;  // dw when only db is asked for, in xgrad's layout
      if (!dw && p.bw_diff_weights == p.weights_user) {
        weights_sink.resize(p.weights_user.get_size() / sizeof(float));
        diff_weights = memory(p.weights_user, onednn_engine(), weights_sink.data());
      }
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, input(s, p.src_user_of(x.block), x.data, p.bw_src, kSrc)},
          {DNNL_ARG_DIFF_DST, diff_dst},
          {DNNL_ARG_DIFF_WEIGHTS, diff_weights}};
      if (g.bias) {
        if (!db) bias_sink.resize(g.o);
        args[DNNL_ARG_DIFF_BIAS] = memory(p.bias_desc, onednn_engine(), db ? db : bias_sink.data());
      }
      p.backward_weights.execute(s, args);
      count_float32_product(multiply_adds(g));
      if (dw) deliver(s, diff_weights, p.weights_user, dw);
    }
    s.wait();
  });
}
#endif

}  // namespace xgrad::detail
