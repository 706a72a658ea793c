#include "nn/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

namespace xgrad::nn {

namespace {

constexpr std::size_t kMaxItems = std::size_t{1} << 32;  // far above any real IDX file

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw ValueError("read_idx: " + path + ": " + why);
}

// Reads a file, gzip-compressed (one or more gzip members, as gzip writes them) or plain, and
// closes it. zlib's gzread ignores bytes that follow a gzip stream when they are not another gzip
// member; here they are damage, so the stream is inflated by hand.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    // A FIFO would block and a device (/dev/zero) never end: only regular files are read.
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
      bad(path, "not a regular file");
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) bad(path, "cannot open the file");
    unsigned char magic[2] = {0, 0};
    gzip_ = std::fread(magic, 1, 2, file_) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::rewind(file_);
    if (gzip_ && inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
      std::fclose(file_);
      bad(path, "cannot start zlib");
    }
  }
  ~Reader() {
    if (gzip_) inflateEnd(&zs_);
    std::fclose(file_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data.
  std::size_t read(std::uint8_t* out, std::size_t n) {
    if (!gzip_) return std::fread(out, 1, n, file_);
    std::size_t done = 0;
    while (done < n && !finished_) {
      if (zs_.avail_in == 0 && !refill()) {
        if (!between_members_) bad(path_, "truncated gzip data");
        finished_ = true;
        break;
      }
      if (between_members_) {  // what follows a member must be another member
        if (zs_.next_in[0] != 0x1f) bad(path_, "bytes that are not gzip data follow the gzip stream");
        inflateReset(&zs_);
        between_members_ = false;
      }
      const std::size_t chunk = std::min<std::size_t>(n - done, 1 << 20);
      zs_.next_out = out + done;
      zs_.avail_out = static_cast<uInt>(chunk);
      const int r = inflate(&zs_, Z_NO_FLUSH);
      done += chunk - zs_.avail_out;
      if (r == Z_STREAM_END)
        between_members_ = true;
      else if (r != Z_OK && r != Z_BUF_ERROR)
        bad(path_, std::string("corrupt gzip data (") + (zs_.msg ? zs_.msg : "zlib error") + ")");
    }
    return done;
  }

 private:
  bool refill() {
    const std::size_t got = std::fread(buffer_.data(), 1, buffer_.size(), file_);
    zs_.next_in = buffer_.data();
    zs_.avail_in = static_cast<uInt>(got);
    return got > 0;
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  bool gzip_ = false, between_members_ = false, finished_ = false;
  z_stream zs_{};
  std::vector<unsigned char> buffer_ = std::vector<unsigned char>(1 << 16);
};

// Crops and flips each image of x (N, C, H, W) in place, drawing from gen: per image,
// the offsets (dy, dx) of the crop, then the flip.
template <class T>
void augment_images(xt::xarray<T>& x, const Augmentation& a, Generator& gen, double flip_p = 0.5) {
  const std::size_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
  const auto pad = static_cast<std::ptrdiff_t>(a.crop_padding);
  std::uniform_int_distribution<std::ptrdiff_t> offset(-pad, pad);
  std::bernoulli_distribution flip(flip_p);
  std::vector<T> plane(h * w);
  for (std::size_t i = 0; i < n; ++i) {
    const std::ptrdiff_t dy = pad ? offset(gen.engine()) : 0, dx = pad ? offset(gen.engine()) : 0;
    const bool mirror = a.horizontal_flip && flip(gen.engine());
    for (std::size_t ch = 0; ch < c; ++ch) {
      T* image = x.data() + (i * c + ch) * h * w;
      std::copy_n(image, h * w, plane.data());
      // out(r, q) = in(r + dy, q' + dx), q' = q or its mirror; zero outside the image
      for (std::size_t r = 0; r < h; ++r)
        for (std::size_t q = 0; q < w; ++q) {
          const std::ptrdiff_t y = static_cast<std::ptrdiff_t>(r) + dy;
          const std::ptrdiff_t col =
              static_cast<std::ptrdiff_t>(mirror ? w - 1 - q : q) + dx;
          const bool inside = y >= 0 && y < static_cast<std::ptrdiff_t>(h) && col >= 0 &&
                              col < static_cast<std::ptrdiff_t>(w);
          image[r * w + q] = inside ? plane[static_cast<std::size_t>(y) * w +
                                            static_cast<std::size_t>(col)]
                                    : T{0};
        }
    }
  }
}

template <class T>
void normalize_entries(xt::xarray<T>& x, Normalization n) {
  const T mean = static_cast<T>(n.mean), scale = static_cast<T>(1 / n.std);
  for (T& v : x) v = (v - mean) * scale;
}

}  // namespace

namespace {

// The shape an IDX header declares (checked: unsigned bytes, 1 to 4 axes, none empty, at most
// kMaxItems entries); the reader is then at the data.
std::vector<std::size_t> read_idx_header(Reader& in, const std::string& path) {
  std::uint8_t magic[4];
  if (in.read(magic, 4) != 4) bad(path, "too short for an IDX header");
  if (magic[0] != 0 || magic[1] != 0)
    bad(path, "not an IDX file (the magic number must start with two zero bytes)");
  if (magic[2] != 0x08)
    bad(path, "element type " + std::to_string(magic[2]) +
                  " is not supported (expected 8, unsigned bytes)");
  const std::size_t rank = magic[3];
  if (rank < 1 || rank > 4)
    bad(path, "declares " + std::to_string(rank) + " dimensions (expected 1 to 4)");
  std::vector<std::size_t> shape;
  std::size_t count = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    std::uint8_t b[4];
    if (in.read(b, 4) != 4) bad(path, "truncated header");
    const std::size_t n =
        std::size_t{b[0]} << 24 | std::size_t{b[1]} << 16 | std::size_t{b[2]} << 8 | b[3];
    if (n == 0) bad(path, "dimension " + std::to_string(d) + " is 0");
    shape.push_back(n);
    count *= n;
    if (count > kMaxItems) bad(path, "declares an absurd size " + shape_str(shape));
  }
  return shape;
}

// The data of a header's shape, and nothing after it.
std::vector<std::uint8_t> read_idx_data(Reader& in, const std::string& path,
                                        const std::vector<std::size_t>& shape) {
  std::size_t count = 1;
  for (std::size_t n : shape) count *= n;
  std::vector<std::uint8_t> data;
  // Grow with what is really there, so that a short file declaring a huge size allocates little.
  std::size_t have = 0;
  while (have < count) {
    const std::size_t chunk = std::min(count - have, std::size_t{1} << 22);
    data.resize(have + chunk);
    const std::size_t got = in.read(data.data() + have, chunk);
    have += got;
    if (got < chunk)
      bad(path, "truncated: shape " + shape_str(shape) + " needs " + std::to_string(count) +
                    " bytes of data, the file has " + std::to_string(have));
  }
  std::uint8_t extra;
  if (in.read(&extra, 1) != 0) bad(path, "longer than its shape " + shape_str(shape) + " says");
  return data;
}

}  // namespace

