#pragma once
/// \file
/// Data: reading IDX files (the format of MNIST and Fashion-MNIST), an in-memory dataset, and a
/// loader that hands out shuffled mini-batches, augmented when asked.
///
///   auto train = load_idx_dataset(dir + "/train-images-idx3-ubyte.gz",
///                                 dir + "/train-labels-idx1-ubyte.gz");   // (60000, 1, 28, 28)
///   DataLoader loader(train, {.batch_size = 64, .seed = 1,
///                             .augment = {.crop_padding = 2, .horizontal_flip = true}});
///   for (const Batch& batch : loader) { ... batch.data (64, 1, 28, 28), batch.target (64) ... }
///
/// An MLP takes flatten(batch.data) (64, 784). The loader takes any dataset (nn/dataset.hpp).

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "xgrad/autograd/ops.hpp"
#include "xgrad/nn/dataset.hpp"

namespace xgrad::nn {

/// An IDX file of unsigned bytes: its dimensions and its data.
struct IdxFile {
  std::vector<std::size_t> shape;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file of unsigned bytes, gzip-compressed (.gz) or plain. Checks the magic number,
/// that the declared dimensions are sane and that the data is exactly as long as they say; a
/// truncated, corrupt or foreign file gives a ValueError naming the file and the problem, before
/// anything large is allocated.
IdxFile read_idx(const std::string& path);

/// Examples along the first axis of `inputs` (N, ...): rows (N, features) or images (N, C, H, W),
/// with their targets along the first axis of `labels`: class indices (N) int64 (the usual case),
/// or any targets (N, ...) of any dtype (regression values, multi-label vectors).
class TensorDataset : public Dataset<> {
 public:
  TensorDataset() = default;
  TensorDataset(Tensor inputs, Tensor labels);
  std::size_t size() const override { return labels_.defined() ? labels_.size(0) : 0; }
  Example get(std::size_t index) const override;
  /// The rows at `indices` gathered from the two tensors at once.
  Batch get_batch(std::span<const std::size_t> indices, const CollateOptions&) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& labels() const { return labels_; }

 private:
  Tensor inputs_;
  Tensor labels_;
};

/// Images as float32 scaled to [0, 1], in their shape with one channel: a file of (N, H, W) images
/// gives (N, 1, H, W); (N, C, H, W) and (N, features) stay as they are. Labels as class indices.
/// The two files must hold the same number of items.
TensorDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path);

/// One mean and one standard deviation over all pixels, as is usual for these data sets (take them
/// from the training set); standardize() maps every x to (x - mean) / std in place.
struct Normalization {
  double mean = 0, std = 1;
};
Normalization pixel_statistics(const TensorDataset& data);
void standardize(TensorDataset& data, Normalization n);

/// What the loader does to each image of a batch, in this order (as torchvision's RandomCrop with
/// padding, RandomHorizontalFlip, Normalize). Crop and flip need images (N, C, H, W).
struct Augmentation {
  /// Pads each side with zeros by this much, then crops back to (H, W) at a random offset: the
  /// image shifted by up to crop_padding pixels each way. 0: no crop.
  std::size_t crop_padding = 0;
  bool horizontal_flip = false;  ///< mirrors left to right with probability 1/2
  /// Then every entry x becomes (x - mean) / std (the padding too). The identity by default.
  Normalization normalize{};
};

struct DataLoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = true;     ///< a RandomSampler, else a SequentialSampler, unless `sampler` is set
  bool drop_last = false;  ///< drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;  ///< with the epoch number, decides each epoch's order and random draws
  /// Threads that make the next batches while the caller works on this one (0: the caller makes
  /// each batch when it asks). The batches are the same for any number: each is made from its
  /// own indices with its own example_generator(), seeded by (seed, epoch, batch, rank).
  std::size_t num_workers = 0;
  std::shared_ptr<const Sampler> sampler{};  ///< the epoch's indices (overrides shuffle)
  CollateOptions collate{};  ///< how the dataset's get_batch pads: .sequences = true for sequences
  /// Batch-level image augmentation, for a dataset of images (N, C, H, W) batched as Batch.
  Augmentation augment{};
  /// Distributed sampling, as PyTorch's DistributedSampler: the epoch's order (the same on every
  /// process) is padded by repeating its start to a multiple of num_replicas, and this process
  /// (rank) takes entries rank, rank + num_replicas, ...: shards of equal size that together are
  /// the epoch. With a per-rank batch of B / num_replicas, the ranks' batches b together are the
  /// single-process batch b of size B.
  std::size_t num_replicas = 1;
  std::size_t rank = 0;
};

