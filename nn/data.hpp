#pragma once
/// \file
/// Data: reading IDX files (the format of MNIST and Fashion-MNIST), an in-memory dataset, and a
/// loader that hands out shuffled mini-batches, augmented when asked.
///
///   auto train = load_idx_dataset(dir + "/train-images-idx3-ubyte.gz",
///                                 dir + "/train-labels-idx1-ubyte.gz");   // (60000, 1, 28, 28)
///   DataLoader loader(train, {.batch_size = 64, .seed = 1,
///                             .augment = {.crop_padding = 2, .horizontal_flip = true}});
///   for (const Batch& batch : loader) { ... batch.inputs (64, 1, 28, 28), batch.labels (64) ... }
///
/// An MLP takes flatten(batch.inputs) (64, 784).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xgrad/autograd/ops.hpp"

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
/// with their class in `labels` (N).
class TensorDataset {
 public:
  TensorDataset() = default;
  /// labels: an int64 tensor (N) of class indices.
  TensorDataset(Tensor inputs, Tensor labels);
  std::size_t size() const { return labels_.numel(); }
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

struct Batch {
  Tensor inputs;  ///< (batch, ...) the dataset's inputs' trailing shape and dtype
  Tensor labels;  ///< (batch) int64
};

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
  bool shuffle = true;
  bool drop_last = false;  ///< drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;  ///< with the epoch number, decides each epoch's order and augmentation
  Augmentation augment{};
  /// Distributed sampling, as PyTorch's DistributedSampler: the epoch's order (the same on every
  /// process) is padded by repeating its start to a multiple of num_replicas, and this process
  /// (rank) takes entries rank, rank + num_replicas, ...: shards of equal size that together are
  /// the epoch. With a per-rank batch of B / num_replicas, the ranks' batches b together are the
  /// single-process batch b of size B.
  std::size_t num_replicas = 1;
  std::size_t rank = 0;
};

/// Iterating over a loader runs one epoch: a new order when shuffling, then batches gathered
/// example by example from the dataset (the dataset itself is never copied or reordered), then
/// augmented. The order of epoch e depends only on (seed, e), and the crops and flips of batch b
/// only on (seed, e, b), so a run resumed at epoch e sees the same batches as an unbroken one.
class DataLoader {
 public:
  /// The loader keeps the dataset alive: a copy of `data` (its inputs are shared, not copied), or
  /// the shared one, so that a temporary dataset is safe.
  DataLoader(TensorDataset data, DataLoaderOptions options);
  DataLoader(std::shared_ptr<const TensorDataset> data, DataLoaderOptions options);
  std::size_t num_batches() const;
  std::size_t shard_size() const;  ///< examples an epoch gives this rank (all, for one replica)
  const TensorDataset& dataset() const { return *data_; }

  class Iterator {
   public:
    Iterator(const DataLoader* loader, std::size_t batch) : loader_(loader), batch_(batch) {}
    Batch operator*() const { return loader_->batch(batch_); }
    Iterator& operator++() {
      ++batch_;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return batch_ != other.batch_; }

   private:
    const DataLoader* loader_;
    std::size_t batch_;
  };
  Iterator begin();  ///< starts the next epoch (the first is epoch 0)
  Iterator end() const { return Iterator(this, num_batches()); }
  void set_epoch(std::size_t epoch) { epoch_ = epoch; }  ///< the epoch the next begin() starts

  Batch batch(std::size_t b) const;  ///< batch b of the current epoch
  const DataLoaderOptions& options() const { return options_; }

 private:
  std::shared_ptr<const TensorDataset> data_;
  DataLoaderOptions options_;
  std::size_t epoch_ = 0;    // the epoch the next begin() starts
  std::size_t current_ = 0;  // the epoch of order_
  std::vector<std::size_t> order_;
};

}  // namespace xgrad::nn