IdxFile read_idx(const std::string& path) {
  Reader in(path);
  IdxFile idx;
  idx.shape = read_idx_header(in, path);
  idx.data = read_idx_data(in, path, idx.shape);
  return idx;
}

TensorDataset::TensorDataset(Tensor inputs, Tensor labels)
    : inputs_(std::move(inputs)), labels_(std::move(labels)) {
  if (!inputs_.defined() || !labels_.defined())
    throw ValueError("TensorDataset: the inputs or the labels are undefined");
  if (inputs_.dim() < 1 || labels_.dim() < 1 || inputs_.size(0) != labels_.size(0))
    throw ShapeError("TensorDataset: inputs of shape " + shape_str(inputs_.shape()) +
                     " and labels of shape " + shape_str(labels_.shape()) +
                     "; expected (N, ...) and (N, ...), one label per example");
}

Example TensorDataset::get(std::size_t index) const {
  if (index >= size()) internal::index_out_of_range("TensorDataset", index, size());
  const auto i = static_cast<std::ptrdiff_t>(index);
  return {select(inputs_, 0, i).contiguous(), select(labels_, 0, i).contiguous()};
}

Batch TensorDataset::get_batch(std::span<const std::size_t> indices, const CollateOptions&) const {
  std::vector<std::int64_t> positions;
  positions.reserve(indices.size());
  for (std::size_t i : indices) {
    if (i >= size()) internal::index_out_of_range("TensorDataset", i, size());
    positions.push_back(static_cast<std::int64_t>(i));
  }
  return {index_select(inputs_, 0, positions), index_select(labels_, 0, positions), {}, {}};
}

TensorDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path) {
  // Both headers first: counts that disagree are refused before any data is read (a file
  // declaring gigabytes is never inflated to find out).
  Reader images_in(images_path), labels_in(labels_path);
  IdxFile images, labels;
  images.shape = read_idx_header(images_in, images_path);
  labels.shape = read_idx_header(labels_in, labels_path);
  if (images.shape.size() < 2)
    throw ValueError("load_idx_dataset: " + images_path + " has shape " + shape_str(images.shape) +
                     "; expected images (N, rows, columns)");
  if (labels.shape.size() != 1)
    throw ValueError("load_idx_dataset: " + labels_path + " has shape " + shape_str(labels.shape) +
                     "; expected labels (N)");
  const std::size_t n = images.shape[0];
  if (labels.shape[0] != n)
    throw ValueError("load_idx_dataset: " + std::to_string(n) + " images in " + images_path +
                     " but " + std::to_string(labels.shape[0]) + " labels in " + labels_path);
  labels.data = read_idx_data(labels_in, labels_path, labels.shape);
  images.data = read_idx_data(images_in, images_path, images.shape);
  // (N, H, W) images get their one channel. Built by appending (g++ 12 draws a false
  // -Warray-bounds from an insert, into xtensor's svector or std::vector).
  std::vector<std::size_t> dims;
  for (std::size_t d = 0; d < images.shape.size(); ++d) {
    dims.push_back(images.shape[d]);
    if (d == 0 && images.shape.size() == 3) dims.push_back(1);
  }
  xt::xarray<float> x = xt::xarray<float>::from_shape(dims);
  for (std::size_t i = 0; i < images.data.size(); ++i) x.data()[i] = images.data[i] / 255.0f;
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({n});
  std::copy(labels.data.begin(), labels.data.end(), y.begin());
  return TensorDataset(Tensor(std::move(x)), Tensor(std::move(y)));
}

