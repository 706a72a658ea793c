// libFuzzer entry point for walkthrough::fuzz::network_spec (./dev fuzz builds and runs it).
#include "examples/walkthrough/fuzz/target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  walkthrough::fuzz::network_spec(data, size);
  return 0;
}
