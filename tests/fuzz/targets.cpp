#include "tests/fuzz/targets.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "nn/data.hpp"
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

void npz(const std::uint8_t* data, std::size_t size) {
  try {
    for (const auto& [name, t] : nn::load_npz(as_file(data, size)))
      if (name.empty() || !t.defined()) std::abort();  // load_npz promised named tensors
  } catch (const Error&) {
  }
}

}  // namespace xgrad::fuzz
