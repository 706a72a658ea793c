#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "nn/data.hpp"
#include "tests/files.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace fs = std::filesystem;
using testing::idx_bytes;

namespace {
// Appends an int64 tensor's values to `out`.
void append(std::vector<std::int64_t>& out, const Tensor& labels) {
  const std::vector<std::int64_t> values = testing::ints(labels);
  out.insert(out.end(), values.begin(), values.end());
}


const fs::path& scratch() {
  static const testing::ScratchDir dir("test_data");
  return dir.path();
}

std::string write_plain(const std::string& name, const std::string& bytes) {
  const fs::path p = scratch() / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string write_gz(const std::string& name, const std::string& bytes) {
  const fs::path p = scratch() / name;
  testing::write_gz(p, bytes);
  return p.string();
}

std::vector<std::uint8_t> ramp(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 % 256);
  return v;
}

}  // namespace

TEST_CASE("IDX files are read gzip-compressed or plain") {
  const std::string bytes = idx_bytes({3, 2, 2}, ramp(12));
  for (const std::string& path : {write_plain("a.idx", bytes), write_gz("a.idx.gz", bytes)}) {
    const IdxFile f = read_idx(path);
    CHECK(f.shape == std::vector<std::size_t>{3, 2, 2});
    CHECK(f.data == ramp(12));
  }
}

