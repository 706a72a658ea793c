#pragma once
// What the fuzzer feeds bytes to: the parser of network specs, then both computations on what it
// accepts. It returns normally for any input; xgrad::Error is the expected way to refuse one. A
// crash, a sanitizer report or a hang is a bug.

#include <cstddef>
#include <cstdint>

namespace walkthrough::fuzz {

void network_spec(const std::uint8_t* data, std::size_t size);

}  // namespace walkthrough::fuzz
