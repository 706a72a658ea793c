// Every input kept under tests/fuzz/regressions/ (those that once found a bug) and the seed
// corpus, run through the fuzz targets in the ordinary build: none may crash.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "examples/walkthrough/fuzz/target.hpp"
#include "tests/fuzz/targets.hpp"

namespace fs = std::filesystem;

namespace {
// The inputs kept in `folder` (relative to the source root): its regressions/ and corpus/.
void run_all(const std::string& folder, void (*f)(const std::uint8_t*, std::size_t)) {
  std::size_t count = 0;
  for (const char* kind : {"regressions", "corpus"}) {
    const fs::path dir = fs::path(XGRAD_SOURCE_DIR) / folder / kind;
    if (!fs::exists(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      INFO(entry.path().string());
      f(bytes.data(), bytes.size());
      ++count;
    }
  }
  CHECK(count > 0);
}
}  // namespace

TEST_CASE("fuzz inputs: network specs") {
  run_all("examples/walkthrough/fuzz", walkthrough::fuzz::network_spec);
}
TEST_CASE("fuzz inputs: IDX files") { run_all("tests/fuzz/idx", xgrad::fuzz::idx); }
TEST_CASE("fuzz inputs: NPY files") { run_all("tests/fuzz/npy", xgrad::fuzz::npy); }
TEST_CASE("fuzz inputs: NPZ files") { run_all("tests/fuzz/npz", xgrad::fuzz::npz); }
