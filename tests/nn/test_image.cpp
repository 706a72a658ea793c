// make_grid and save_image (nn/image.hpp): the grid checked pixel by pixel against the layout
// written the other way round (which image, if any, covers a pixel), and the PNG decoded here
// with zlib (chunks, CRCs, rows) and compared with the values it was given.
#include <doctest/doctest.h>

#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "autograd/ops.hpp"
#include "nn/image.hpp"
#include "tests/files.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using nn::utils::make_grid;
using nn::utils::MakeGridOptions;
using nn::utils::save_image;
using testing::flat;
using testing::Png;
using testing::read_png;

namespace {

// Distinct values, 0.001 k at the k-th position, over (n, c, h, w).
Tensor numbered(std::size_t n, std::size_t c, std::size_t h, std::size_t w) {
  std::vector<double> v(n * c * h * w);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = 0.001 * static_cast<double>(k);
  return from_vector(v, {n, c, h, w}, {.dtype = kFloat64});
}

// The value make_grid must give at (channel, y, x): the image whose cell covers the pixel, or the
// padding. `source(i, ch, y, x)` reads the images.
template <class Source>
double expected_pixel(std::size_t n, std::size_t h, std::size_t w, const MakeGridOptions& o,
                      std::size_t ch, std::size_t y, std::size_t x, Source source) {
  const std::size_t columns = std::min(o.nrow, n), p = o.padding;
  if (y < p || x < p) return o.pad_value;
  const std::size_t row = (y - p) / (h + p), column = (x - p) / (w + p);
  const std::size_t dy = (y - p) % (h + p), dx = (x - p) % (w + p);
  const std::size_t image = row * columns + column;
  if (column >= columns || dy >= h || dx >= w || image >= n) return o.pad_value;
  return source(image, ch, dy, dx);
}

}  // namespace

TEST_CASE("make_grid lays images out as torchvision: rows of nrow, padding between and around") {
  const Tensor images = numbered(5, 1, 3, 4);
  const std::vector<double> v = flat(images);
  for (const MakeGridOptions& o :
       {MakeGridOptions{.nrow = 2, .padding = 1, .pad_value = -1}, MakeGridOptions{.nrow = 8},
        MakeGridOptions{.nrow = 3, .padding = 0}}) {
    CAPTURE(o.nrow);
    CAPTURE(o.padding);
    const Tensor grid = make_grid(images, o);
    const std::size_t columns = std::min<std::size_t>(o.nrow, 5),
                      rows = (5 + columns - 1) / columns;
    // A single channel is repeated into three, as torchvision's.
    REQUIRE(grid.shape() ==
            Shape{3, rows * (3 + o.padding) + o.padding, columns * (4 + o.padding) + o.padding});
    CHECK(grid.dtype() == kFloat64);
    const std::vector<double> g = flat(grid);
    std::size_t mismatches = 0;
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t y = 0; y < grid.size(1); ++y)
        for (std::size_t x = 0; x < grid.size(2); ++x) {
          const double want =
              expected_pixel(5, 3, 4, o, ch, y, x,
                             [&](std::size_t i, std::size_t, std::size_t yy, std::size_t xx) {
                               return v[(i * 3 + yy) * 4 + xx];
                             });
          mismatches += g[(ch * grid.size(1) + y) * grid.size(2) + x] != want;
        }
    CHECK(mismatches == 0);
  }
  // Three channels stay three, each its own; float32 stays float32.
  const Tensor rgb = numbered(2, 3, 2, 2).to(kFloat32);
  const Tensor grid = make_grid(rgb, {.nrow = 2, .padding = 1});
  CHECK(grid.dtype() == kFloat32);
  REQUIRE(grid.shape() == Shape{3, 4, 7});
  const std::vector<double> g = flat(grid.to(kFloat64)), src = flat(rgb.to(kFloat64));
  // Image 1, channel 2, pixel (1, 0) sits at row 1 + 1, column (2 + 1) + 1 + 0.
  CHECK(g[(2 * 4 + 2) * 7 + 4] == src[((1 * 3 + 2) * 2 + 1) * 2 + 0]);
}

