#pragma once
// The oneDNN engine and the stream of the calling thread that every oneDNN call of xgrad goes
// through (the matmul primitives of blas.cpp, the convolutions of conv_onednn.cpp): one of each
// per thread, not one per file. Only for files compiled with XGRAD_ONEDNN.

#include <oneapi/dnnl/dnnl.hpp>

namespace xgrad::detail {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // the calling thread's

}  // namespace xgrad::detail
