// libFuzzer entry point for xgrad::fuzz::npz (./dev fuzz builds and runs it).
#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  xgrad::fuzz::npz(data, size);
  return 0;
}
