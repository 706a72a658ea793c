// The data pipeline on datasets of any kind: custom map-style datasets, sequences padded by the
// default collate, subsets, concatenations, random splits, transforms, samplers, and workers that
// give the same batches as none.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;
using namespace xgrad::nn;

namespace {

// Example i: a sequence of 1 + (i * 7) % 5 steps of 2 features (step t: {i, t}), class i % 3.
class Sequences : public Dataset<> {
 public:
  explicit Sequences(std::size_t n, std::size_t broken = SIZE_MAX) : n_(n), broken_(broken) {}
  std::size_t size() const override { return n_; }
  static std::size_t length(std::size_t i) { return 1 + (i * 7) % 5; }
  Example get(std::size_t i) const override {
    if (i == broken_) throw ValueError("Sequences: example " + std::to_string(i) + " is broken");
    std::vector<double> steps;
    for (std::size_t t = 0; t < length(i); ++t) {
      steps.push_back(static_cast<double>(i));
      steps.push_back(static_cast<double>(t));
    }
    return {from_vector(steps, {length(i), 2}, {.dtype = kFloat64}),
            from_vector(std::vector<std::int64_t>{static_cast<std::int64_t>(i % 3)}, {})};
  }

 private:
  std::size_t n_, broken_;
};

// Every value of every batch of one epoch, in order.
std::vector<std::vector<double>> epoch_values(DataLoader<Sequences>& loader) {
  std::vector<std::vector<double>> out;
  for (const Batch& b : loader) {
    out.push_back(testing::flat(b.data));
    out.push_back(testing::flat(b.target.to(kFloat64)));
  }
  return out;
}

}  // namespace

