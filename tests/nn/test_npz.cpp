// One-file state dicts (.npz, NumPy's zip of .npy entries): nn/npz.cpp. The PyTorch model's
// weights, inputs and outputs under tests/data/torch_npz/ were written by its make.py (by hand,
// with python3-torch), so that loading them here needs no Python.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/ops.hpp"
#include "nn/layers.hpp"
#include "nn/sequence.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using testing::flat;

namespace {
const std::string kData = std::string(XGRAD_SOURCE_DIR) + "/tests/data/torch_npz/";

// The model of make.py: Sequential(Linear(5, 8), ReLU, LayerNorm(8), Linear(8, 3)).
std::shared_ptr<nn::Sequential> torch_model() {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Linear>(5, 8));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({8})));
  net->push_back(std::make_shared<nn::Linear>(8, 3));
  return net;
}

Tensor entry(const nn::StateDict& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return t;
  FAIL("no entry " << name);
  return Tensor();
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
}  // namespace

TEST_CASE("a PyTorch model's weights from np.savez and np.savez_compressed give its outputs") {
  const nn::StateDict io = nn::load_npz(kData + "io.npz");
  const Tensor x = entry(io, "x"), y = entry(io, "y");
  for (const char* file : {"weights.npz", "weights_compressed.npz"}) {
    CAPTURE(file);
    auto net = torch_model();
    xgrad::load(*net, kData + file);
    const std::vector<double> got = flat((*net)(x).to(kFloat64)), want = flat(y.to(kFloat64));
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
  }
}

TEST_CASE("np.savez's dtypes come back as they are, a Fortran-order array in C order") {
  const nn::StateDict d = nn::load_npz(kData + "dtypes.npz");
  CHECK(entry(d, "f32").dtype() == kFloat32);
  CHECK(flat(entry(d, "f32").to(kFloat64)) == std::vector<double>{1.5, -2.0});
  CHECK(flat(entry(d, "f64")) == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(entry(d, "f64").shape() == Shape{2, 3});
  CHECK(entry(d, "i64").dtype() == kInt64);
  CHECK(entry(d, "i64").index({0}).item<std::int64_t>() == -(std::int64_t{1} << 40));
  CHECK(entry(d, "i32").dtype() == kInt32);
  CHECK(entry(d, "u8").dtype() == kUInt8);
  CHECK(entry(d, "u8").index({1}).item<int>() == 255);
  CHECK(entry(d, "b").dtype() == kBool);
  CHECK(flat(entry(d, "b").to(kFloat64)) == std::vector<double>{1, 0, 1});
}

TEST_CASE("save then load: the same tensors, every dtype; a model through xgrad::save/load") {
  const testing::ScratchDir dir("npz");
  const nn::StateDict state = {
      {"w", tensor({{1.5, -2.0}, {0.25, 8.0}}, {.dtype = kFloat64})},
      {"ids", tensor({3, -1, 7}, {.dtype = kInt64})},
      {"mask", tensor({1, 0}, {.dtype = kBool})},
      {"t", transpose(tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}))},  // a view: saved as its values
  };
  nn::save_npz(state, (dir / "s.npz").string());
  CHECK_FALSE(std::filesystem::exists(dir / "s.npz.tmp"));
  const nn::StateDict back = nn::load_npz((dir / "s.npz").string());
  REQUIRE(back.size() == state.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    CHECK(back[i].first == state[i].first);
    CHECK(back[i].second.dtype() == state[i].second.dtype());
    CHECK(back[i].second.shape() == state[i].second.shape());
    CHECK(flat(back[i].second.to(kFloat64)) == flat(state[i].second.to(kFloat64)));
  }
  auto a = torch_model(), b = torch_model();
  xgrad::save(*a, (dir / "model.npz").string());
  xgrad::load(*b, (dir / "model.npz").string());
  for (std::size_t i = 0; i < a->state_dict().size(); ++i)
    CHECK(flat(a->state_dict()[i].second.to(kFloat64)) ==
          flat(b->state_dict()[i].second.to(kFloat64)));
  // Another model's file: refused, naming the entries, and nothing changed.
  auto other = std::make_shared<nn::Linear>(5, 8);
  const std::vector<double> before = flat(other->weight.to(kFloat64));
  CHECK_THROWS_AS(xgrad::load(*other, (dir / "model.npz").string()), ValueError);
  CHECK(flat(other->weight.to(kFloat64)) == before);
  CHECK_THROWS_WITH_AS(nn::save_npz({{"a", ones({1})}, {"a", ones({1})}}, (dir / "x.npz").string()),
                       doctest::Contains("the name 'a' is given twice"), ValueError);
}

TEST_CASE("load_npz refuses damaged, foreign and lying files, naming the file and the entry") {
  const testing::ScratchDir dir("npz_bad");
  nn::save_npz({{"w", ones({64}, {.dtype = kFloat64})}}, (dir / "good.npz").string());
  const std::string good = read_bytes(dir / "good.npz");

  // One byte of the tensor's data changed: the entry's CRC-32 no longer matches.
  std::string flipped = good;
  flipped[flipped.find("\x93NUMPY") + 200] ^= 0x01;
  write_bytes(dir / "flipped.npz", flipped);
  CHECK_THROWS_WITH_AS(nn::load_npz((dir / "flipped.npz").string()),
                       doctest::Contains("entry 'w.npy' is damaged"), ValueError);

  write_bytes(dir / "short.npz", good.substr(0, good.size() / 2));
  CHECK_THROWS_WITH_AS(nn::load_npz((dir / "short.npz").string()),
                       doctest::Contains("not a readable zip archive"), ValueError);

  // The central directory claims 2^31 bytes for the entry's 600.
  std::string lying = good;
  const std::size_t central = lying.find("PK\x01\x02");
  REQUIRE(central != std::string::npos);
  lying.replace(central + 24, 4, std::string("\x00\x00\x00\x80", 4));
  write_bytes(dir / "lying.npz", lying);
  CHECK_THROWS_WITH_AS(nn::load_npz((dir / "lying.npz").string()), doctest::Contains("load_npz"),
                       ValueError);

  nn::save_npz({{"w", ones({2})}}, (dir / "renamed.npz").string());
  std::string renamed = read_bytes(dir / "renamed.npz");
  for (std::size_t at = renamed.find("w.npy"); at != std::string::npos;
       at = renamed.find("w.npy", at + 1))
    renamed.replace(at, 5, "w.txt");
  write_bytes(dir / "renamed.npz", renamed);
  CHECK_THROWS_WITH_AS(nn::load_npz((dir / "renamed.npz").string()),
                       doctest::Contains("entry 'w.txt' is not an .npy file"), ValueError);

  CHECK_THROWS_WITH_AS(nn::load_npz((dir / "missing.npz").string()),
                       doctest::Contains("cannot open the file"), ValueError);
  CHECK_THROWS_WITH_AS(nn::load_npz(dir.path().string()), doctest::Contains("not a regular file"),
                       ValueError);
}