namespace internal {
/// The seed of batch b of a stream's epoch: its example_generator() while it is read.
std::uint64_t stream_batch_seed(std::uint64_t seed, std::size_t epoch, std::size_t batch);

/// What a loader does that does not depend on the dataset's type: the options' checks, each
/// epoch's order and this rank's shard of it, the batches' indices and seeds, the augmentation.
class LoaderCore {
 public:
  LoaderCore(std::size_t dataset_size, const DataLoaderOptions& options);
  std::size_t shard_size() const;
  std::size_t num_batches() const;
  void start_epoch();                                             ///< the order of the next epoch
  std::span<const std::size_t> indices(std::size_t batch) const;  ///< IndexError past the end
  std::uint64_t batch_seed(std::size_t batch) const;
  void augment(Batch& batch, std::size_t b) const;
  const DataLoaderOptions& options() const { return options_; }
  std::size_t epoch_ = 0;    ///< the epoch the next start_epoch() starts
  std::size_t current_ = 0;  ///< the epoch of order_

 private:
  std::size_t n_;
  DataLoaderOptions options_;
  std::vector<std::size_t> order_;
};
}  // namespace internal

/// Iterating over a loader runs one epoch: the sampler's order, this rank's shard of it, then
/// batches made by the dataset's get_batch (the dataset itself is never copied or reordered),
/// then augmented. The order of epoch e depends only on (seed, e), and the random draws of batch
/// b only on (seed, e, b, rank), so a run resumed at epoch e sees the same batches as an unbroken
/// one, and any num_workers the same batches as none.
template <class D = TensorDataset>
class DataLoader {
 public:
  using BatchType = typename D::BatchType;
  /// The loader keeps the dataset alive (a temporary dataset is safe).
  DataLoader(std::shared_ptr<const D> data, DataLoaderOptions options)
      : data_(checked(std::move(data))), core_(data_->size(), options) {
    if constexpr (std::is_same_v<D, TensorDataset>) {
      const Augmentation& a = options.augment;
      if ((a.crop_padding > 0 || a.horizontal_flip) && data_->inputs().dim() != 4)
        throw ShapeError(
            "DataLoader: random crops and flips need images (N, C, H, W), the dataset's inputs "
            "are " +
            shape_str(data_->inputs().shape()));
    }
  }
  /// A copy of `data` (a TensorDataset's tensors are shared, not copied).
  DataLoader(D data, DataLoaderOptions options)
      : DataLoader(std::make_shared<const D>(std::move(data)), options) {}
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  ~DataLoader() { ahead_.clear(); }  // waits for the workers' batches

  std::size_t num_batches() const { return core_.num_batches(); }
  std::size_t shard_size() const { return core_.shard_size(); }  ///< this rank's examples
  const D& dataset() const { return *data_; }
  const DataLoaderOptions& options() const { return core_.options(); }
  void set_epoch(std::size_t epoch) {
    core_.epoch_ = epoch;
  }  ///< the epoch the next begin() starts

  class Iterator {
   public:
    Iterator(DataLoader* loader, std::size_t batch) : loader_(loader), batch_(batch) {}
    BatchType operator*() const { return loader_->take(batch_); }
    Iterator& operator++() {
      ++batch_;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return batch_ != other.batch_; }

   private:
    DataLoader* loader_;
    std::size_t batch_;
  };
  /// Starts the next epoch (the first is epoch 0); the workers start on its first batches.
  Iterator begin() {
    ahead_.clear();
    core_.start_epoch();
    for (std::size_t b = 0; b < core_.options().num_workers && b < num_batches(); ++b) launch(b);
    return Iterator(this, 0);
  }
  Iterator end() { return Iterator(this, num_batches()); }

  /// Batch b of the current epoch, made on the calling thread.
  BatchType batch(std::size_t b) const {
    Generator gen(core_.batch_seed(b) ^ 0x2545f4914f6cdd1dull);  // apart from the augmentation's
    const internal::ExampleGeneratorScope scope(gen);
    BatchType out = data_->get_batch(core_.indices(b), core_.options().collate);
    if constexpr (std::is_same_v<BatchType, Batch>) core_.augment(out, b);
    return out;
  }