TEST_CASE("truncated, corrupt and foreign IDX files give clear errors") {
  const std::string good = idx_bytes({4, 3}, ramp(12));
  CHECK_THROWS_WITH_AS(
      read_idx(write_plain("t.idx", good.substr(0, good.size() - 2))),
      doctest::Contains("truncated: shape [4, 3] needs 12 bytes of data, the file has 10"),
      ValueError);
  CHECK_THROWS_WITH_AS(read_idx(write_gz("t.idx.gz", good.substr(0, good.size() - 2))),
                       doctest::Contains("truncated"), ValueError);
  CHECK_THROWS_WITH_AS(read_idx(write_plain("long.idx", good + "x")), doctest::Contains("longer"),
                       ValueError);
  CHECK_THROWS_WITH_AS(read_idx(write_plain("magic.idx", "PK" + good.substr(2))),
                       doctest::Contains("not an IDX file"), ValueError);
  std::string floats = good;
  floats[2] = 0x0d;
  CHECK_THROWS_WITH_AS(read_idx(write_plain("f.idx", floats)), doctest::Contains("element type 13"),
                       ValueError);
  CHECK_THROWS_WITH_AS(
      read_idx(write_plain("huge.idx", idx_bytes({60000, 60000, 60000}, ramp(10)))),
      doctest::Contains("absurd"), ValueError);
  // A short file that declares 4 GB of data fails after reading what is there, without
  // allocating what it declares.
  CHECK_THROWS_WITH_AS(read_idx(write_gz("big.idx.gz", idx_bytes({65536, 65535}, ramp(100)))),
                       doctest::Contains("truncated"), ValueError);
  std::string gz = [&] {
    const std::string p = write_gz("c.idx.gz", good);
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }();
  for (std::size_t i = 12; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  CHECK_THROWS_AS(read_idx(write_plain("corrupt.idx.gz", gz)), ValueError);
  CHECK_THROWS_WITH_AS(read_idx((scratch() / "none.idx").string()),
                       doctest::Contains("cannot open"), ValueError);
  CHECK_THROWS_AS(read_idx(write_plain("empty.idx", "")), ValueError);
}

TEST_CASE("an IDX .gz file followed by bytes that are not gzip data is refused") {
  const std::string path = write_gz("garbage.gz", idx_bytes({3}, {1, 2, 3}));
  CHECK(read_idx(path).data.size() == 3);
  std::ofstream(path, std::ios::binary | std::ios::app) << "trailing garbage";
  CHECK_THROWS_WITH_AS(read_idx(path), doctest::Contains("follow the gzip stream"), ValueError);
}

TEST_CASE("an IDX data set: images scaled to [0, 1] with one channel, labels as class indices") {
  const std::string images = write_gz("img.gz", idx_bytes({5, 2, 3}, ramp(30)));
  const std::string labels = write_gz("lab.gz", idx_bytes({5}, {3, 1, 4, 1, 5}));
  TensorDataset data = load_idx_dataset(images, labels);
  CHECK(data.size() == 5);
  CHECK(data.inputs().shape() == Shape{5, 1, 2, 3});
  CHECK(data.inputs().value<float>()(1, 0, 1, 2) == doctest::Approx(ramp(30)[11] / 255.0));
  // rows of features stay rows
  const std::string rows = write_gz("rows.gz", idx_bytes({5, 6}, ramp(30)));
  CHECK(load_idx_dataset(rows, labels).inputs().shape() == Shape{5, 6});
  CHECK(data.labels().dtype() == kInt64);
  CHECK(testing::ints(data.labels()) == testing::I64s{3, 1, 4, 1, 5});
  const Normalization n = pixel_statistics(data);
  standardize(data, n);
  const Normalization after = pixel_statistics(data);
  CHECK(after.mean == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(after.std == doctest::Approx(1.0).epsilon(1e-5));
  const std::string four = write_gz("lab4.gz", idx_bytes({4}, {1, 2, 3, 4}));
  CHECK_THROWS_WITH_AS(load_idx_dataset(images, four), doctest::Contains("5 images"), ValueError);
  CHECK_THROWS_AS(load_idx_dataset(labels, labels), ValueError);
}

TEST_CASE("an IDX data set: counts are checked before any data is read; only regular files") {
  // Images declaring 65535 x 256 x 256 (4.29 GB) with a few bytes of data, and 10 labels: the
  // counts disagree, said before the images' data is inflated (it would be found truncated).
  const std::string huge = write_gz("huge.gz", idx_bytes({65535, 256, 256}, ramp(1000)));
  const std::string labels = write_gz("ten.gz", idx_bytes({10}, ramp(10)));
  CHECK_THROWS_WITH_AS(load_idx_dataset(huge, labels),
                       doctest::Contains(("65535 images in " + huge + " but 10 labels").c_str()),
                       ValueError);
  CHECK_THROWS_WITH_AS(read_idx("/dev/zero"), doctest::Contains("not a regular file"), ValueError);
  CHECK_THROWS_WITH_AS(load_idx_dataset("/dev/zero", labels),
                       doctest::Contains("not a regular file"), ValueError);
}

TEST_CASE("DataLoader: every example once per epoch, seeded shuffles, last batch kept or dropped") {
  xt::xarray<float> x = xt::xarray<float>::from_shape({10, 2});
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({10});
  for (std::size_t i = 0; i < 10; ++i) {
    x(i, 0) = static_cast<float>(i);
    x(i, 1) = static_cast<float>(-i);
    y(i) = static_cast<std::int64_t>(i);
  }
  const TensorDataset data{Tensor(x), Tensor(y)};
  DataLoader keep(data, {.batch_size = 4, .shuffle = true, .seed = 5});
  CHECK(keep.num_batches() == 3);
  std::vector<std::int64_t> epoch0, epoch1;
  for (const Batch& b : keep) {
    for (std::size_t i = 0; i < b.target.numel(); ++i) {
      CHECK(b.data.value<float>()(i, 0) ==
            static_cast<float>(b.target.value<std::int64_t>()(i)));  // rows stay with labels
      epoch0.push_back(b.target.value<std::int64_t>()(i));
    }
  }
  for (const Batch& b : keep) append(epoch1, b.target);
  CHECK(std::set<std::int64_t>(epoch0.begin(), epoch0.end()).size() == 10);
  CHECK(epoch0.size() == 10);
  CHECK(epoch0 != epoch1);  // a new order each epoch
  DataLoader again(data, {.batch_size = 4, .shuffle = true, .seed = 5});
  again.set_epoch(1);
  std::vector<std::int64_t> resumed;
  for (const Batch& b : again) append(resumed, b.target);
  CHECK(resumed == epoch1);  // the order depends on (seed, epoch) only

  DataLoader drop(data, {.batch_size = 4, .shuffle = false, .drop_last = true});
  CHECK(drop.num_batches() == 2);
  std::size_t count = 0;
  for (const Batch& b : drop) count += b.target.numel();
  CHECK(count == 8);
  DataLoader ordered(data, {.batch_size = 3, .shuffle = false});
  auto it = ordered.begin();
  CHECK(testing::ints((*it).target) == testing::I64s{0, 1, 2});
  CHECK(testing::ints(ordered.batch(3).target) == testing::I64s{9});
  CHECK_THROWS_AS(DataLoader(data, {.batch_size = 0}), ValueError);
}

TEST_CASE(
    "DataLoader shards: equal sizes, together the epoch; the ranks' batches make the global one") {
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({11});
  xt::xarray<float> x = xt::xarray<float>::from_shape({11, 1});
  for (std::size_t i = 0; i < 11; ++i) {
    x(i, 0) = static_cast<float>(i);
    y(i) = static_cast<std::int64_t>(i);
  }
  const TensorDataset data{Tensor(x), Tensor(y)};
  DataLoader whole(data, {.batch_size = 4, .shuffle = true, .seed = 3});
  DataLoader rank0(data,
                   {.batch_size = 2, .shuffle = true, .seed = 3, .num_replicas = 2, .rank = 0});
  DataLoader rank1(data,
                   {.batch_size = 2, .shuffle = true, .seed = 3, .num_replicas = 2, .rank = 1});
  CHECK(rank0.shard_size() == 6);  // 11 padded to 12
  CHECK(rank1.shard_size() == 6);
  CHECK(rank0.num_batches() == 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::int64_t> global, a, b;
    for (const Batch& batch : whole) append(global, batch.target);
    for (const Batch& batch : rank0) append(a, batch.target);
    for (const Batch& batch : rank1) append(b, batch.target);
    // Entry k of rank r is entry r + 2k of the epoch's order; the 12th repeats the first.
    for (std::size_t k = 0; k < 6; ++k) {
      CHECK(a[k] == global[2 * k]);
      CHECK(b[k] == (2 * k + 1 < 11 ? global[2 * k + 1] : global[0]));
    }
  }
  CHECK_THROWS_WITH_AS(DataLoader(data, {.num_replicas = 2, .rank = 2}),
                       doctest::Contains("rank 2 of 2 replicas"), ValueError);
}

TEST_CASE("DataLoader keeps its dataset alive: a temporary dataset is safe (run under ASan)") {
  Generator gen(3);
  const Tensor x = randn({10, 2}, {}, gen);
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({10});
  for (std::size_t i = 0; i < 10; ++i) y(i) = static_cast<std::int64_t>(i % 3);
  DataLoader loader(TensorDataset(x, Tensor(y)), {.batch_size = 4, .shuffle = true, .seed = 1});
  std::size_t rows = 0;
  for (const Batch& batch : loader) rows += batch.target.numel();  // reads the dataset it owns
  CHECK(rows == 10);
  auto shared = std::make_shared<const TensorDataset>(x, Tensor(y));
  DataLoader a(shared, {.batch_size = 5}), b(shared, {.batch_size = 2, .shuffle = false});
  shared.reset();  // both loaders still hold it
  CHECK(a.num_batches() == 2);
  CHECK(testing::ints(b.batch(4).target)[1] == 0);  // row 9: label 9 % 3
  CHECK_THROWS_AS(DataLoader(std::shared_ptr<const TensorDataset>(), {}), ValueError);
}

namespace {
// Images (n, 1, 3, 4) of entries 100 i + 10 r + c, labels i.
TensorDataset ramp_images(std::size_t n) {
  xt::xarray<double> x = xt::xarray<double>::from_shape({n, 1, 3, 4});
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    y(i) = static_cast<std::int64_t>(i);
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < 4; ++c) x(i, 0, r, c) = double(100 * i + 10 * r + c);
  }
  return TensorDataset(Tensor(x), Tensor(y));
}
}  // namespace

