// The autoencoder program, run as a user runs it: briefly on the real Fashion-MNIST (its
// reconstructions must beat the mean image, its grid must show the test images it read), and on
// inputs it must refuse.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "nn/data.hpp"
#include "tests/examples/run.hpp"
#include "tests/files.hpp"
#include "tests/scratch.hpp"

namespace fs = std::filesystem;
using xgrad::testing::Run;

namespace {

const std::string kFashion = "/usr/share/datasets/fashion-mnist";

Run run(const std::string& args) { return xgrad::testing::run_program(AUTOENCODER, args); }

// The number after `key=` in the program's output.
double figure(const std::string& out, const std::string& key) {
  const std::size_t at = out.find(key + "=");
  REQUIRE(at != std::string::npos);
  return std::stod(out.substr(at + key.size() + 1));
}

}  // namespace

TEST_CASE("autoencoder: a brief run on Fashion-MNIST beats the mean image; the grid shows it" *
          doctest::skip(!fs::exists(kFashion + "/t10k-images-idx3-ubyte.gz"))) {
  const xgrad::testing::ScratchDir dir("autoencoder");
  const fs::path grid = dir / "grid.png";
  const Run r = run("--epochs 3 --limit 2000 --grid " + grid.string());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("2000 training and 2000 test images") != std::string::npos);
  CHECK(r.out.find("epoch  3/3") != std::string::npos);
  // 3 epochs of 2000 images: 0.044 against the mean image's 0.086 (2026-12-03, Intel Xeon).
  const double baseline = figure(r.out, "baseline_mse"), test = figure(r.out, "test_mse");
  CHECK(baseline > 0.05);
  CHECK(test < 0.75 * baseline);

  // 16 test images over their reconstructions: rows of 8 images of 28 x 28, padding 2.
  const xgrad::testing::Png png = xgrad::testing::read_png(grid);
  REQUIRE(png.width == 8 * 30 + 2);
  REQUIRE(png.height == 4 * 30 + 2);
  const xgrad::nn::TensorDataset images = xgrad::nn::load_idx_dataset(
      kFashion + "/t10k-images-idx3-ubyte.gz", kFashion + "/t10k-labels-idx1-ubyte.gz");
  const auto& pixels = images.inputs().value<float>();
  const auto at = [&](std::size_t y, std::size_t x, std::size_t ch) {
    return png.pixels[(y * png.width + x) * 3 + ch];
  };
  std::size_t original_mismatches = 0;
  double rebuilt_error = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    const std::size_t top = (i / 8) * 60 + 2, left = (i % 8) * 30 + 2;
    for (std::size_t y = 0; y < 28; ++y)
      for (std::size_t x = 0; x < 28; ++x) {
        const auto want = static_cast<long>(std::lround(pixels(i, 0, y, x) * 255));
        for (std::size_t ch = 0; ch < 3; ++ch)
          original_mismatches += at(top + y, left + x, ch) != want;
        // The reconstruction, on the row below: near the image, not equal to it.
        const double d = (at(top + 30 + y, left + x, 0) - static_cast<double>(want)) / 255;
        rebuilt_error += d * d;
      }
  }
  CHECK(original_mismatches == 0);
  const double rebuilt_mse = rebuilt_error / (16 * 28 * 28);
  CHECK(rebuilt_mse > 0);
  CHECK(rebuilt_mse < baseline);
}

TEST_CASE("autoencoder: bad flags and data exit with status 2 and say why") {
  const xgrad::testing::ScratchDir dir("autoencoder_bad");
  // 6 x 6 images cannot be halved twice.
  xgrad::testing::write_idx(dir / "train-images-idx3-ubyte.gz", {4, 6, 6},
                            std::vector<std::uint8_t>(4 * 36, 7));
  xgrad::testing::write_idx(dir / "train-labels-idx1-ubyte.gz", {4}, {0, 1, 0, 1});
  fs::copy_file(dir / "train-images-idx3-ubyte.gz", dir / "t10k-images-idx3-ubyte.gz");
  fs::copy_file(dir / "train-labels-idx1-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  const struct {
    std::string args, says;
  } cases[] = {
      {"--data " + dir.path().string() + " --epochs 1",
       "sides are multiples of 4 (two halvings), got training images [4, 1, 6, 6]"},
      {"--data /nonexistent", "no train-images-idx3-ubyte(.gz) in /nonexistent"},
      {"--grid grid.jpg", "'grid.jpg' must end in .png"},
      {"--limit -3", "must be a whole number >= 0, got -3"},
      {"--lr 0", "must be a number > 0, got 0"},
  };
  for (const auto& c : cases) {
    const Run r = run(c.args);
    INFO(c.args << "\n" << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find(c.says) != std::string::npos);
  }
}
