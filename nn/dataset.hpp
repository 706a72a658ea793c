#pragma once
/// \file
/// Datasets as torch::data and torch.utils.data have them: a map-style dataset gives its size and
/// the example at an index; examples are any type (an Example of two tensors by default, a tuple,
/// a struct, sequences of any length); subsets, concatenations, seeded random splits and
/// transforms that compose are datasets too. The loader (nn/data.hpp) draws indices from a
/// sampler and collates the examples into batches.
///
///   struct Sentences : nn::Dataset<> {            // examples {data, target} of nn::Example
///     std::size_t size() const override { return lines.size(); }
///     nn::Example get(std::size_t i) const override { return {tokens(lines[i]), label(i)}; }
///   };
///   auto [train, valid] = nn::random_split(data, {0.9, 0.1}, /*seed=*/1);
///   nn::DataLoader loader(train, {.batch_size = 32, .shuffle = true, .num_workers = 1});
///   for (const nn::Batch& b : loader) { ... b.data (32, T), b.lengths, b.mask ... }
///
/// A dataset's get() is const and may be called from the loader's worker threads at once.

#include <array>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd/ops.hpp"

namespace xgrad::nn {

/// The default example: an input and its target (a class index, a value, a sequence, ...).
struct Example {
  Tensor data;
  Tensor target;
};

/// A batch of Examples, as the default collate makes it. Sequences of different lengths (data of
/// shapes (T_i, ...)) are padded to the longest: lengths (B) int64 holds each T_i and mask (B,
/// T_max) bool is true at real steps; both are undefined when every example had one shape.
struct Batch {
  Tensor data;    ///< (B, ...)
  Tensor target;  ///< (B, ...)
  Tensor lengths;
  Tensor mask;
};

/// How the default collate pads sequences.
struct CollateOptions {
  /// The data are sequences (T, ...): every batch has lengths and mask, also one whose examples
  /// all have one length. Otherwise they are set only for a batch that needed padding.
  bool sequences = false;
  double padding_value = 0;  ///< data's padded steps
  /// Integer targets' padded steps: cross-entropy's default ignore_index, so that padded steps
  /// count for nothing. Floating targets are padded with padding_value.
  std::int64_t target_padding_value = -100;
};

/// Stacks examples along a new first axis: data of one shape are stacked as they are; data whose
/// first axis differs (sequences) are padded to the longest, with lengths and mask. Targets alike
/// (a target sequence is padded with target_padding_value). Shapes that differ elsewhere, dtypes
/// that differ, or no examples: ShapeError / DtypeError / ValueError naming the example.
Batch collate(std::vector<Example> examples, const CollateOptions& options = {});

/// The interface of a map-style dataset of examples of type E, batched into B.
template <class E = Example, class B = Batch>
class Dataset {
 public:
  using ExampleType = E;
  using BatchType = B;
  virtual ~Dataset() = default;
  virtual std::size_t size() const = 0;
  /// Example `index` in [0, size()). May be called from several threads at once.
  virtual E get(std::size_t index) const = 0;
  /// The examples at `indices` as one batch: by default get() each, then collate() (found by
  /// argument-dependent lookup for another example type). A dataset that can gather faster
  /// (TensorDataset: rows of one tensor) overrides it.
  virtual B get_batch(std::span<const std::size_t> indices, const CollateOptions& options) const {
    std::vector<E> examples;
    examples.reserve(indices.size());
    for (std::size_t i : indices) examples.push_back(get(i));
    return collate(std::move(examples), options);
  }
};

/// A dataset read as a stream, one example after another (torch.utils.data.IterableDataset): a
/// file read as it comes, examples generated on the fly. The loader batches them in order.
template <class E = Example, class B = Batch>
class IterableDataset {
 public:
  using ExampleType = E;
  using BatchType = B;
  virtual ~IterableDataset() = default;
  /// Starts a pass over the data: epoch `epoch` (a stream that shuffles may seed from it).
  virtual void reset(std::size_t epoch) = 0;
  /// The next example of the pass, or nothing at its end.
  virtual std::optional<E> next() = 0;
};

/// Whether D is an iterable dataset (the loader reads it in order) rather than a map-style one.
template <class D>
concept Iterable =
    std::derived_from<D, IterableDataset<typename D::ExampleType, typename D::BatchType>>;

namespace internal {
[[noreturn]] void index_out_of_range(const char* what, std::size_t index, std::size_t size);
}  // namespace internal

/// The examples of `base` at `indices`, in that order (torch.utils.data.Subset).
template <class E = Example, class B = Batch>
class Subset : public Dataset<E, B> {
 public:
  Subset(std::shared_ptr<const Dataset<E, B>> base, std::vector<std::size_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {
    for (std::size_t i : indices_)
      if (i >= base_->size()) internal::index_out_of_range("Subset", i, base_->size());
  }
  std::size_t size() const override { return indices_.size(); }
  E get(std::size_t index) const override {
    if (index >= indices_.size()) internal::index_out_of_range("Subset", index, indices_.size());
    return base_->get(indices_[index]);
  }
  B get_batch(std::span<const std::size_t> indices, const CollateOptions& options) const override {
    std::vector<std::size_t> mapped;
    for (std::size_t i : indices) {
      if (i >= indices_.size()) internal::index_out_of_range("Subset", i, indices_.size());
      mapped.push_back(indices_[i]);
    }
    return base_->get_batch(mapped, options);
  }
  const std::vector<std::size_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset<E, B>> base_;
  std::vector<std::size_t> indices_;
};

/// The datasets one after another (torch.utils.data.ConcatDataset).
template <class E = Example, class B = Batch>
class ConcatDataset : public Dataset<E, B> {
 public:
  explicit ConcatDataset(std::vector<std::shared_ptr<const Dataset<E, B>>> parts)
      : parts_(std::move(parts)) {
    for (const auto& p : parts_) {
      if (!p) throw ValueError("ConcatDataset: a part is a null pointer");
      ends_.push_back((ends_.empty() ? 0 : ends_.back()) + p->size());
    }
  }
  std::size_t size() const override { return ends_.empty() ? 0 : ends_.back(); }
  E get(std::size_t index) const override {
    for (std::size_t k = 0; k < parts_.size(); ++k)
      if (index < ends_[k]) return parts_[k]->get(index - (k ? ends_[k - 1] : 0));
    internal::index_out_of_range("ConcatDataset", index, size());
  }

