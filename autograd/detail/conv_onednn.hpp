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
/// y (n, o, oh, ow) = conv(x, w) + b; b null without bias. NCHW in, NCHW out.
void onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y);
/// From dy (n, o, oh, ow): dx, dw and db, each only when its pointer is not null (dw and db are
/// overwritten, not added to).
void onednn_conv_backward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                          float* dx, float* dw, float* db);

}  // namespace xgrad::detail