Normalization pixel_statistics(const TensorDataset& data) {
  const auto& x = data.inputs().value<float>();
  double sum = 0, squares = 0;
  for (float v : x) {
    sum += v;
    squares += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(x.size());
  const double mean = sum / n;
  return {mean, std::sqrt(std::max(squares / n - mean * mean, 1e-12))};
}

void standardize(TensorDataset& data, Normalization norm) {
  if (!(norm.std > 0)) throw ValueError("standardize: the standard deviation must be > 0");
  const float mean = static_cast<float>(norm.mean), scale = static_cast<float>(1 / norm.std);
  for (float& v : data.inputs().mutable_value<float>()) v = (v - mean) * scale;
}

namespace internal {

std::uint64_t stream_batch_seed(std::uint64_t seed, std::size_t epoch, std::size_t batch) {
  return ((seed * 1000003 + epoch) * 1000033 + batch) ^ 0x2545f4914f6cdd1dull;
}

LoaderCore::LoaderCore(std::size_t dataset_size, const DataLoaderOptions& options)
    : n_(dataset_size), options_(options) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch_size must be > 0");
  const Augmentation& a = options.augment;
  if (!(a.normalize.std > 0) || !std::isfinite(a.normalize.std) || !std::isfinite(a.normalize.mean))
    throw ValueError("DataLoader: normalization needs a finite mean and a standard deviation > 0, "
                     "got mean " + number_str(a.normalize.mean) + " and std " +
                     number_str(a.normalize.std));
  if (options.num_replicas == 0 || options.rank >= options.num_replicas)
    throw ValueError("DataLoader: rank " + std::to_string(options.rank) + " of " +
                     std::to_string(options.num_replicas) +
                     " replicas (expected num_replicas >= 1 and rank < num_replicas)");
  if (!options_.sampler) {
    if (options.shuffle)
      options_.sampler = std::make_shared<RandomSampler>();
    else
      options_.sampler = std::make_shared<SequentialSampler>();
  }
  order_.resize(shard_size());
  std::iota(order_.begin(), order_.end(), 0);
}

std::size_t LoaderCore::shard_size() const {
  const std::size_t n = options_.sampler->count(n_), r = options_.num_replicas;
  return (n + r - 1) / r;
}

std::size_t LoaderCore::num_batches() const {
  const std::size_t n = shard_size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void LoaderCore::start_epoch() {
  Generator gen(options_.seed * 1000003 + epoch_);
  const std::vector<std::size_t> order = options_.sampler->indices(n_, gen);
  for (std::size_t i : order)
    if (i >= n_)
      throw IndexError("DataLoader: the sampler gave index " + std::to_string(i) +
                       " for a dataset of " + std::to_string(n_) + " examples");
  // This rank's shard: every num_replicas-th entry, the order's start repeated past its end.
  order_.resize(shard_size());
  for (std::size_t k = 0; k < order_.size() && !order.empty(); ++k)
    order_[k] = order[(options_.rank + k * options_.num_replicas) % order.size()];
  current_ = epoch_++;
}

std::span<const std::size_t> LoaderCore::indices(std::size_t b) const {
  const std::size_t start = b * options_.batch_size;
  const std::size_t stop = std::min(start + options_.batch_size, order_.size());
  if (b >= num_batches() || start >= stop)
    throw IndexError("DataLoader: batch " + std::to_string(b) + " is past the end (" +
                     std::to_string(num_batches()) + " batches)");
  return std::span<const std::size_t>(order_).subspan(start, stop - start);
}

// A stream of its own per (seed, epoch, batch), apart from the shuffle's, and per rank (the
// ranks' images of batch b are not flipped alike).
std::uint64_t LoaderCore::batch_seed(std::size_t b) const {
  return (options_.seed * 1000003 + current_) * 1000033 + b + 0x5bd1e995 +
         options_.rank * 0x9e3779b97f4a7c15ull;
}

void LoaderCore::augment(Batch& out, std::size_t b) const {
  const Augmentation& a = options_.augment;
  if (a.crop_padding > 0 || a.horizontal_flip) {
    if (out.data.dim() != 4)
      throw ShapeError(
          "DataLoader: random crops and flips need images (N, C, H, W), the batch "
          "is " +
          shape_str(out.data.shape()));
    Generator gen(batch_seed(b));
    if (out.data.dtype() == Dtype::float32)
      augment_images(out.data.mutable_value<float>(), a, gen);
    else
      augment_images(out.data.mutable_value<double>(), a, gen);
  }
  if (a.normalize.mean != 0 || a.normalize.std != 1) {
    if (out.data.dtype() == Dtype::float32)
      normalize_entries(out.data.mutable_value<float>(), a.normalize);
    else
      normalize_entries(out.data.mutable_value<double>(), a.normalize);
  }
}

}  // namespace internal

// ---- transforms of one example's image -----------------------------------------------------

namespace {
Example augmented(Example e, const Augmentation& a, double flip_p, const char* name) {
  if (e.data.dim() != 3)
    throw ShapeError(std::string(name) + ": needs an image (C, H, W), got " +
                     shape_str(e.data.shape()));
  Tensor image = unsqueeze(e.data, 0).contiguous().clone();
  if (image.dtype() == Dtype::float32)
    augment_images(image.mutable_value<float>(), a, example_generator(), flip_p);
  else if (image.dtype() == Dtype::float64)
    augment_images(image.mutable_value<double>(), a, example_generator(), flip_p);
  else
    throw DtypeError(std::string(name) + ": needs a float32 or float64 image, got " +
                     std::string(dtype_name(image.dtype())));
  e.data = squeeze(image, 0);
  return e;
}
}  // namespace

Transform random_crop(std::size_t padding) {
  return [padding](Example e) {
    return augmented(std::move(e), {.crop_padding = padding}, 0.5, "random_crop");
  };
}

Transform random_horizontal_flip(double p) {
  if (!(p >= 0 && p <= 1))
    throw ValueError("random_horizontal_flip: p must be in [0, 1], got " + number_str(p));
  return [p](Example e) {
    return augmented(std::move(e), {.horizontal_flip = true}, p, "random_horizontal_flip");
  };
}

Transform normalize(double mean, double std) {
  if (!(std > 0) || !std::isfinite(std) || !std::isfinite(mean))
    throw ValueError("normalize: needs a finite mean and a standard deviation > 0, got mean " +
                     number_str(mean) + " and std " + number_str(std));
  return [mean, std](Example e) {
    e.data = (e.data - mean) / std;
    return e;
  };
}

}  // namespace xgrad::nn
