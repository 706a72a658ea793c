// The dataset pieces that do not depend on an example type: the default collate, the samplers,
// random splits, the example generator, compose. (The image transforms are in data.cpp, beside
// the loader's batch augmentation they share their loop with.)
#include "nn/dataset.hpp"

#include "autograd/grad_mode.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace xgrad::nn {

void internal::index_out_of_range(const char* what, std::size_t index, std::size_t size) {
  throw IndexError(std::string(what) + ": index " + std::to_string(index) +
                   " is out of range for " + std::to_string(size) + " examples");
}

namespace {

// One field of the examples (data or target) as one tensor: stacked, or padded along the first
// axis to the longest when the first axes differ. Sets `lengths` when it padded.
Tensor stack_or_pad(const std::vector<Tensor>& items, const char* field, double padding,
                    bool sequences, std::vector<std::int64_t>& lengths) {
  const Tensor& first = items.front();
  bool same = true;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Tensor& t = items[i];
    if (!t.defined())
      throw ValueError("collate: example " + std::to_string(i) + " has no " + field);
    if (t.dtype() != first.dtype())
      throw DtypeError("collate: example " + std::to_string(i) + "'s " + field + " is " +
                       std::string(dtype_name(t.dtype())) + ", example 0's is " +
                       std::string(dtype_name(first.dtype())));
    same = same && t.shape() == first.shape();
  }
  if (same && !(sequences && first.dim() >= 1)) return stack(items, 0);
  // Sequences: the same rank and trailing axes, first axes of any length.
  std::size_t longest = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Shape& s = items[i].shape();
    const bool trailing_same = s.size() == first.dim() && s.size() >= 1 &&
                               std::equal(s.begin() + 1, s.end(), first.shape().begin() + 1);
    if (!trailing_same)
      throw ShapeError("collate: example " + std::to_string(i) + "'s " + field + " has shape " +
                       shape_str(s) + ", example 0's " + shape_str(first.shape()) +
                       "; expected one shape, or sequences (T, ...) that differ in T only");
    longest = std::max(longest, s[0]);
  }
  std::vector<Tensor> padded;
  lengths.clear();
  for (const Tensor& t : items) {
    lengths.push_back(static_cast<std::int64_t>(t.size(0)));
    if (t.size(0) == longest) {
      padded.push_back(t);
      continue;
    }
    Shape rest = t.shape();
    rest[0] = longest - t.size(0);
    padded.push_back(concat({t, full(rest, padding, {.dtype = t.dtype()})}, 0));
  }
  return stack(padded, 0);
}

}  // namespace

Batch collate(std::vector<Example> examples, const CollateOptions& options) {
  if (examples.empty()) throw ValueError("collate: no examples");
  NoGradGuard no_grad;
  std::vector<Tensor> data, target;
  for (Example& e : examples) {
    data.push_back(std::move(e.data));
    target.push_back(std::move(e.target));
  }
  Batch b;
  std::vector<std::int64_t> lengths, target_lengths;
  b.data = stack_or_pad(data, "data", options.padding_value, options.sequences, lengths);
  const bool integer_target =
      target.front().defined() && !is_floating_point(target.front().dtype());
  b.target = stack_or_pad(
      target, "target",
      integer_target ? static_cast<double>(options.target_padding_value) : options.padding_value,
      false, target_lengths);
  if (lengths.empty()) lengths = target_lengths;  // only the targets are sequences
  if (!lengths.empty()) {
    const std::size_t n = lengths.size();
    const auto longest =
        static_cast<std::size_t>(*std::max_element(lengths.begin(), lengths.end()));
    b.lengths = from_vector(lengths, {n});
    std::vector<std::int64_t> mask(n * longest, 0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t t = 0; t < static_cast<std::size_t>(lengths[i]); ++t)
        mask[i * longest + t] = 1;
    b.mask = from_vector(mask, {n, longest}, {.dtype = Dtype::bool_});
  }
  return b;
}

// ---- example generator ----------------------------------------------------------------------

namespace {
thread_local Generator* current_example_generator = nullptr;
}  // namespace

Generator& example_generator() {
  if (current_example_generator) return *current_example_generator;
  thread_local Generator own(0x6a09e667f3bcc909ull);
  return own;
}

internal::ExampleGeneratorScope::ExampleGeneratorScope(Generator& gen)
    : previous_(current_example_generator) {
  current_example_generator = &gen;
}
internal::ExampleGeneratorScope::~ExampleGeneratorScope() { current_example_generator = previous_; }

Transform compose(std::vector<Transform> transforms) {
  for (const Transform& t : transforms)
    if (!t) throw ValueError("compose: a transform is empty");
  return [transforms = std::move(transforms)](Example e) {
    for (const Transform& t : transforms) e = t(std::move(e));
    return e;
  };
}

// ---- random splits ---------------------------------------------------------------------------