TEST_CASE("a custom dataset of sequences: batches padded to the longest, with lengths and mask") {
  auto data = std::make_shared<Sequences>(10);
  DataLoader loader(data,
                    {.batch_size = 4, .shuffle = true, .seed = 3, .collate = {.sequences = true}});
  CHECK(loader.num_batches() == 3);
  std::multiset<std::int64_t> seen;
  for (const Batch& b : loader) {
    const std::size_t rows = b.data.size(0);
    REQUIRE(b.lengths.defined());
    const std::vector<std::int64_t> lengths = testing::ints(b.lengths);
    const std::size_t longest =
        static_cast<std::size_t>(*std::max_element(lengths.begin(), lengths.end()));
    CHECK(b.data.shape() == Shape{rows, longest, 2});
    CHECK(b.mask.shape() == Shape{rows, longest});
    CHECK(b.target.shape() == Shape{rows});
    const auto& x = b.data.value<double>();
    const auto& mask = b.mask.value<bool>();
    for (std::size_t r = 0; r < rows; ++r) {
      const auto i = static_cast<std::size_t>(x(r, 0, 0));
      seen.insert(static_cast<std::int64_t>(i));
      CHECK(static_cast<std::size_t>(lengths[r]) == Sequences::length(i));
      CHECK(testing::ints(b.target)[r] == static_cast<std::int64_t>(i % 3));
      for (std::size_t t = 0; t < longest; ++t) {
        const bool real = t < Sequences::length(i);
        CHECK(mask(r, t) == real);
        CHECK(x(r, t, 1) == (real ? static_cast<double>(t) : 0.0));  // padded with zeros
      }
    }
  }
  CHECK(seen == std::multiset<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("collate: one shape is stacked; sequence targets are padded with -100; clear errors") {
  const Batch same = collate({{testing::f64({1.0, 2.0}), testing::f64({0.5})},
                              {testing::f64({3.0, 4.0}), testing::f64({1.5})}});
  CHECK(same.data.shape() == Shape{2, 2});
  CHECK(same.target.shape() == Shape{2, 1});  // float regression targets
  CHECK_FALSE(same.lengths.defined());
  CHECK_FALSE(same.mask.defined());
  // A language model's targets: one class per step, padded where cross-entropy ignores them.
  const Batch lm = collate(
      {{testing::i64({1, 2, 3}), testing::i64({2, 3, 4})}, {testing::i64({5}), testing::i64({6})}});
  CHECK(testing::ints(lm.data) == testing::I64s{1, 2, 3, 5, 0, 0});
  CHECK(testing::ints(lm.target) == testing::I64s{2, 3, 4, 6, -100, -100});
  CHECK(testing::ints(lm.lengths) == testing::I64s{3, 1});
  const Batch custom =
      collate({{testing::i64({1, 2}), testing::i64({2})}, {testing::i64({5}), testing::i64({6})}},
              {.padding_value = 9});
  CHECK(testing::ints(custom.data) == testing::I64s{1, 2, 5, 9});
  // Sequences that happen to have one length still get lengths and mask when they are sequences.
  const Batch even = collate(
      {{testing::i64({1, 2}), testing::i64({0})}, {testing::i64({3, 4}), testing::i64({1})}},
      {.sequences = true});
  CHECK(testing::ints(even.lengths) == testing::I64s{2, 2});
  CHECK(even.mask.shape() == Shape{2, 2});
  CHECK_THROWS_WITH_AS(collate({{testing::f64({{1.0, 2.0}}), testing::i64({0})},
                                {testing::f64({{1.0, 2.0, 3.0}}), testing::i64({0})}}),
                       doctest::Contains("example 1's data has shape [1, 3]"), ShapeError);
  CHECK_THROWS_WITH_AS(collate({{testing::f64({1.0}), testing::i64({0})},
                                {testing::f64({1.0}), testing::f64({0.0})}}),
                       doctest::Contains("example 1's target is float64"), DtypeError);
  CHECK_THROWS_AS(collate({}), ValueError);
}

TEST_CASE("Subset, ConcatDataset and random_split: seeded, disjoint, complete") {
  auto data = std::make_shared<Sequences>(10);
  const auto parts = random_split(data, {0.7, 0.3}, 4);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0]->size() == 7);
  CHECK(parts[1]->size() == 3);
  std::set<std::size_t> all(parts[0]->indices().begin(), parts[0]->indices().end());
  all.insert(parts[1]->indices().begin(), parts[1]->indices().end());
  CHECK(all.size() == 10);
  CHECK(random_split(data, {0.7, 0.3}, 4)[0]->indices() == parts[0]->indices());
  CHECK(random_split(data, {0.7, 0.3}, 5)[0]->indices() != parts[0]->indices());
  CHECK(random_split(data, {3, 3, 4}, 1)[2]->size() == 4);
  // Fractions that do not divide evenly: the remainder goes one by one to the first parts.
  const auto thirds = random_split(data, {1.0 / 3, 1.0 / 3, 1.0 / 3}, 1);
  CHECK(thirds[0]->size() == 4);
  CHECK(thirds[2]->size() == 3);
  CHECK_THROWS_WITH_AS(random_split(data, {3, 3}, 1), doctest::Contains("sum to 6"), ValueError);
  // A subset reads its base at its indices.
  const Example e = parts[1]->get(2);
  CHECK(e.data.value<double>()(0, 0) == static_cast<double>(parts[1]->indices()[2]));
  CHECK_THROWS_AS(parts[1]->get(3), IndexError);
  CHECK_THROWS_AS(Subset<>(data, {10}), IndexError);
  // Two datasets one after the other.
  const ConcatDataset<> both({parts[1], data});
  CHECK(both.size() == 13);
  CHECK(both.get(3).data.value<double>()(0, 0) == 0.0);  // data's example 0
  CHECK_THROWS_AS(both.get(13), IndexError);
}

TEST_CASE("transforms compose, and draw from the loader's seeded example generator") {
  xt::xarray<float> images = xt::zeros<float>({8, 1, 2, 3});
  for (std::size_t i = 0; i < 8; ++i) images(i, 0, 0, 0) = static_cast<float>(i + 1);
  auto data = std::make_shared<TensorDataset>(Tensor(images),
                                              from_vector(std::vector<std::int64_t>(8, 0), {8}));
  const auto flipped = map(data, compose({random_horizontal_flip(1.0), normalize(1.0, 2.0)}));
  const Example e = flipped->get(3);
  CHECK(e.data.value<float>()(0, 0, 2) == doctest::Approx((4.0 - 1) / 2));  // mirrored, then
  CHECK(e.data.value<float>()(0, 0, 0) == doctest::Approx(-0.5));           // normalized
  // A coin flip per image: seeded by (seed, epoch, batch), so two loaders agree.
  const auto coin = map(data, random_horizontal_flip(0.5));
  DataLoader a(coin, {.batch_size = 4, .seed = 7}), b(coin, {.batch_size = 4, .seed = 7});
  std::vector<double> first, second;
  for (const Batch& batch : a)
    for (float v : batch.data.value<float>()) first.push_back(v);
  for (const Batch& batch : b)
    for (float v : batch.data.value<float>()) second.push_back(v);
  CHECK(first == second);
  std::size_t mirrored = 0;  // the image's 1 + i went to the last column
  for (std::size_t k = 0; k < first.size(); k += 6) mirrored += first[k + 2] != 0;
  CHECK(mirrored > 0);
  CHECK(mirrored < 8);
  CHECK_THROWS_AS(random_horizontal_flip(1.5), ValueError);
  CHECK_THROWS_AS(normalize(0, 0), ValueError);
  CHECK_THROWS_WITH_AS(random_crop(1)(Example{testing::f64({1.0}), {}}),
                       doctest::Contains("random_crop: needs an image (C, H, W)"), ShapeError);
}

