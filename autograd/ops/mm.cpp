// mm: Z = op(A) op(B), op(M) = M or M^T (last two axes), by BLAS gemm; 3-D operands are batches.
//   With G = dL/dZ:  d op(A) = G op(B)^T,  d op(B) = op(A)^T G, which, undoing op, gives
//     dA = ta ? op(B) G^T : G op(B)^T      dB = tb ? G^T op(A) : op(A)^T G
//   Each is again one mm with transpose flags, so no transposed copy is ever made.
// Saves A and B.
// JVP: dZ = op(dA) op(B) + op(A) op(dB), two more products with the same flags.
#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"

namespace xgrad {
namespace {
struct Mm final : Node {
  Mm(bool ta, bool tb) : ta_(ta), tb_(tb) {}
  std::string_view name() const override { return "mm"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor a = saved(0), b = saved(1);
    if (needs_grad(0)) grads[0] = ta_ ? mm(b, g, tb_, true) : mm(g, b, false, !tb_);
    if (needs_grad(1)) grads[1] = tb_ ? mm(g, a, true, ta_) : mm(a, g, !ta_, false);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return detail::add_defined(in.has(0) ? mm(in.tangent(0), in.primal(1), ta_, tb_) : Tensor(),
                               in.has(1) ? mm(in.primal(0), in.tangent(1), ta_, tb_) : Tensor());
  }
  bool ta_, tb_;
};

std::string operand(const Tensor& t, bool transposed) {
  return shape_str(t.shape()) + (transposed ? " (transposed)" : "");
}

// An operand as BLAS reads it: its first element, whether to read it transposed, its leading
// dimension and the distance between batches. A view whose rows or columns are contiguous (a
// transpose, a slice of rows or columns) is read in place, a transposed one with the flag
// flipped; any other layout from a contiguous copy.
template <class T>
struct Operand {
  const T* data;
  bool transposed;
  std::size_t ld, batch_stride;
};

template <class T>
Operand<T> blas_operand(const Tensor& t, bool transposed) {
  const std::size_t rank = t.dim(), rows = t.size(-2), cols = t.size(-1);
  if (t.is_view()) {
    const IntList s = t.strides();
    const auto stride = [&](std::size_t d) { return static_cast<std::size_t>(s[d]); };
    std::size_t s0 = stride(rank - 2), s1 = stride(rank - 1);
    if (cols == 1) s1 = 1;       // any stride along an axis of length 1 will do
    if (rows == 1) s0 = s1 == 1 ? cols : 1;
    const std::size_t batch = rank == 3 ? stride(0) : 0;
    const T* first = static_cast<const T*>(detail::first_element(t));
    if (s1 == 1 && s0 >= std::max<std::size_t>(cols, 1))  // rows contiguous: ld = row stride
      return {first, transposed, s0, batch};
    if (s0 == 1 && s1 >= std::max<std::size_t>(rows, 1))  // columns contiguous: the transpose
      return {first, !transposed, s1, batch};
  }
  return {detail::data<T>(t), transposed, cols, rows * cols};
}
}  // namespace

Tensor mm(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  const ProfileScope profiled("mm");
  detail::check_same_dtype("mm", a, b);
  const std::size_t rank = a.dim();
  if ((rank != 2 && rank != 3) || b.dim() != rank || (rank == 3 && a.size(0) != b.size(0)))
    throw ShapeError(
        "mm: needs two 2-D tensors, or two 3-D tensors with the same batch size; got " +
        shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const std::size_t ra = a.size(-2), ca = a.size(-1), rb = b.size(-2), cb = b.size(-1);
  const std::size_t m = transpose_a ? ca : ra, k = transpose_a ? ra : ca;
  const std::size_t kb = transpose_b ? cb : rb, n = transpose_b ? rb : cb;
  if (k != kb)
    throw ShapeError("mm: inner dimensions differ: " + operand(a, transpose_a) + " @ " +
                     operand(b, transpose_b) + " multiplies (" + std::to_string(m) + " x " +
                     std::to_string(k) + ") by (" + std::to_string(kb) + " x " + std::to_string(n) +
                     ")");
  const std::size_t batch = rank == 3 ? a.size(0) : 1;
  Shape shape = rank == 3 ? Shape{batch, m, n} : Shape{m, n};
  Tensor out = detail::dispatch(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> z = xt::xarray<T>::from_shape(shape);
    if (k == 0) z.fill(T{0});
    if (k == 0 || m == 0 || n == 0) return Tensor(std::move(z));
    const Operand<T> pa = blas_operand<T>(a, transpose_a), pb = blas_operand<T>(b, transpose_b);
    for (std::size_t i = 0; i < batch; ++i)
      detail::gemm(pa.transposed, pb.transposed, m, n, k, T{1}, pa.data + i * pa.batch_stride,
                   pa.ld, pb.data + i * pb.batch_stride, pb.ld, T{0}, z.data() + i * m * n, n);
    return Tensor(std::move(z));
  });
  if (auto* node = record<Mm>(out, {a, b}, transpose_a, transpose_b)) node->save({a, b});
  return out;
}
}  // namespace xgrad