TEST_CASE("make_grid of one image returns it without padding; (H, W) and (C, H, W) are one image") {
  const Tensor one = numbered(1, 1, 3, 2);
  for (const Tensor& image : {one, one.reshape({1, 3, 2}), one.reshape({3, 2})}) {
    const Tensor grid = make_grid(image, {.padding = 5, .pad_value = 9});
    REQUIRE(grid.shape() == Shape{3, 3, 2});
    const std::vector<double> g = flat(grid), v = flat(one);
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t k = 0; k < 6; ++k) CHECK(g[ch * 6 + k] == v[k]);
  }
}

TEST_CASE("make_grid normalize: by value_range (clamped), by the batch's range, or each image's") {
  // Image 0 spans [-2, 2], image 1 spans [10, 14].
  const Tensor images = from_vector(std::vector<double>{-2, 0, 1, 2, 10, 11, 13, 14}, {2, 1, 2, 2},
                                    {.dtype = kFloat64});
  const auto cell = [](const Tensor& grid, std::size_t i, std::size_t k) {
    // padding 0, nrow 2: image i's pixel k = (k / 2, k % 2) at column 2 i + k % 2.
    return flat(grid)[(k / 2) * 4 + 2 * i + k % 2];
  };
  const Tensor batch = make_grid(images, {.nrow = 2, .padding = 0, .normalize = true});
  CHECK(cell(batch, 0, 0) == doctest::Approx(0.0));
  CHECK(cell(batch, 0, 3) == doctest::Approx(4.0 / 16));
  CHECK(cell(batch, 1, 3) == doctest::Approx(1.0));
  const Tensor each =
      make_grid(images, {.nrow = 2, .padding = 0, .normalize = true, .scale_each = true});
  CHECK(cell(each, 0, 1) == doctest::Approx(0.5));
  CHECK(cell(each, 1, 0) == doctest::Approx(0.0));
  CHECK(cell(each, 1, 2) == doctest::Approx(0.75));
  const Tensor ranged = make_grid(
      images, {.nrow = 2, .padding = 0, .normalize = true, .value_range = std::pair{0.0, 10.0}});
  CHECK(cell(ranged, 0, 0) == 0.0);  // -2 clamped to 0
  CHECK(cell(ranged, 0, 2) == doctest::Approx(0.1));
  CHECK(cell(ranged, 1, 3) == 1.0);  // 14 clamped to 10
  // A constant image: its range is 0, divided by 1e-5 instead (torchvision's guard): all 0.
  const Tensor flat_image = full({1, 1, 2, 2}, 3.0, {.dtype = kFloat64});
  for (double x : flat(make_grid(flat_image, {.normalize = true, .scale_each = true})))
    CHECK(x == 0.0);
}

TEST_CASE("make_grid records nothing and refuses what it cannot lay out") {
  Tensor images = numbered(2, 1, 2, 2);
  images.requires_grad_(true);
  CHECK_FALSE(make_grid(images).requires_grad());
  CHECK_THROWS_AS_MESSAGE(make_grid(from_vector(std::vector<std::int64_t>{1, 2, 3, 4}, {2, 2})),
                          DtypeError,
                          "make_grid: the images must be float32 or float64, got int64");
  CHECK_THROWS_WITH_AS(
      make_grid(zeros({1, 1, 1, 2, 2})),
      doctest::Contains("(N, C, H, W), one image (C, H, W) or (H, W), got [1, 1, 1, 2, 2]"),
      ShapeError);
  CHECK_THROWS_WITH_AS(make_grid(zeros({0, 1, 2, 2})), doctest::Contains("no pixels"), ShapeError);
  CHECK_THROWS_WITH_AS(make_grid(images, {.nrow = 0}), "make_grid: nrow must be at least 1",
                       ValueError);
  Tensor nan = numbered(2, 1, 2, 2);
  nan.mutable_value<double>()(1, 0, 1, 0) = std::nan("");
  CHECK_THROWS_WITH_AS(make_grid(nan, {.normalize = true}),
                       "make_grid: normalize: image 1 has a NaN; its range is undefined",
                       ValueError);
  CHECK_THROWS_WITH_AS(make_grid(nan, {.normalize = true, .scale_each = true}),
                       "make_grid: normalize: image 1 has a NaN; its range is undefined",
                       ValueError);
  CHECK(std::isnan(flat(make_grid(nan, {.padding = 0}))[1 * 4 + 2 + 0]));  // shown as it is
}

