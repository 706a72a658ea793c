// float32 convolution on oneDNN (see conv_onednn.hpp). Primitives are created once per shape and
// kept per thread; data moves between xgrad's NCHW and the layout oneDNN chose (blocked over
// channels) by reorders inside each call, into arrays kept with the primitives.
#include "autograd/detail/conv_onednn.hpp"

#ifdef XGRAD_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>
#endif

#include "autograd/error.hpp"

namespace xgrad::detail {

#ifndef XGRAD_ONEDNN
bool onednn_convolution() { return false; }
void onednn_conv_forward(const ConvGeometry&, const float*, const float*, const float*, float*) {
  throw Error("conv2d: this build has no oneDNN");
}
void onednn_conv_backward(const ConvGeometry&, const float*, const float*, const float*, float*,
                          float*, float*) {
  throw Error("conv2d: this build has no oneDNN");
}
#else
namespace {
using dnnl::memory;
using tag = memory::format_tag;
using Dims = memory::dims;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One shape's primitives, and its arrays in oneDNN's layouts.
struct Plan {
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
  memory::desc src_user, weights_user, dst_user, bias_desc;
  // oneDNN's layouts: for the forward, and for each backward (they may differ)
  memory src, weights, dst;                 // forward
  memory bd_weights, bd_diff_dst, bd_diff_src;  // backward data
  memory bw_src, bw_diff_dst, bw_diff_weights;  // backward weights
};

std::shared_ptr<Plan> make_plan(const ConvGeometry& g) {
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
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc fwd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, any_src, any_w,
                                      bias, any_dst, strides, dilates, pad, pad_r),
      engine());
  dnnl::convolution_backward_data::primitive_desc bwd_data(
      dnnl::convolution_backward_data::desc(algo, any_src, any_w, any_dst, strides, dilates, pad,
                                            pad_r),
      engine(), fwd);
  dnnl::convolution_backward_weights::primitive_desc bwd_weights(
      dnnl::convolution_backward_weights::desc(algo, any_src, any_w, bias, any_dst, strides,
                                               dilates, pad, pad_r),
      engine(), fwd);
  auto p = std::make_shared<Plan>();
  p->forward = dnnl::convolution_forward(fwd);
  p->backward_data = dnnl::convolution_backward_data(bwd_data);
  p->backward_weights = dnnl::convolution_backward_weights(bwd_weights);
  p->src_user = memory::desc(src, f32, tag::nchw);
  p->dst_user = memory::desc(dst, f32, tag::nchw);
  p->weights_user = memory::desc(weights, f32, g.groups == 1 ? tag::oihw : tag::goihw);
  p->bias_desc = bias;
  p->src = memory(fwd.src_desc(), engine());
  p->weights = memory(fwd.weights_desc(), engine());
  p->dst = memory(fwd.dst_desc(), engine());
  p->bd_weights = memory(bwd_data.weights_desc(), engine());
  p->bd_diff_dst = memory(bwd_data.diff_dst_desc(), engine());
  p->bd_diff_src = memory(bwd_data.diff_src_desc(), engine());
  p->bw_src = memory(bwd_weights.src_desc(), engine());
  p->bw_diff_dst = memory(bwd_weights.diff_dst_desc(), engine());
  p->bw_diff_weights = memory(bwd_weights.diff_weights_desc(), engine());
  return p;
}

Plan& plan(const ConvGeometry& g) {
  using Key = std::tuple<std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                         std::size_t, std::size_t, std::size_t, std::array<std::size_t, 2>,
                         std::array<std::size_t, 2>, std::array<std::size_t, 2>, bool>;
  thread_local std::map<Key, std::shared_ptr<Plan>> plans;
  const Key key{g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.groups, g.stride, g.padding, g.dilation, g.bias};
  auto& slot = plans[key];
  if (!slot) slot = make_plan(g);
  return *slot;
}

// Copies `from` (user's layout at `data`) into `to`, or back, by a reorder; none when they agree.
void into(dnnl::stream& s, const memory::desc& user, const float* data, memory& to) {
  memory from(user, engine(), const_cast<float*>(data));
  dnnl::reorder(from, to).execute(s, from, to);
}
void out_of(dnnl::stream& s, memory& from, const memory::desc& user, float* data) {
  memory to(user, engine(), data);
  dnnl::reorder(from, to).execute(s, from, to);
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

template <class F>
void guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw Error(std::string("conv2d: oneDNN's ") + what + " failed: " + e.what());
  }
}
}  // namespace

bool onednn_convolution() { return true; }

void onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y) {
  guarded("forward convolution", [&] {
    Plan& p = plan(g);
    dnnl::stream& s = stream();
    into(s, p.src_user, x, p.src);
    into(s, p.weights_user, w, p.weights);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, p.dst}};
    if (g.bias) args[DNNL_ARG_BIAS] = memory(p.bias_desc, engine(), const_cast<float*>(b));
    p.forward.execute(s, args);
    out_of(s, p.dst, p.dst_user, y);
    s.wait();
  });
}

void onednn_conv_backward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                          float* dx, float* dw, float* db) {
  guarded("backward convolution", [&] {
    Plan& p = plan(g);
    dnnl::stream& s = stream();
    std::vector<float> bias_sink;  // the bias gradient when only dw is asked for
    if (dx) {
      into(s, p.weights_user, w, p.bd_weights);
      into(s, p.dst_user, dy, p.bd_diff_dst);
      p.backward_data.execute(s, {{DNNL_ARG_DIFF_DST, p.bd_diff_dst},
                                  {DNNL_ARG_WEIGHTS, p.bd_weights},
                                  {DNNL_ARG_DIFF_SRC, p.bd_diff_src}});
      out_of(s, p.bd_diff_src, p.src_user, dx);
    }
    if (dw || db) {
      into(s, p.src_user, x, p.bw_src);
      // dy in the weights' backward layout: the data backward's copy when the layouts agree
      const bool same = dx && p.bw_diff_dst.get_desc() == p.bd_diff_dst.get_desc();
      if (!same) into(s, p.dst_user, dy, p.bw_diff_dst);
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, p.bw_src},
                                              {DNNL_ARG_DIFF_DST, same ? p.bd_diff_dst : p.bw_diff_dst},
                                              {DNNL_ARG_DIFF_WEIGHTS, p.bw_diff_weights}};
      if (g.bias) {
        if (!db) bias_sink.resize(g.o);
        args[DNNL_ARG_DIFF_BIAS] = memory(p.bias_desc, engine(), db ? db : bias_sink.data());
      }
      p.backward_weights.execute(s, args);
      if (dw) out_of(s, p.bw_diff_weights, p.weights_user, dw);
    }
    s.wait();
  });
}
#endif

}  // namespace xgrad::detail