TEST_CASE("DataLoader augmentation: crops are shifts with zero padding, flips mirror, seeded") {
  const TensorDataset data = ramp_images(64);
  DataLoader loader(data, {.batch_size = 16,
                           .shuffle = true,
                           .seed = 3,
                           .augment = {.crop_padding = 1, .horizontal_flip = true}});
  std::map<std::string, int> seen;  // which of the 18 (shift, flip) outcomes occurred
  std::vector<Tensor> epoch0;
  for (const Batch& b : loader) {
    epoch0.push_back(b.data);
    CHECK(b.data.shape() == Shape{16, 1, 3, 4});
    const auto& x = b.data.value<double>();
    for (std::size_t i = 0; i < 16; ++i) {
      const double base = 100.0 * double(b.target.value<std::int64_t>()(i));
      // Find the (dy, dx, flip) that explains the image: every entry is the source's shifted
      // entry, or 0 where that falls outside.
      int explained = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
          for (int flip = 0; flip < 2; ++flip) {
            bool all = true;
            for (int r = 0; r < 3; ++r)
              for (int c = 0; c < 4; ++c) {
                const int sr = r + dy, sc = (flip ? 3 - c : c) + dx;
                const bool inside = sr >= 0 && sr < 3 && sc >= 0 && sc < 4;
                const double want = inside ? base + 10 * sr + sc : 0.0;
                all = all && x(i, 0, std::size_t(r), std::size_t(c)) == want;
              }
            if (all) {
              ++explained;
              ++seen[std::to_string(dy) + std::to_string(dx) + std::to_string(flip)];
            }
          }
      CHECK(explained == 1);
    }
  }
  CHECK(seen.size() >= 14);  // 64 draws of 18 equally likely outcomes: all but a few occur
  // The same (seed, epoch) gives the same batches, crops and flips included: resuming is exact.
  DataLoader again(data, {.batch_size = 16,
                          .shuffle = true,
                          .seed = 3,
                          .augment = {.crop_padding = 1, .horizontal_flip = true}});
  std::size_t b = 0;
  for (const Batch& batch : again) CHECK(testing::flat(batch.data) == testing::flat(epoch0[b++]));
  loader.begin();  // epoch 1: other crops
  CHECK(testing::flat(loader.batch(0).data) != testing::flat(epoch0[0]));
}