TEST_CASE("save_image writes the grid as an 8-bit PNG: round(255 v), clamped to [0, 1]") {
  const testing::ScratchDir dir("image");
  // Values that probe the rounding and the clamp: 0.5 -> 128, 1/255 * 2.4 -> 2, -0.3 -> 0, 1.7 ->
  // 255.
  std::vector<double> v(3 * 1 * 3 * 2);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(k) / 17.0;
  v[0] = 0.5;
  v[1] = 2.4 / 255;
  v[2] = -0.3;
  v[3] = 1.7;
  const Tensor images = from_vector(v, {3, 1, 3, 2}, {.dtype = kFloat64});
  const MakeGridOptions o{.nrow = 2, .padding = 1, .pad_value = 0.25};
  save_image(images, (dir / "grid.png").string(), o);
  const Png png = read_png(dir / "grid.png");
  CHECK(png.colour_type == 2);
  const Tensor grid = make_grid(images, o);
  REQUIRE(png.height == grid.size(1));
  REQUIRE(png.width == grid.size(2));
  const std::vector<double> g = flat(grid);
  std::size_t mismatches = 0;
  for (std::size_t y = 0; y < png.height; ++y)
    for (std::size_t x = 0; x < png.width; ++x)
      for (std::size_t ch = 0; ch < 3; ++ch) {
        const double value = g[(ch * png.height + y) * png.width + x];
        const auto want = static_cast<unsigned>(std::lround(std::clamp(value, 0.0, 1.0) * 255));
        mismatches += png.pixels[(y * png.width + x) * 3 + ch] != want;
      }
  CHECK(mismatches == 0);
  // Image 0's first pixels at (1, 1), (1, 2), (2, 1), (2, 2): 128, 2, 0, 255; the padding 64.
  const auto gray = [&](std::size_t y, std::size_t x) {
    return png.pixels[(y * png.width + x) * 3];
  };
  CHECK(gray(1, 1) == 128);
  CHECK(gray(1, 2) == 2);
  CHECK(gray(2, 1) == 0);
  CHECK(gray(2, 2) == 255);
  CHECK(gray(0, 0) == 64);
  CHECK_FALSE(std::filesystem::exists(dir / "grid.png.tmp"));

  // Four channels give RGBA.
  save_image(numbered(2, 4, 2, 2), (dir / "rgba.png").string());
  CHECK(read_png(dir / "rgba.png").colour_type == 6);
}

TEST_CASE(
    "save_image refuses a NaN, other channel counts and an unwritable path, leaving no file") {
  const testing::ScratchDir dir("image_errors");
  Tensor nan = numbered(2, 1, 2, 2);
  nan.mutable_value<double>()(1, 0, 0, 1) = std::nan("");
  // Image 1's pixel (0, 1) is at row 2, column (2 + 2) + 2 + 1 = 7 of the padded grid.
  CHECK_THROWS_WITH_AS(save_image(nan, (dir / "nan.png").string()),
                       "save_image: NaN at channel 0, row 2, column 7 of the grid; a pixel needs a "
                       "number",
                       ValueError);
  CHECK_THROWS_WITH_AS(save_image(numbered(2, 2, 2, 2), (dir / "two.png").string()),
                       "save_image: images of 1, 3 or 4 channels, got 2 in [2, 2, 2, 2]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(save_image(numbered(2, 1, 2, 2), (dir / "no" / "such" / "x.png").string()),
                       doctest::Contains("save_image: could not write"), ValueError);
  CHECK(std::filesystem::is_empty(dir.path()));
}
