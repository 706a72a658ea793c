// sum_to: z = x summed down to `shape`, over the axes that broadcasting from `shape` would repeat
//   dz/dx = 1 for each term: the gradient is broadcast back to x's shape. Saves nothing.
//   JVP: dz = dx summed down to the shape as well.
// Sums run in double, so float sums of many terms keep their precision. The engine calls this
// for every gradient whose shape differs from its input's: it is where broadcasting is undone.
#include <algorithm>

#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
// A whole-tensor sum adds in one fixed order whatever the tensor's layout and the number of
// threads, so that a view and its copy give the same bits: the elements in row-major order, cut
// into chunks of kChunk; in a chunk, the element at position i goes to running sum i % 8 (in
// double; eight of them so that the loop vectorizes); a chunk's sum is its eight running sums
// added in order, the total the chunks' sums added in order.
constexpr std::size_t kChunk = 4096;

struct Lanes {
  double acc[8] = {};
  // p[0..n) as the elements at positions at, at + 1, ... of the chunk.
  template <class T>
  void add(const T* p, std::size_t n, std::size_t at) {
    std::size_t j = 0;
    for (; j < n && (at + j) % 8 != 0; ++j) acc[(at + j) % 8] += static_cast<double>(p[j]);
    for (; j + 8 <= n; j += 8)
      for (std::size_t k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[j + k]);
    for (; j < n; ++j) acc[(at + j) % 8] += static_cast<double>(p[j]);
  }
  double sum() const {
    double s = 0;
    for (double a : acc) s += a;
    return s;
  }
};

// The same order for elements given piece by piece (the rows of a strided view, in order).
class ChunkedSum {
 public:
  template <class T>
  void add(const T* p, std::size_t n) {
    while (n > 0) {
      const std::size_t at = seen_ % kChunk, take = std::min(n, kChunk - at);
      lanes_.add(p, take, at);
      p += take;
      n -= take;
      seen_ += take;
      if (seen_ % kChunk == 0) close_chunk();
    }
  }
  double total() {
    if (seen_ % kChunk != 0) close_chunk();
    seen_ = 0;
    return total_;
  }

 private:
  void close_chunk() {
    total_ += lanes_.sum();
    lanes_ = Lanes{};
  }
  Lanes lanes_;
  std::size_t seen_ = 0;
  double total_ = 0;
};

// The sum of all of x's elements (any layout), in the order above.
template <class T>
double whole_sum(const Tensor& x) {
  const std::size_t total = x.numel();
  if (x.is_contiguous()) {  // chunks split across the threads
    const T* px = detail::data<T>(x);
    std::vector<double> part((total + kChunk - 1) / kChunk);
    parallel_for(part.size(), std::max<std::size_t>(1, kParallelGrain / kChunk),
                 [&](std::size_t begin, std::size_t end) {
                   for (std::size_t c = begin; c < end; ++c) {
                     Lanes lanes;
                     lanes.add(px + c * kChunk, std::min(kChunk, total - c * kChunk), 0);
                     part[c] = lanes.sum();
                   }
                 });
    double sum = 0;
    for (double p : part) sum += p;
    return sum;
  }
  const detail::Strided<T> in = detail::strided<T>(x, x.shape());  // a view: read in place
  const std::size_t rank = x.dim();
  ChunkedSum sum;
  if (rank >= 2 && in.strides[rank - 1] == 1) {  // contiguous rows, walked by their strides
    const Shape outer(x.shape().begin(), x.shape().end() - 1);
    const Shape row_strides(in.strides.begin(), in.strides.end() - 1);
    const std::size_t n = x.shape()[rank - 1];
    // The row one stride further along the last outer axis is asked for before this one is
    // read: rows far apart in memory are otherwise each a wait on memory.
    const std::size_t ahead = row_strides.back() * sizeof(T);
    detail::for_each_broadcast<1>(
        outer, {row_strides}, [&](std::size_t, const std::array<std::size_t, 1>& at) {
          detail::prefetch_row(reinterpret_cast<std::uintptr_t>(in.data + at[0]) + ahead,
                               n * sizeof(T));
          sum.add(in.data + at[0], n);
        });
  } else {  // gathered a chunk at a time
    std::vector<T> chunk;
    chunk.reserve(kChunk);
    detail::for_each_broadcast<1>(x.shape(), {in.strides},
                                  [&](std::size_t, const std::array<std::size_t, 1>& at) {
                                    chunk.push_back(in.data[at[0]]);
                                    if (chunk.size() == kChunk) {
                                      sum.add(chunk.data(), kChunk);
                                      chunk.clear();
                                    }
                                  });
    sum.add(chunk.data(), chunk.size());
  }
  return sum.total();
}

