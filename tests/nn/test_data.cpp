#include <doctest/doctest.h>

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "nn/data.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace fs = std::filesystem;

namespace {

const fs::path& scratch() {
  static const testing::ScratchDir dir("test_data");
  return dir.path();
}

// An IDX file of unsigned bytes: magic, big-endian dimensions, data.
std::string idx_bytes(const std::vector<std::uint32_t>& shape,
                      const std::vector<std::uint8_t>& data) {
  std::string s = {0, 0, 8, static_cast<char>(shape.size())};
  for (std::uint32_t d : shape)
    for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((d >> shift) & 0xff);
  return s + std::string(data.begin(), data.end());
}

std::string write_plain(const std::string& name, const std::string& bytes) {
  const fs::path p = scratch() / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string write_gz(const std::string& name, const std::string& bytes) {
  const fs::path p = scratch() / name;
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
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

TEST_CASE("an IDX data set: images scaled to [0, 1], labels as class indices") {
  const std::string images = write_gz("img.gz", idx_bytes({5, 2, 3}, ramp(30)));
  const std::string labels = write_gz("lab.gz", idx_bytes({5}, {3, 1, 4, 1, 5}));
  TensorDataset data = load_idx_dataset(images, labels);
  CHECK(data.size() == 5);
  CHECK(data.inputs().shape() == Shape{5, 6});
  CHECK(data.inputs().value<float>()(1, 0) == doctest::Approx(ramp(30)[6] / 255.0));
  CHECK(data.labels() == Index{3, 1, 4, 1, 5});
  const Normalization n = pixel_statistics(data);
  standardize(data, n);
  const Normalization after = pixel_statistics(data);
  CHECK(after.mean == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(after.std == doctest::Approx(1.0).epsilon(1e-5));
  const std::string four = write_gz("lab4.gz", idx_bytes({4}, {1, 2, 3, 4}));
  CHECK_THROWS_WITH_AS(load_idx_dataset(images, four), doctest::Contains("5 images"), ValueError);
  CHECK_THROWS_AS(load_idx_dataset(labels, labels), ValueError);
}

TEST_CASE("DataLoader: every example once per epoch, seeded shuffles, last batch kept or dropped") {
  xt::xarray<float> x = xt::xarray<float>::from_shape({10, 2});
  Index y = Index::from_shape({10});
  for (std::size_t i = 0; i < 10; ++i) {
    x(i, 0) = static_cast<float>(i);
    x(i, 1) = static_cast<float>(-i);
    y(i) = static_cast<std::int64_t>(i);
  }
  const TensorDataset data(Tensor(x), y);
  DataLoader keep(data, {.batch_size = 4, .shuffle = true, .seed = 5});
  CHECK(keep.num_batches() == 3);
  std::vector<std::int64_t> epoch0, epoch1;
  for (const Batch& b : keep) {
    for (std::size_t i = 0; i < b.labels.size(); ++i) {
      CHECK(b.inputs.value<float>()(i, 0) ==
            static_cast<float>(b.labels(i)));  // rows stay with labels
      epoch0.push_back(b.labels(i));
    }
  }
  for (const Batch& b : keep) epoch1.insert(epoch1.end(), b.labels.begin(), b.labels.end());
  CHECK(std::set<std::int64_t>(epoch0.begin(), epoch0.end()).size() == 10);
  CHECK(epoch0.size() == 10);
  CHECK(epoch0 != epoch1);  // a new order each epoch
  DataLoader again(data, {.batch_size = 4, .shuffle = true, .seed = 5});
  again.set_epoch(1);
  std::vector<std::int64_t> resumed;
  for (const Batch& b : again) resumed.insert(resumed.end(), b.labels.begin(), b.labels.end());
  CHECK(resumed == epoch1);  // the order depends on (seed, epoch) only

  DataLoader drop(data, {.batch_size = 4, .shuffle = false, .drop_last = true});
  CHECK(drop.num_batches() == 2);
  std::size_t count = 0;
  for (const Batch& b : drop) count += b.labels.size();
  CHECK(count == 8);
  DataLoader ordered(data, {.batch_size = 3, .shuffle = false});
  auto it = ordered.begin();
  CHECK((*it).labels == Index{0, 1, 2});
  CHECK(ordered.batch(3).labels == Index{9});
  CHECK_THROWS_AS(DataLoader(data, {.batch_size = 0}), ValueError);
}

TEST_CASE("DataLoader keeps its dataset alive: a temporary dataset is safe (run under ASan)") {
  Generator gen(3);
  const Tensor x = randn({10, 2}, {}, gen);
  Index y = Index::from_shape({10});
  for (std::size_t i = 0; i < 10; ++i) y(i) = static_cast<std::int64_t>(i % 3);
  DataLoader loader(TensorDataset(x, y), {.batch_size = 4, .shuffle = true, .seed = 1});
  std::size_t rows = 0;
  for (const Batch& batch : loader) rows += batch.labels.size();  // reads the dataset it owns
  CHECK(rows == 10);
  auto shared = std::make_shared<const TensorDataset>(x, y);
  DataLoader a(shared, {.batch_size = 5}), b(shared, {.batch_size = 2, .shuffle = false});
  shared.reset();  // both loaders still hold it
  CHECK(a.num_batches() == 2);
  CHECK(b.batch(4).labels(1) == 0);  // row 9: label 9 % 3
  CHECK_THROWS_AS(DataLoader(std::shared_ptr<const TensorDataset>(), {}), ValueError);
}
