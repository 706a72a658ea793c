// make_grid and save_image: a grid of images as torchvision lays it out, and a PNG writer on zlib
// (one IDAT chunk of unfiltered rows: small images for the eye, not an archive format).
#include "nn/image.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "nn/state_files.hpp"

namespace xgrad::nn::utils {

namespace {

// The images as (N, C, H, W) values in float64, single channels repeated into three, as
// make_grid takes them.
struct Images {
  std::size_t n, c, h, w;
  std::vector<double> v;
  double& at(std::size_t i, std::size_t ch, std::size_t y, std::size_t x) {
    return v[((i * c + ch) * h + y) * w + x];
  }
};

Images read_images(const Tensor& images, const std::string& who) {
  if (!is_floating_point(images.dtype()))
    throw DtypeError(who + ": the images must be float32 or float64, got " +
                     std::string(dtype_name(images.dtype())));
  const Shape& s = images.shape();
  if (s.size() < 2 || s.size() > 4)
    throw ShapeError(who + ": images (N, C, H, W), one image (C, H, W) or (H, W), got " +
                     shape_str(s));
  std::size_t nchw[4] = {1, 1, 1, 1};  // (H, W) and (C, H, W) as a batch of one
  std::copy(s.begin(), s.end(), nchw + (4 - s.size()));
  if (nchw[0] == 0 || nchw[1] == 0 || nchw[2] == 0 || nchw[3] == 0)
    throw ShapeError(who + ": no pixels to lay out in images of shape " + shape_str(s));
  const Tensor x = images.detach().to(kFloat64).contiguous();
  const double* p = x.data_ptr<double>();
  Images out{nchw[0], nchw[1] == 1 ? 3 : nchw[1], nchw[2], nchw[3], {}};
  out.v.resize(out.n * out.c * out.h * out.w);
  const std::size_t plane = out.h * out.w;
  for (std::size_t i = 0; i < out.n; ++i)
    for (std::size_t ch = 0; ch < out.c; ++ch) {
      const double* from = p + (i * nchw[1] + (nchw[1] == 1 ? 0 : ch)) * plane;
      std::copy(from, from + plane,
                out.v.begin() + static_cast<std::ptrdiff_t>((i * out.c + ch) * plane));
    }
  return out;
}

// Clamps [first, last) to [low, high] and maps it to [0, 1], as torchvision's norm_ip.
void scale_to_unit(double* first, double* last, double low, double high) {
  const double span = std::max(high - low, 1e-5);
  for (double* v = first; v != last; ++v) *v = (std::clamp(*v, low, high) - low) / span;
}

// The min and max of the images' values [first, last); ValueError naming the image of a NaN (the
// range would be NaN). `first_image` is the image `first` begins.
std::pair<double, double> value_range_of(const double* first, const double* last,
                                         std::size_t first_image, std::size_t per_image,
                                         const std::string& who) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const double* v = first; v != last; ++v) {
    if (std::isnan(*v))
      throw ValueError(
          who + ": normalize: image " +
          std::to_string(first_image + static_cast<std::size_t>(v - first) / per_image) +
          " has a NaN; its range is undefined");
    low = std::min(low, *v);
    high = std::max(high, *v);
  }
  return {low, high};
}

void normalize(Images& im, const MakeGridOptions& o, const std::string& who) {
  const std::size_t per_image = im.c * im.h * im.w;
  const std::size_t groups = o.scale_each ? im.n : 1;
  const std::size_t size = o.scale_each ? per_image : im.v.size();
  for (std::size_t g = 0; g < groups; ++g) {
    double* first = im.v.data() + g * size;
    const auto [low, high] =
        o.value_range ? *o.value_range
                      : value_range_of(first, first + size, g * size / per_image, per_image, who);
    scale_to_unit(first, first + size, low, high);
  }
}