TEST_CASE("workers make the same batches as none, and the same trained weights") {
  auto data = std::make_shared<Sequences>(23);
  std::vector<std::vector<std::vector<double>>> runs;
  for (std::size_t workers : {0, 1, 2}) {
    DataLoader loader(data, {.batch_size = 4, .shuffle = true, .seed = 11, .num_workers = workers});
    std::vector<std::vector<double>> two_epochs = epoch_values(loader);
    for (auto& v : epoch_values(loader)) two_epochs.push_back(std::move(v));
    runs.push_back(std::move(two_epochs));
  }
  CHECK(runs[0] == runs[1]);
  CHECK(runs[0] == runs[2]);
  // Training: a random transform, shuffling, two epochs; weights equal bit for bit.
  Generator gen(2);
  auto rows = std::make_shared<TensorDataset>(randn({40, 5}, {.dtype = kFloat64}, gen),
                                              from_vector(std::vector<std::int64_t>(40, 1), {40}));
  const auto noisy = map(rows, [](Example e) {
    e.data = e.data + randn({5}, {.dtype = kFloat64}, example_generator()) * 0.1;
    return e;
  });
  std::vector<std::vector<double>> weights;
  for (std::size_t workers : {0, 1, 2}) {
    manual_seed(5);
    Linear model(5, 3, true, kFloat64);
    SGD sgd(model.parameters(), {.lr = 0.1});
    DataLoader loader(noisy, {.batch_size = 8, .seed = 1, .num_workers = workers});
    for (int epoch = 0; epoch < 2; ++epoch)
      for (const Batch& b : loader) {
        sgd.zero_grad();
        softmax_cross_entropy(model.forward(b.data), b.target).backward();
        sgd.step();
      }
    weights.push_back(testing::flat(model.weight));
  }
  CHECK(weights[0] == weights[1]);
  CHECK(weights[0] == weights[2]);
}

TEST_CASE("an example that fails to load fails its batch, with workers too") {
  auto data = std::make_shared<Sequences>(12, 9);
  for (std::size_t workers : {0, 2}) {
    DataLoader loader(data, {.batch_size = 4, .shuffle = false, .num_workers = workers});
    std::size_t batches = 0;
    CHECK_THROWS_WITH_AS(
        [&] {
          for (const Batch& b : loader) batches += b.data.size(0) > 0;
        }(),
        doctest::Contains("example 9 is broken"), ValueError);
    CHECK(batches == 2);
  }
}

TEST_CASE("samplers: weighted, and buckets of similar lengths with less padding") {
  const WeightedRandomSampler weighted({0.0, 1.0, 3.0}, 4000);
  Generator gen(1);
  std::map<std::size_t, std::size_t> count;
  for (std::size_t i : weighted.indices(3, gen)) ++count[i];
  CHECK(count[0] == 0);
  CHECK(static_cast<double>(count[2]) / static_cast<double>(count[1]) ==
        doctest::Approx(3.0).epsilon(0.15));
  const std::vector<std::size_t> once =
      WeightedRandomSampler({1, 1, 1, 1}, 4, false).indices(4, gen);
  CHECK(std::set<std::size_t>(once.begin(), once.end()).size() == 4);
  CHECK_THROWS_AS(WeightedRandomSampler({1.0, -1.0}, 2), ValueError);
  CHECK_THROWS_AS(WeightedRandomSampler({1.0, 0.0}, 2, false), ValueError);
  CHECK_THROWS_AS(weighted.indices(4, gen), ValueError);
  // A loader over a weighted sampler has as many examples as it draws.
  auto data = std::make_shared<Sequences>(3);
  DataLoader drawn(data, {.batch_size = 5,
                          .sampler = std::make_shared<WeightedRandomSampler>(
                              std::vector<double>{0.0, 1.0, 1.0}, 10)});
  CHECK(drawn.num_batches() == 2);
  std::size_t rows = 0;
  for (const Batch& b : drawn)
    for (std::size_t r = 0; r < b.data.size(0); ++r, ++rows)
      CHECK(b.data.value<double>()(r, 0, 0) != 0.0);  // example 0 has weight 0
  CHECK(rows == 10);
  // Buckets: each example once, the padding much shorter than with a plain shuffle.
  auto many = std::make_shared<Sequences>(200);
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < 200; ++i) lengths.push_back(Sequences::length(i));
  const auto padding = [](DataLoader<Sequences>& loader, std::multiset<double>& seen) {
    std::size_t padded = 0;
    for (const Batch& b : loader) {
      padded += b.mask.numel() - static_cast<std::size_t>(sum(b.lengths).item());
      for (std::size_t r = 0; r < b.data.size(0); ++r) seen.insert(b.data.value<double>()(r, 0, 0));
    }
    return padded;
  };
  DataLoader plain(many, {.batch_size = 8, .seed = 2, .collate = {.sequences = true}});
  DataLoader bucketed(many, {.batch_size = 8,
                             .seed = 2,
                             .sampler = std::make_shared<BucketSampler>(lengths, 8, 5),
                             .collate = {.sequences = true}});
  std::multiset<double> a, b;
  const std::size_t plain_padding = padding(plain, a), bucket_padding = padding(bucketed, b);
  CHECK(a == b);
  CHECK(b.size() == 200);
  CHECK(bucket_padding * 4 < plain_padding);
}