std::vector<std::size_t> internal::split_lengths(std::size_t n,
                                                 const std::vector<double>& lengths) {
  if (lengths.empty()) throw ValueError("random_split: no lengths");
  double total = 0;
  bool fractions = true;
  for (double l : lengths) {
    if (!(l >= 0) || !std::isfinite(l))
      throw ValueError("random_split: lengths must be finite and >= 0, got " + number_str(l));
    total += l;
    fractions = fractions && l <= 1;
  }
  std::vector<std::size_t> counts;
  if (fractions && std::abs(total - 1) <= 1e-9 && !(lengths.size() == 1 && n == 1)) {
    std::size_t given = 0;
    for (double f : lengths) {
      counts.push_back(static_cast<std::size_t>(std::floor(f * static_cast<double>(n))));
      given += counts.back();
    }
    for (std::size_t k = 0; given < n; k = (k + 1) % counts.size(), ++given) ++counts[k];
    return counts;
  }
  std::size_t sum = 0;
  for (double l : lengths) {
    if (l != std::floor(l))
      throw ValueError("random_split: lengths are counts summing to the dataset's size (" +
                       std::to_string(n) + ") or fractions summing to 1, got " + number_str(l));
    counts.push_back(static_cast<std::size_t>(l));
    sum += counts.back();
  }
  if (sum != n)
    throw ValueError("random_split: the lengths sum to " + std::to_string(sum) +
                     ", the dataset has " + std::to_string(n) + " examples");
  return counts;
}

std::vector<std::size_t> internal::permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Generator gen(seed);
  std::shuffle(order.begin(), order.end(), gen.engine());
  return order;
}

// ---- samplers ------------------------------------------------------------------------------

std::vector<std::size_t> SequentialSampler::indices(std::size_t n, Generator&) const {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  return order;
}

std::vector<std::size_t> RandomSampler::indices(std::size_t n, Generator& gen) const {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), gen.engine());
  return order;
}

WeightedRandomSampler::WeightedRandomSampler(std::vector<double> weights, std::size_t num_samples,
                                             bool replacement)
    : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement) {
  double total = 0;
  std::size_t positive = 0;
  for (double w : weights_) {
    if (!(w >= 0) || !std::isfinite(w))
      throw ValueError("WeightedRandomSampler: weights must be finite and >= 0, got " +
                       number_str(w));
    total += w;
    positive += w > 0;
  }
  if (!(total > 0)) throw ValueError("WeightedRandomSampler: the weights sum to 0");
  if (!replacement_ && num_samples_ > positive)
    throw ValueError("WeightedRandomSampler: " + std::to_string(num_samples_) +
                     " samples without replacement from " + std::to_string(positive) +
                     " examples of weight > 0");
}

std::vector<std::size_t> WeightedRandomSampler::indices(std::size_t n, Generator& gen) const {
  if (weights_.size() != n)
    throw ValueError("WeightedRandomSampler: " + std::to_string(weights_.size()) +
                     " weights for a dataset of " + std::to_string(n) + " examples");
  std::vector<std::size_t> out;
  std::vector<double> w = weights_;
  for (std::size_t k = 0; k < num_samples_; ++k) {
    std::discrete_distribution<std::size_t> pick(w.begin(), w.end());
    out.push_back(pick(gen.engine()));
    if (!replacement_) w[out.back()] = 0;
  }
  return out;
}

BucketSampler::BucketSampler(std::vector<std::size_t> lengths, std::size_t batch_size,
                             std::size_t window_batches)
    : lengths_(std::move(lengths)), batch_size_(batch_size), window_batches_(window_batches) {
  if (batch_size_ == 0 || window_batches_ == 0)
    throw ValueError("BucketSampler: batch_size and window_batches must be > 0");
}

std::vector<std::size_t> BucketSampler::indices(std::size_t n, Generator& gen) const {
  if (lengths_.size() != n)
    throw ValueError("BucketSampler: " + std::to_string(lengths_.size()) +
                     " lengths for a dataset of " + std::to_string(n) + " examples");
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), gen.engine());
  const std::size_t window = batch_size_ * window_batches_;
  // Sorted by length, ties kept in their shuffled order (std::sort with the position as the
  // second key: libstdc++ 12's stable_sort trips ASan's alloc-dealloc check).
  std::vector<std::size_t> position(n);
  for (std::size_t k = 0; k < n; ++k) position[order[k]] = k;
  for (std::size_t start = 0; start < n; start += window) {
    const auto first = order.begin() + static_cast<std::ptrdiff_t>(start);
    const auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(start + window, n));
    std::sort(first, last, [&](std::size_t a, std::size_t b) {
      return std::pair(lengths_[a], position[a]) < std::pair(lengths_[b], position[b]);
    });
  }
  // The full batches in a random order, the short one last: the loader cuts the order into
  // batches of batch_size, which must be these (a loader of another batch size mixes them).
  std::vector<std::size_t> batches((n + batch_size_ - 1) / batch_size_);
  std::iota(batches.begin(), batches.end(), 0);
  std::shuffle(batches.begin(), batches.begin() + static_cast<std::ptrdiff_t>(n / batch_size_),
               gen.engine());
  std::vector<std::size_t> out;
  out.reserve(n);
  for (std::size_t b : batches)
    for (std::size_t k = b * batch_size_; k < std::min((b + 1) * batch_size_, n); ++k)
      out.push_back(order[k]);
  return out;
}

}  // namespace xgrad::nn