TEST_CASE("DataLoader normalization comes after the crop, so the padding is normalized too") {
  const TensorDataset data = ramp_images(4);
  DataLoader plain(data, {.batch_size = 4, .shuffle = false, .augment = {.normalize = {100, 4}}});
  CHECK(plain.batch(0).data.value<double>()(2, 0, 1, 3) == (213.0 - 100) / 4);
  DataLoader cropped(
      data,
      {.batch_size = 4, .shuffle = false, .augment = {.crop_padding = 3, .normalize = {100, 4}}});
  const Batch batch = cropped.batch(0);  // kept: x refers into it
  const auto& x = batch.data.value<double>();
  std::size_t padding = 0;
  for (double v : x) padding += v == -25.0;  // (0 - 100) / 4
  CHECK(padding > 0);
  // crops and flips need images; normalization needs std > 0
  const TensorDataset rows(Tensor(xt::xarray<double>{{1, 2}, {3, 4}}), testing::i64({0, 1}));
  CHECK_THROWS_WITH_AS(DataLoader(rows, {.augment = {.horizontal_flip = true}}),
                       doctest::Contains("(N, C, H, W)"), ShapeError);
  CHECK_THROWS_WITH_AS(DataLoader(rows, {.augment = {.normalize = {0, 0}}}),
                       doctest::Contains("standard deviation > 0"), ValueError);
  DataLoader rows_normalized(rows,
                             {.batch_size = 2, .shuffle = false, .augment = {.normalize = {1, 2}}});
  CHECK(rows_normalized.batch(0).data.value<double>()(1, 1) == 1.5);
}
