#pragma once
// The files that hold a module's and an optimizer's state (NPY, one per tensor), as the public
// save/load of nn/serialize.hpp and nn::Checkpoint share them: written atomically, read only from
// regular files of a bounded size, each read checked against its module or optimizer before
// anything changes. Private to the library (not installed).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace xgrad::nn::state_files {

std::uint32_t crc32_bytes(const std::string& bytes);
/// Writes PATH.tmp, then renames it to PATH: a reader sees the old file or the new one, whole.
/// ValueError naming `who` when the write or the rename fails.
void write_atomically(const std::filesystem::path& path, const std::string& bytes,
                      const char* who = "save");
/// A tensor as the bytes of an NPY (version 1.0) file.
std::string npy_bytes(const Tensor& tensor);
/// The tensor an NPY file's bytes hold (what load_npy reads); ValueError naming `where`.
Tensor npy_tensor(const std::string& bytes, const std::string& where);
/// The bytes of a regular file of at most `limit` bytes (a FIFO, a device or a folder is refused,
/// never read: /dev/zero would fill memory, a FIFO would block). ValueError naming `who`.
std::string read_regular_file(const std::string& path, std::uintmax_t limit, const char* who);

/// What load(Module) reads, every file checked against the module, before anything changes.
StateDict read_module(const Module& module, const std::string& dir);

/// An optimizer's files, read and checked against it: applying them cannot fail.
struct OptimizerFiles {
  std::int64_t steps = 0;
  std::vector<double> lrs;
  std::vector<std::tuple<std::string, std::size_t, Tensor>> slots;  // name, parameter, value
};
OptimizerFiles read_optimizer(const Optimizer& optimizer, const std::string& dir);
void apply_optimizer_state(Optimizer& optimizer, const OptimizerFiles& state);
/// The tensors an optimizer's state is saved as: NAME.INDEX per defined slot, steps, lr.
std::vector<std::pair<std::string, Tensor>> optimizer_tensors(const Optimizer& optimizer);

/// A checkpoint's list of its files: PREFIX/NAME.npy -> (bytes, CRC-32).
using Manifest = std::map<std::string, std::pair<std::uint64_t, std::uint32_t>>;
/// Each tensor of `named` as NAME.npy in `dir` (created), its size and CRC-32 added to
/// `manifest` (when given) under PREFIX/NAME.npy.
void write_tensors(const std::filesystem::path& dir, const std::string& prefix,
                   const std::vector<std::pair<std::string, Tensor>>& named, Manifest* manifest);

}  // namespace xgrad::nn::state_files
