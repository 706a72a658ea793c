#pragma once
/// \file
/// Checkpoints in files NumPy reads: one .npy file per tensor, in a folder.
///
///   save(model, "ckpt/model");        // ckpt/model/0.weight.npy, ckpt/model/0.bias.npy, ...
///   save(optimizer, "ckpt/optim");    // momentum buffers, moments, steps.npy, lr.npy
///   load(model, "ckpt/model");        // ShapeError naming the parameter if shapes differ
///
/// In Python: {f[:-4]: np.load("ckpt/model/" + f) for f in os.listdir("ckpt/model")}.
/// Every file is written to a temporary name and renamed, so an interrupted save never leaves a
/// half-written file where a good one was.

#include <string>

#include "autograd/tensor.hpp"
#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace xgrad::nn {

/// One tensor as an NPY (version 1.0) file: little-endian float32 ('<f4') or float64 ('<f8'),
/// C order.
void save_npy(const std::string& path, const Tensor& tensor);
/// Reads what save_npy and np.save write for float32 and float64 arrays (ValueError for anything
/// else: a wrong magic string, a truncated file, a size that disagrees with the shape).
Tensor load_npy(const std::string& path);

void save(const Module& module, const std::string& dir);
/// Loads every parameter of `module` from `dir`, converting to the parameter's dtype. Missing
/// files, extra files and different shapes are errors, and then nothing is changed.
void load(Module& module, const std::string& dir);

void save(const Optimizer& optimizer, const std::string& dir);
void load(Optimizer& optimizer, const std::string& dir);

}  // namespace xgrad::nn
