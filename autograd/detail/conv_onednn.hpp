#pragma once
// float32 convolution on oneDNN's convolution primitives (direct, or Winograd's where allowed:
// conv_onednn.cpp), where the build has oneDNN. Measured against xgrad's own shifted products on
// the reference CNN's layers: 1.3-2x faster forward and backward with the direct ones, reorders to
// and from its blocked layout included (docs/performance.md).

#include <array>
#include <cstddef>

namespace xgrad::detail {

struct ConvGeometry {
  std::size_t n, c, h, w, o, kh, kw, oh, ow, groups;
  std::array<std::size_t, 2> stride, padding, dilation;
  bool bias;
};

/// Whether this build runs float32 convolutions on oneDNN.
bool onednn_convolution();
/// Which of oneDNN's convolutions a shape takes, on this thread at the current settings (threads,
/// set_allow_winograd): for tests that hold each one's sums to their error bound.
struct ConvChoice {
  bool winograd = false;  // Winograd's for the forward and the input's gradient (and the weights'
                          // where oneDNN has it)
  bool weights_on_gemm = false;  // the weights' gradient by columns and a GEMM (make_plan)
};
ConvChoice onednn_conv_choice(const ConvGeometry& g);
/// The channels' block (8 or 16) of the layout oneDNN's forward gives its output in, where that
/// is aBcd8b or aBcd16b and the output's channels fill whole blocks; else 0. The same for the
/// layout of the input's gradient.
struct ConvBlocks {
  std::size_t output = 0, input_grad = 0;
};
ConvBlocks onednn_conv_blocks(const ConvGeometry& g);
/// An activation (x, y) or its gradient: plain NCHW (block 0) or blocked (autograd/node.hpp's
/// BlockedArray's values).
template <class T>
struct Activation {
  T* data = nullptr;
  std::size_t block = 0;
};
/// y (n, o, oh, ow) = conv(x, w) + b; b null without bias.
void onednn_conv_forward(const ConvGeometry& g, Activation<const float> x, const float* w,
                         const float* b, Activation<float> y);
/// From dy (n, o, oh, ow): dx, dw and db, each only when its pointer is not null (dw and db are
/// overwritten, not added to).
void onednn_conv_backward(const ConvGeometry& g, Activation<const float> x, const float* w,
                          Activation<const float> dy, Activation<float> dx, float* dw, float* db);

}  // namespace xgrad::detail
