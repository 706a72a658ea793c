#include "tests/fuzz/targets.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "nn/backprop.hpp"
#include "nn/data.hpp"
#include "nn/network_spec.hpp"
#include "nn/serialize.hpp"

namespace xgrad::fuzz {

namespace {
// The file readers take paths: each input is written to one scratch file per process.
std::string as_file(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    std::string p = "/tmp/xgrad_fuzz_XXXXXX";
    const int fd = mkstemp(p.data());
    if (fd < 0) std::abort();
    close(fd);
    return p;
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
}  // namespace

void network_spec(const std::uint8_t* data, std::size_t size) {
  nn::NetworkSpec spec;
  try {
    spec = nn::parse_network_spec(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const Error&) {
    return;
  }
  // A spec that parsed must run: both computations, on networks small enough to be quick.
  std::size_t weights = spec.x.size();
  for (const nn::DenseLayer& layer : spec.layers) weights += layer.W.size();
  if (weights > 20000) return;
  const nn::BackpropTrace closed = nn::closed_form_backprop(spec.layers, spec.x, spec.y, spec.lr);
  const nn::BackpropTrace tape = nn::tape_backprop(spec.layers, spec.x, spec.y, spec.lr);
  (void)nn::compare_traces(closed, tape);
}

void idx(const std::uint8_t* data, std::size_t size) {
  try {
    const nn::IdxFile f = nn::read_idx(as_file(data, size));
    std::size_t count = 1;
    for (std::size_t d : f.shape) count *= d;
    if (count != f.data.size()) std::abort();  // read_idx promised exactly this much data
  } catch (const Error&) {
  }
}

void npy(const std::uint8_t* data, std::size_t size) {
  try {
    const Tensor t = nn::load_npy(as_file(data, size));
    if (t.numel() * (t.dtype() == Dtype::float32 ? 4 : 8) > size) std::abort();
  } catch (const Error&) {
  }
}

}  // namespace xgrad::fuzz
