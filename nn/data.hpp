#pragma once
/// \file
/// Data: reading IDX files (the format of MNIST and Fashion-MNIST), an in-memory dataset, and a
/// loader that hands out shuffled mini-batches.
///
///   auto train = load_idx_dataset(dir + "/train-images-idx3-ubyte.gz", dir +
///   "/train-labels-idx1-ubyte.gz"); DataLoader loader(train, {.batch_size = 64, .shuffle = true,
///   .seed = 1}); for (const Batch& batch : loader) { ... batch.inputs (64, 784), batch.labels (64)
///   ... }

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

/// Examples as rows of `inputs` (N, features), with their class in `labels` (N).
class TensorDataset {
 public:
  TensorDataset() = default;
  TensorDataset(Tensor inputs, Index labels);
  std::size_t size() const { return labels_.size(); }
  const Tensor& inputs() const { return inputs_; }
  const Index& labels() const { return labels_; }

 private:
  Tensor inputs_;
  Index labels_;
};

/// Images as float32 rows scaled to [0, 1] (28 x 28 images give 784 columns), labels as class
/// indices. The two files must hold the same number of items.
TensorDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path);

/// One mean and one standard deviation over all pixels, as is usual for these data sets (take them
/// from the training set); standardize() maps every x to (x - mean) / std in place.
struct Normalization {
  double mean = 0, std = 1;
};
Normalization pixel_statistics(const TensorDataset& data);
void standardize(TensorDataset& data, Normalization n);

struct Batch {
  Tensor inputs;  ///< (batch, features), the dataset's dtype
  Index labels;   ///< (batch)
};

struct DataLoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;  ///< drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;  ///< with the epoch number, decides each epoch's order
};

/// Iterating over a loader runs one epoch: a new order when shuffling, then batches gathered row by
/// row from the dataset (the dataset itself is never copied or reordered). The order of epoch e
/// depends only on (seed, e), so a run resumed at epoch e sees the same batches as an unbroken one.
class DataLoader {
 public:
  /// The loader keeps the dataset alive: a copy of `data` (its inputs are shared, not copied), or
  /// the shared one, so that a temporary dataset is safe.
  DataLoader(TensorDataset data, DataLoaderOptions options);
  DataLoader(std::shared_ptr<const TensorDataset> data, DataLoaderOptions options);
  std::size_t num_batches() const;
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

 private:
  std::shared_ptr<const TensorDataset> data_;
  DataLoaderOptions options_;
  std::size_t epoch_ = 0;
  std::vector<std::size_t> order_;
};

}  // namespace xgrad::nn
