#pragma once
/// \file
/// Images to look at, as torchvision.utils: a batch laid out in one grid, and saved as a PNG.
///
///   nn::utils::save_image(concat({originals, reconstructions}), "grid.png", {.nrow = 8});
///
/// Values are taken in [0, 1] (clamped), or scaled from their own range with `.normalize`. Nothing
/// is recorded on the tape: these are for the eye, not for training.

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad::nn::utils {

/// torchvision.utils.make_grid's options, with its names and defaults.
struct MakeGridOptions {
  std::size_t nrow = 8;     ///< images per row of the grid
  std::size_t padding = 2;  ///< pixels between images and around them
  bool normalize = false;   ///< scale values to [0, 1] by value_range, or by the min and max
  std::optional<std::pair<double, double>> value_range = {};  ///< (low, high) for normalize
  bool scale_each = false;  ///< normalize each image by its own min and max
  double pad_value = 0;     ///< the value of the padding pixels
};

/// The images of `images` (N, C, H, W), or one image (C, H, W) or (H, W), side by side in rows of
/// nrow, as torchvision's make_grid: (C', rows * (H + padding) + padding, columns * (W + padding) +
/// padding), where a single channel is repeated into three (C' = 3) and a batch of one image is
/// returned alone, without padding. The dtype of `images` (float32 or float64). DtypeError for an
/// integer dtype, ShapeError for another rank or an empty batch, ValueError for nrow 0 or a NaN
/// when normalizing (its min and max would be NaN; without normalize a NaN stays a NaN).
Tensor make_grid(const Tensor& images, const MakeGridOptions& options = {});

/// make_grid(images, options) written as an 8-bit PNG, RGB (three channels) or RGBA (four): each
/// value v in [0, 1] becomes round(255 v), values outside are clamped, as torchvision's
/// save_image. The file is written whole or not at all (a temporary file renamed). make_grid's
/// errors, ShapeError for another number of channels, ValueError naming the pixel of a NaN or
/// when the file cannot be written.
void save_image(const Tensor& images, const std::string& path, const MakeGridOptions& options = {});

}  // namespace xgrad::nn::utils