 private:
  std::vector<std::shared_ptr<const Dataset<E, B>>> parts_;
  std::vector<std::size_t> ends_;
};

/// The examples of `base` through `transform` (torchvision's transforms, LibTorch's map()).
/// Random transforms draw from example_generator().
template <class E = Example, class B = Batch>
class MapDataset : public Dataset<E, B> {
 public:
  MapDataset(std::shared_ptr<const Dataset<E, B>> base, std::function<E(E)> transform)
      : base_(std::move(base)), transform_(std::move(transform)) {
    if (!base_ || !transform_) throw ValueError("MapDataset: a null dataset or transform");
  }
  std::size_t size() const override { return base_->size(); }
  E get(std::size_t index) const override { return transform_(base_->get(index)); }

 private:
  std::shared_ptr<const Dataset<E, B>> base_;
  std::function<E(E)> transform_;
};

/// `base` through `transform`: map(data, compose(random_crop(2), random_horizontal_flip())).
template <class D, class F>
std::shared_ptr<MapDataset<typename D::ExampleType, typename D::BatchType>> map(
    std::shared_ptr<D> base, F transform) {
  using E = typename D::ExampleType;
  return std::make_shared<MapDataset<E, typename D::BatchType>>(
      std::shared_ptr<const Dataset<E, typename D::BatchType>>(std::move(base)),
      std::function<E(E)>(std::move(transform)));
}

namespace internal {
// The lengths of a random split: fractions (summing to 1) or counts (summing to n).
std::vector<std::size_t> split_lengths(std::size_t n, const std::vector<double>& lengths);
std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed);
}  // namespace internal

/// `base` cut into disjoint random subsets (torch.utils.data.random_split): `lengths` are counts
/// that sum to base->size(), or fractions that sum to 1 (the remainder goes one by one to the
/// first subsets, as PyTorch). The same seed gives the same split.
template <class D>
std::vector<std::shared_ptr<Subset<typename D::ExampleType, typename D::BatchType>>> random_split(
    std::shared_ptr<D> base, const std::vector<double>& lengths, std::uint64_t seed) {
  using S = Subset<typename D::ExampleType, typename D::BatchType>;
  if (!base) throw ValueError("random_split: no dataset (a null pointer)");
  const std::vector<std::size_t> counts = internal::split_lengths(base->size(), lengths);
  const std::vector<std::size_t> order = internal::permutation(base->size(), seed);
  std::vector<std::shared_ptr<S>> out;
  std::size_t start = 0;
  for (std::size_t c : counts) {
    out.push_back(std::make_shared<S>(
        base, std::vector<std::size_t>(order.begin() + static_cast<std::ptrdiff_t>(start),
                                       order.begin() + static_cast<std::ptrdiff_t>(start + c))));
    start += c;
  }
  return out;
}

/// The generator random transforms draw from. Inside a DataLoader it is seeded for each batch by
/// (seed, epoch, batch, rank), so the draws do not depend on the number of workers or on which
/// thread made the batch; elsewhere it is a generator of the calling thread.
Generator& example_generator();

namespace internal {
/// Makes `gen` this thread's example_generator() while it lives.
class ExampleGeneratorScope {
 public:
  explicit ExampleGeneratorScope(Generator& gen);
  ~ExampleGeneratorScope();
  ExampleGeneratorScope(const ExampleGeneratorScope&) = delete;
  ExampleGeneratorScope& operator=(const ExampleGeneratorScope&) = delete;

