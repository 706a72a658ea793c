#pragma once
// What the fuzzers feed bytes to: the three parsers of untrusted files (network specs, IDX data
// files, NPY checkpoints). Each returns normally for any input; xgrad::Error is the expected way
// to refuse one. A crash, a sanitizer report or a hang is a bug.

#include <cstddef>
#include <cstdint>

namespace xgrad::fuzz {

void network_spec(const std::uint8_t* data, std::size_t size);
void idx(const std::uint8_t* data, std::size_t size);
void npy(const std::uint8_t* data, std::size_t size);

}  // namespace xgrad::fuzz