TEST_CASE("TensorDataset takes float regression targets and multi-label targets") {
  Generator gen(3);
  auto regression = std::make_shared<TensorDataset>(randn({6, 2}, {.dtype = kFloat64}, gen),
                                                    randn({6}, {.dtype = kFloat64}, gen));
  DataLoader values(regression, {.batch_size = 4, .shuffle = false});
  CHECK((*values.begin()).target.shape() == Shape{4});
  CHECK((*values.begin()).target.dtype() == kFloat64);
  auto multi = std::make_shared<TensorDataset>(randn({6, 2}, {.dtype = kFloat64}, gen),
                                               zeros({6, 3}, {.dtype = kFloat32}));
  DataLoader labels(multi, {.batch_size = 4});
  CHECK((*labels.begin()).target.shape() == Shape{4, 3});
  CHECK(multi->get(5).target.shape() == Shape{3});
  CHECK_THROWS_WITH_AS(TensorDataset(zeros({6, 2}), zeros({5})),
                       doctest::Contains("one label per example"), ShapeError);
}

namespace {
// A stream of n examples: x = the example's number, epoch e counting down when e is odd; a random
// transform-like draw from example_generator() added as a second feature.
class Countdown : public IterableDataset<> {
 public:
  explicit Countdown(std::size_t n) : n_(n) {}
  void reset(std::size_t epoch) override {
    epoch_ = epoch;
    k_ = 0;
  }
  std::optional<Example> next() override {
    if (k_ == n_) return std::nullopt;
    const std::size_t i = epoch_ % 2 ? n_ - 1 - k_ : k_;
    ++k_;
    const double noise = std::uniform_real_distribution<double>(0, 1)(example_generator().engine());
    return Example{from_vector(std::vector<double>{double(i), noise}, {2}, {.dtype = kFloat64}),
                   from_vector(std::vector<std::int64_t>{std::int64_t(i % 2)}, {})};
  }

 private:
  std::size_t n_, epoch_ = 0, k_ = 0;
};
}  // namespace

TEST_CASE("an iterable dataset: batches in the stream's order, each epoch reset, workers alike") {
  std::vector<std::vector<double>> runs;
  for (std::size_t workers : {0, 1}) {
    DataLoader loader(std::make_shared<Countdown>(10),
                      {.batch_size = 4, .seed = 3, .num_workers = workers});
    std::vector<double> values;
    std::vector<std::size_t> sizes;
    for (int epoch = 0; epoch < 2; ++epoch)
      for (const Batch& b : loader) {
        sizes.push_back(b.data.size(0));
        for (double v : testing::flat(b.data)) values.push_back(v);
      }
    CHECK(sizes == std::vector<std::size_t>{4, 4, 2, 4, 4, 2});
    CHECK(values[0] == 0.0);  // epoch 0 counts up
    CHECK(values[2] == 1.0);
    CHECK(values[20] == 9.0);  // epoch 1 counts down
    runs.push_back(values);
  }
  CHECK(runs[0] == runs[1]);
  DataLoader whole(std::make_shared<Countdown>(10), {.batch_size = 4, .drop_last = true});
  std::size_t batches = 0;
  for (const Batch& b : whole) batches += b.data.size(0) == 4;
  CHECK(batches == 2);
}