struct SumTo final : Node {
  std::string_view name() const override { return "sum_to"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = broadcast_to(g, edge(0).shape);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return sum_to(in.tangent(0), in.out.shape());
  }
};
}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  const ProfileScope profiled("sum_to");
  if (shape.size() > x.dim() || detail::broadcast_shapes("sum_to", shape, x.shape()) != x.shape())
    throw ShapeError("sum_to: shape " + shape_str(x.shape()) + " cannot be summed to " +
                     shape_str(shape) + " (the target must broadcast to the tensor's shape)");
  if (!is_floating_point(x.dtype())) return detail::integer_sum_to(x, shape);
  // The common case, a bias's gradient: x's trailing axes are `shape` (leading 1s aside), and the
  // leading ones are summed away. Columns are split across the threads; each column is summed in
  // row order, so the result is the same on any number of threads (float32: in vector lanes on
  // the widest instruction set, detail::vec::column_sums).
  const std::size_t cols = detail::product(shape), total = detail::product(x.shape());
  std::size_t ones = 0;  // shape's leading 1s: summed like the axes it lacks
  while (ones < shape.size() && shape[ones] == 1) ++ones;
  const bool leading =
      cols > 0 && total > 0 && x.is_contiguous() &&
      std::equal(shape.begin() + static_cast<std::ptrdiff_t>(ones), shape.end(),
                 x.shape().end() - static_cast<std::ptrdiff_t>(shape.size() - ones));
  Tensor out = detail::dispatch(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (cols == 1 && total > 0) {
      xt::xarray<T> z = detail::empty<T>(shape);
      z.data()[0] = static_cast<T>(whole_sum<T>(x));
      return Tensor(std::move(z));
    }
    if (leading) {
      const T* px = detail::data<T>(x);
      xt::xarray<T> z = detail::empty<T>(shape);
      T* pz = z.data();
      const std::size_t rows = total / cols;
      parallel_for(cols, std::max<std::size_t>(1, kParallelGrain / std::max<std::size_t>(rows, 1)),
                   [=](std::size_t begin, std::size_t end) {
                     std::vector<double> acc(end - begin, 0.0);
                     if constexpr (std::is_same_v<T, float>) {
                       detail::vec::column_sums(px, rows, cols, begin, end, acc.data());
                     } else {
                       for (std::size_t r = 0; r < rows; ++r) {
                         const T* row = px + r * cols;
                         for (std::size_t j = begin; j < end; ++j) acc[j - begin] += row[j];
                       }
                     }
                     for (std::size_t j = begin; j < end; ++j)
                       pz[j] = static_cast<T>(acc[j - begin]);
                   });
      return Tensor(std::move(z));
    }
    std::vector<double> acc(detail::product(shape), 0.0);
    const detail::Strided<T> in = detail::strided<T>(x, x.shape());  // a view: read in place
    const Shape to = detail::broadcast_strides(shape, x.shape());
    const std::size_t rank = x.dim();
    if (!x.is_contiguous() && in.strides[rank - 1] == 1 && to[rank - 1] == 0 && total > 0) {
      // Rows that are contiguous and summed away (a slice of rows, a whole-tensor sum): each
      // row summed in a vectorized loop, the rows walked by their strides.
      const Shape outer(x.shape().begin(), x.shape().end() - 1);
      const Shape row_in(in.strides.begin(), in.strides.end() - 1);
      const Shape row_to(to.begin(), to.end() - 1);
      const std::size_t n = x.shape()[rank - 1];
      const auto add_row = [&](std::size_t, const std::array<std::size_t, 2>& at) {
        acc[at[0]] += detail::row_sum(in.data + at[1], n, [](T v) { return v; });
      };
      if (outer.empty())
        add_row(0, {0, 0});
      else
        detail::for_each_broadcast<2>(outer, {row_to, row_in}, add_row);
    } else {
      detail::for_each_broadcast<2>(
          x.shape(), {to, in.strides},
          [&](std::size_t, const std::array<std::size_t, 2>& at) { acc[at[0]] += in.data[at[1]]; });
    }
    xt::xarray<T> z = detail::empty<T>(shape);
    for (std::size_t i = 0; i < acc.size(); ++i) z.data()[i] = static_cast<T>(acc[i]);
    return Tensor(std::move(z));
  });
  record<SumTo>(out, {x});
  return out;
}
}  // namespace xgrad