// The grid as (C, H', W') float64 values; errors name `who`.
Images grid_of(const Tensor& images, const MakeGridOptions& o, const std::string& who) {
  if (o.nrow == 0) throw ValueError(who + ": nrow must be at least 1");
  Images im = read_images(images, who);
  if (o.normalize) normalize(im, o, who);
  if (im.n == 1) return im;  // torchvision returns a single image as it is, without padding
  const std::size_t columns = std::min(o.nrow, im.n), rows = (im.n + columns - 1) / columns;
  const std::size_t cell_h = im.h + o.padding, cell_w = im.w + o.padding;
  Images grid{1, im.c, rows * cell_h + o.padding, columns * cell_w + o.padding, {}};
  grid.v.assign(grid.c * grid.h * grid.w, o.pad_value);
  for (std::size_t i = 0; i < im.n; ++i) {
    const std::size_t top = (i / columns) * cell_h + o.padding;
    const std::size_t left = (i % columns) * cell_w + o.padding;
    for (std::size_t ch = 0; ch < im.c; ++ch)
      for (std::size_t y = 0; y < im.h; ++y)
        for (std::size_t x = 0; x < im.w; ++x)
          grid.at(0, ch, top + y, left + x) = im.at(i, ch, y, x);
  }
  return grid;
}

void put_u32(std::string& s, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
}

// A PNG chunk: length, type, data, and the CRC of type and data.
void put_chunk(std::string& png, const char* type, const std::string& data) {
  put_u32(png, static_cast<std::uint32_t>(data.size()));
  const std::string typed = std::string(type, 4) + data;
  png += typed;
  put_u32(png, static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0),
                                                reinterpret_cast<const Bytef*>(typed.data()),
                                                static_cast<uInt>(typed.size()))));
}

// An 8-bit RGB or RGBA PNG of the grid's values in [0, 1].
std::string png_bytes(const Images& grid) {
  const std::size_t max_side = 1u << 24;  // a side's PNG limit is 2^31 - 1; this keeps rows sane
  if (grid.h > max_side || grid.w > max_side)
    throw ValueError("save_image: a grid of " + std::to_string(grid.h) + " x " +
                     std::to_string(grid.w) + " pixels is too large for a PNG");
  // Each row: filter type 0, then the pixels' channels interleaved.
  std::string rows;
  rows.reserve(grid.h * (1 + grid.w * grid.c));
  for (std::size_t y = 0; y < grid.h; ++y) {
    rows += '\0';
    for (std::size_t x = 0; x < grid.w; ++x)
      for (std::size_t ch = 0; ch < grid.c; ++ch) {
        const double v = grid.v[(ch * grid.h + y) * grid.w + x];
        if (std::isnan(v))
          throw ValueError("save_image: NaN at channel " + std::to_string(ch) + ", row " +
                           std::to_string(y) + ", column " + std::to_string(x) +
                           " of the grid; a pixel needs a number");
        rows +=
            static_cast<char>(static_cast<unsigned char>(std::clamp(v * 255 + 0.5, 0.0, 255.0)));
      }
  }
  uLongf packed_size = compressBound(static_cast<uLong>(rows.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                reinterpret_cast<const Bytef*>(rows.data()), static_cast<uLong>(rows.size()),
                Z_BEST_COMPRESSION) != Z_OK)
    throw ValueError("save_image: zlib could not compress the image");
  packed.resize(packed_size);

  std::string header;
  put_u32(header, static_cast<std::uint32_t>(grid.w));
  put_u32(header, static_cast<std::uint32_t>(grid.h));
  header += static_cast<char>(8);                    // bits per channel
  header += static_cast<char>(grid.c == 4 ? 6 : 2);  // colour type: RGBA or RGB
  header += std::string(3, '\0');                    // deflate, adaptive filtering, no interlace
  std::string png = "\x89PNG\r\n\x1a\n";
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

Tensor to_tensor(const Images& grid, Dtype dtype) {
  return from_vector(grid.v, {grid.c, grid.h, grid.w}, {.dtype = kFloat64}).to(dtype);
}

}  // namespace

Tensor make_grid(const Tensor& images, const MakeGridOptions& options) {
  NoGradGuard no_grad;
  return to_tensor(grid_of(images, options, "make_grid"), images.dtype());
}

void save_image(const Tensor& images, const std::string& path, const MakeGridOptions& options) {
  NoGradGuard no_grad;
  const Images grid = grid_of(images, options, "save_image");
  if (grid.c != 3 && grid.c != 4)
    throw ShapeError("save_image: images of 1, 3 or 4 channels, got " + std::to_string(grid.c) +
                     " in " + shape_str(images.shape()));
  state_files::write_atomically(path, png_bytes(grid), "save_image");
}

}  // namespace xgrad::nn::utils