 private:
  Generator* previous_;
};
}  // namespace internal

// ---- transforms of an Example's data ----------------------------------------------------------

using Transform = std::function<Example(Example)>;
/// The transforms one after another.
Transform compose(std::vector<Transform> transforms);
/// An image (C, H, W) padded with `padding` zeros on each side and cropped back at a random
/// offset (torchvision's RandomCrop(size, padding) at the image's size).
Transform random_crop(std::size_t padding);
/// An image (C, H, W) mirrored left to right with probability p.
Transform random_horizontal_flip(double p = 0.5);
/// Every entry x of the data as (x - mean) / std.
Transform normalize(double mean, double std);

// ---- samplers ---------------------------------------------------------------------------------

/// Which indices an epoch visits, in which order.
class Sampler {
 public:
  virtual ~Sampler() = default;
  /// The epoch's indices for a dataset of n examples, drawn from `gen` (which the loader seeds
  /// from its seed and the epoch). Each index < n.
  virtual std::vector<std::size_t> indices(std::size_t n, Generator& gen) const = 0;
  /// How many indices an epoch over n examples has.
  virtual std::size_t count(std::size_t n) const { return n; }
};

/// 0, 1, ..., n - 1.
class SequentialSampler : public Sampler {
 public:
  std::vector<std::size_t> indices(std::size_t n, Generator& gen) const override;
};

/// A random permutation of 0 .. n - 1.
class RandomSampler : public Sampler {
 public:
  std::vector<std::size_t> indices(std::size_t n, Generator& gen) const override;
};

/// num_samples indices drawn with probability proportional to weights[i] (with replacement by
/// default), as torch.utils.data.WeightedRandomSampler: for unbalanced classes.
class WeightedRandomSampler : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, std::size_t num_samples,
                        bool replacement = true);
  std::vector<std::size_t> indices(std::size_t n, Generator& gen) const override;
  std::size_t count(std::size_t) const override { return num_samples_; }

 private:
  std::vector<double> weights_;
  std::size_t num_samples_;
  bool replacement_;
};

/// Groups examples of similar length into the same batches, so that padding is short: each epoch
/// shuffles the indices, sorts each window of batch_size * window_batches of them by length, cuts
/// the window into batches and shuffles the batches. Seeded by the loader like any sampler.
class BucketSampler : public Sampler {
 public:
  BucketSampler(std::vector<std::size_t> lengths, std::size_t batch_size,
                std::size_t window_batches = 50);
  std::vector<std::size_t> indices(std::size_t n, Generator& gen) const override;

 private:
  std::vector<std::size_t> lengths_;
  std::size_t batch_size_, window_batches_;
};

}  // namespace xgrad::nn
