#pragma once
// The oneDNN engine and the stream of the calling thread that every oneDNN call of xgrad goes
// through (the matmul primitives of blas.cpp, the convolutions of conv_onednn.cpp): one of each
// per thread, not one per file. Only for files compiled with XGRAD_ONEDNN.

#include <cstddef>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "autograd/error.hpp"

namespace xgrad::detail {

// At most this many primitive plans per thread and cache (blas.cpp's matmuls, conv_onednn.cpp's
// convolutions): past it a cache starts over, so that a program whose shapes never repeat does
// not grow it without end.
constexpr std::size_t kOnednnPlans = 64;

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // the calling thread's

// Runs f; a oneDNN failure inside it comes out as xgrad's error, `context` (the operation, what
// failed, the shape) before oneDNN's own message.
template <class F>
void onednn_guarded(const std::string& context, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace xgrad::detail