 private:
  static std::shared_ptr<const D> checked(std::shared_ptr<const D> data) {
    if (!data) throw ValueError("DataLoader: no dataset (a null pointer)");
    return data;
  }
  void launch(std::size_t b) {
    ahead_.emplace(b, std::async(std::launch::async, [this, b] { return batch(b); }));
  }
  // Batch b: from a worker when one made it, and the worker moves on to batch b + num_workers.
  BatchType take(std::size_t b) {
    const std::size_t workers = core_.options().num_workers;
    if (workers > 0 && b + workers < num_batches() && !ahead_.count(b + workers))
      launch(b + workers);
    const auto it = ahead_.find(b);
    if (it == ahead_.end()) return batch(b);
    std::future<BatchType> ready = std::move(it->second);
    ahead_.erase(it);
    return ready.get();
  }

  std::shared_ptr<const D> data_;
  internal::LoaderCore core_;
  std::map<std::size_t, std::future<BatchType>> ahead_;  // batches the workers are making
};

/// A loader over an iterable dataset: batches of batch_size examples in the stream's order (the
/// last one shorter unless drop_last); each begin() resets the stream to the next epoch. With
/// num_workers > 0 one thread reads the next batch while the caller works on this one. A stream is
/// read by one thread at a time, so the batches are the same with and without it. Samplers,
/// shuffle and sharding do not apply (a stream shuffles and shards itself).
template <Iterable D>
class DataLoader<D> {
 public:
  using BatchType = typename D::BatchType;
  using ExampleType = typename D::ExampleType;
  DataLoader(std::shared_ptr<D> data, DataLoaderOptions options)
      : data_(std::move(data)), options_(std::move(options)) {
    if (!data_) throw ValueError("DataLoader: no dataset (a null pointer)");
    if (options_.batch_size == 0) throw ValueError("DataLoader: batch_size must be > 0");
  }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  ~DataLoader() {
    if (ahead_.valid()) ahead_.wait();
  }
  void set_epoch(std::size_t epoch) { epoch_ = epoch; }  ///< the epoch the next begin() starts
  const DataLoaderOptions& options() const { return options_; }

  struct End {};
  class Iterator {
   public:
    explicit Iterator(DataLoader* loader) : loader_(loader) { current_ = loader_->next_batch(); }
    const BatchType& operator*() const { return *current_; }
    Iterator& operator++() {
      current_ = loader_->next_batch();
      return *this;
    }
    bool operator!=(End) const { return current_.has_value(); }

   private:
    DataLoader* loader_;
    std::optional<BatchType> current_;
  };
  /// Resets the stream to the next epoch (the first is epoch 0) and reads its first batch.
  Iterator begin() {
    if (ahead_.valid()) ahead_.wait();
    ahead_ = {};
    data_->reset(epoch_);
    batch_ = 0;
    current_ = epoch_++;
    return Iterator(this);
  }
  End end() const { return {}; }

 private:
  // The next batch of the stream, or nothing at its end; a worker reads the one after meanwhile.
  std::optional<BatchType> next_batch() {
    std::optional<BatchType> out = ahead_.valid() ? ahead_.get() : read();
    if (out && options_.num_workers > 0)
      ahead_ = std::async(std::launch::async, [this] { return read(); });
    return out;
  }
  std::optional<BatchType> read() {
    Generator gen(internal::stream_batch_seed(options_.seed, current_, batch_++));
    const internal::ExampleGeneratorScope scope(gen);
    std::vector<ExampleType> examples;
    while (examples.size() < options_.batch_size)
      if (std::optional<ExampleType> e = data_->next())
        examples.push_back(std::move(*e));
      else
        break;
    if (examples.empty() || (options_.drop_last && examples.size() < options_.batch_size))
      return std::nullopt;
    return collate(std::move(examples), options_.collate);
  }

  std::shared_ptr<D> data_;
  DataLoaderOptions options_;
  std::size_t epoch_ = 0, current_ = 0, batch_ = 0;
  std::future<std::optional<BatchType>> ahead_;
};

template <class D>
DataLoader(std::shared_ptr<D>, DataLoaderOptions) -> DataLoader<std::remove_const_t<D>>;
DataLoader(TensorDataset, DataLoaderOptions)->DataLoader<TensorDataset>;

}  // namespace xgrad::nn
