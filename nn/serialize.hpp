#pragma once
/// \file
/// Checkpoints in files NumPy reads: one .npy file per tensor, in a folder, or all of a model's
/// in one .npz file.
///
///   save(model, "model.npz");         // one file: dict(np.load("model.npz")) in Python
///   save(model, "ckpt/model");        // ckpt/model/0.weight.npy, ckpt/model/0.bias.npy, ...
///   save(optimizer, "ckpt/optim");    // momentum buffers, moments, steps.npy, lr.npy
///   load(model, "ckpt/model");        // ShapeError naming the parameter if shapes differ
///
/// In Python: {f[:-4]: np.load("ckpt/model/" + f) for f in os.listdir("ckpt/model")}.
/// Every file is written to a temporary name and renamed, so an interrupted save never leaves a
/// half-written file where a good one was.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/tensor.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/nn/optim.hpp"

namespace xgrad::nn {

/// One tensor as an NPY (version 1.0) file: little-endian float32 ('<f4') or float64 ('<f8'),
/// C order.
void save_npy(const std::string& path, const Tensor& tensor);
/// Reads what save_npy and np.save write for float32 and float64 arrays, in C or Fortran order
/// (np.asfortranarray, a.T: the result is in C order), keeping the file's dtype (ValueError for
/// anything else: a wrong magic string, a truncated file, a size that disagrees with the shape,
/// a path that is not a regular file).
Tensor load_npy(const std::string& path);

/// Writes each parameter and buffer of `module` (state_dict) as NAME.npy: into the folder
/// `path`, or, for a path ending in .npz, into that one file (save_npz), which np.load opens.
void save(const Module& module, const std::string& path);
/// Loads every parameter and buffer of `module` from the folder or the .npz file `path`,
/// converting each file's dtype to the tensor's (a float64 file for a float32 parameter is
/// rounded to float32, a float32 file for a float64 one widened exactly). Missing entries, extra
/// entries and different shapes are errors, and then nothing is changed.
void load(Module& module, const std::string& path);

/// A state dict as one .npz file, as np.savez writes: a zip of NAME.npy entries (stored), written
/// to PATH.tmp and renamed. In Python: `dict(np.load("model.npz"))`, and back with
/// `np.savez("model.npz", **{k: v.numpy() for k, v in model.state_dict().items()})`.
/// ValueError for an empty or repeated name.
void save_npz(const StateDict& state, const std::string& path);
/// Reads what save_npz, np.savez and np.savez_compressed write, every entry checked (its size,
/// its CRC-32, its NPY header) before anything is returned: ValueError naming the file and the
/// entry otherwise.
StateDict load_npz(const std::string& path);

void save(const Optimizer& optimizer, const std::string& dir);
void load(Optimizer& optimizer, const std::string& dir);

/// Everything a training program needs to resume exactly, in one folder, the one checkpoint API
/// of xgrad's programs: a module's parameters, an optimizer's state, a learning-rate schedule's,
/// the states of random generators (shuffling, dropout, augmentation), the epoch, and the
/// program's own metadata (any text, e.g. JSON), kept as is.
///
///   nn::Checkpoint ckpt;
///   ckpt.module(model).optimizer(adam).scheduler(cosine).generator("shuffle", gen);
///   ckpt.epoch = 3;
///   ckpt.save("run/ckpt");   // run/ckpt/checkpoint.json, run/ckpt/model/*.npy, .../optimizer/
///   ckpt.load("run/ckpt");   // into the same objects; returns with ckpt.epoch == 3
///
/// checkpoint.json describes the module (its printed tree and parameter shapes) and the optimizer
/// (its name), and lists every file with its size and CRC-32; load refuses a checkpoint of
/// another model or optimizer, naming both, and one whose files are missing, extra or changed.
/// A save writes a new folder beside `dir` (DIR.new, marked as the save's own) and then moves it
/// into place, so that `dir` holds the old checkpoint or the new one whole; load finishes a move
/// that a crash interrupted. Only folders that a save marked as its own are ever replaced, moved
/// or removed: a user's DIR.new or DIR.old, a foreign file in DIR, or a symbolic link makes save
/// refuse before it changes anything (docs/design.md, "Checkpoints").
class Checkpoint {
 public:
  Checkpoint& module(Module& module);
  /// The module registered (nullptr: none).
  Module* module() const { return module_; }
  Checkpoint& optimizer(Optimizer& optimizer);
  Checkpoint& scheduler(LRScheduler& scheduler);
  Checkpoint& generator(const std::string& name, Generator& generator);

  std::int64_t epoch = 0;
  std::string metadata;

  void save(const std::string& dir) const;
  /// Restores every registered object, epoch and metadata. ValueError (and nothing changed: every
  /// file is read and checked first) for a folder that is not a checkpoint, one of another
  /// model, optimizer or schedule, or one with a missing, extra or damaged file.
  void load(const std::string& dir);
  /// Whether `dir` holds a checkpoint (or an interrupted save of one).
  static bool exists(const std::string& dir);

 private:
  Module* module_ = nullptr;
  Optimizer* optimizer_ = nullptr;
  LRScheduler* scheduler_ = nullptr;
  std::vector<std::pair<std::string, Generator*>> generators_;
};

}  // namespace xgrad::nn

namespace xgrad {
/// xgrad::save(model, "model.npz") / xgrad::load(model, "model.npz"), as torch::save/load.
using nn::load;
using nn::save;
}  // namespace xgrad
