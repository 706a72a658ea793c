// libFuzzer entry point for xgrad::fuzz::network_spec (./dev fuzz builds and runs it).
#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  xgrad::fuzz::network_spec(data, size);
  return 0;
}
