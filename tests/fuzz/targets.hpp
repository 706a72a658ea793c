#pragma once
// What the fuzzers feed bytes to: the library's parsers of untrusted files (IDX data files, NPY
// checkpoints, NPZ state dicts; the walkthrough's spec parser has its own, in
// examples/walkthrough/fuzz/). Each returns normally for any input; xgrad::Error is the expected
// way to refuse one. A crash, a sanitizer report or a hang is a bug.

#include <cstddef>
#include <cstdint>

namespace xgrad::fuzz {

void idx(const std::uint8_t* data, std::size_t size);
void npy(const std::uint8_t* data, std::size_t size);
void npz(const std::uint8_t* data, std::size_t size);

}  // namespace xgrad::fuzz
