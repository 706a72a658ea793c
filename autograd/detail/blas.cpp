#include "autograd/detail/blas.hpp"

#include <cblas.h>

#include <atomic>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/detail/vector_math.hpp"
#include "autograd/error.hpp"

#ifdef XGRAD_ONEDNN
#include <oneapi/dnnl/dnnl.h>

#include <map>
#include <tuple>
#include <unordered_map>

#include "autograd/detail/onednn.hpp"
#endif

namespace xgrad::detail {

namespace {
std::atomic<std::uint64_t> float32_flops{0};
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint as_int(std::size_t v) { return static_cast<blasint>(v); }

// A product with an empty side: nothing to do (m or n is 0), or C = beta C (k is 0: each entry a
// sum of nothing). The backends refuse the leading dimensions of 0 such shapes bring (oneDNN:
// status 2), so these never reach them. Row-major C, m x n with leading dimension ldc.
template <class T>
bool empty_product(std::size_t m, std::size_t n, std::size_t k, T beta, T* c, std::size_t ldc) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T{0} ? T{0} : beta * c[i * ldc + j];
  return true;
}
}  // namespace

// float32 goes to oneDNN where the build has it: its JIT kernels for the CPU at hand ran at about
// twice OpenBLAS's rate on this project's shapes (docs/performance.md, ../shared/GEMM-NOTES.md).
// float64 stays on OpenBLAS: oneDNN has no double GEMM on CPU.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  count_float32_product(double(m) * double(n) * double(k));
#ifdef XGRAD_ONEDNN
  const auto d = [](std::size_t v) { return static_cast<dnnl_dim_t>(v); };
  dnnl_status_t status;
  if (trans_a && !trans_b && beta == 0.0f && transposed_product_pays(lda, ldb, sizeof(float))) {
    std::vector<float> ct(n * m);  // C^T = B^T A, then transposed
    status =
        dnnl_sgemm('T', 'N', d(n), d(m), d(k), alpha, b, d(ldb), a, d(lda), 0.0f, ct.data(), d(m));
    if (status == dnnl_success) transpose(ct.data(), n, m, c, ldc);
  } else {
    status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', d(m), d(n), d(k), alpha, a,
                        d(lda), b, d(ldb), beta, c, d(ldc));
  }
  if (status != dnnl_success)
    throw Error("gemm: oneDNN's sgemm failed (status " + std::to_string(status) + ") for " +
                std::to_string(m) + " x " + std::to_string(n) + " x " + std::to_string(k));
#else
  cblas_sgemm(CblasRowMajor, flag(trans_a), flag(trans_b), as_int(m), as_int(n), as_int(k), alpha,
              a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
#endif
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  cblas_dgemm(CblasRowMajor, flag(trans_a), flag(trans_b), as_int(m), as_int(n), as_int(k), alpha,
              a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
}

#ifdef XGRAD_ONEDNN
dnnl::engine& onednn_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& onednn_stream() {
  thread_local dnnl::stream s(onednn_engine());
  return s;
}

namespace {
using dnnl::memory;
memory::dim dim(std::size_t v) { return static_cast<memory::dim>(v); }
constexpr auto f32 = memory::data_type::f32;

// A matmul primitive and the layouts it was made for.
struct MatmulPlan {
  dnnl::matmul product;
  memory::desc a, w, bias, c;
  std::string impl;  // oneDNN's name for the kernel it chose
};

// A shape always gets its primitive (cached_plan, onednn.hpp), from its first product: a rule that
// sent a shape's first product to gemm and the next ones to the primitive gave one input two
// results.
template <class Key>
using Plans = OnednnPlans<Key, MatmulPlan>;

MatmulPlan planned(const dnnl::matmul::desc& desc, const dnnl::primitive_attr& attr) {
  const dnnl::matmul::primitive_desc pd(desc, attr, onednn_engine());
  return {dnnl::matmul(pd), pd.src_desc(), pd.weights_desc(),
          pd.bias_desc(),   pd.dst_desc(), pd.impl_info_str()};
}

// A oneDNN failure as xgrad's error, naming the operation and its shape.
template <class F>
void guarded(const char* op, std::size_t m, std::size_t n, std::size_t k, F&& f) {
  onednn_guarded(std::string(op) + ": oneDNN's matmul failed for " + std::to_string(m) + " x " +
                     std::to_string(n) + " x " + std::to_string(k),
                 std::forward<F>(f));
}

// RepeatedProduct's: C (m, n) = A (m, k) B (k, n) + C, B in the layout the primitive picks
// (format any), to be reordered into once.
const MatmulPlan& repeated_plan(std::size_t m, std::size_t n, std::size_t k) {
  using Key = std::tuple<std::size_t, std::size_t, std::size_t>;
  thread_local Plans<Key> plans;
  return cached_plan(plans, Key{m, n, k}, [&] {
    dnnl::post_ops sum;
    sum.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(sum);
    return planned(dnnl::matmul::desc(memory::desc({dim(m), dim(k)}, f32, memory::format_tag::ab),
                                      memory::desc({dim(k), dim(n)}, f32, memory::format_tag::any),
                                      memory::desc({dim(m), dim(n)}, f32, memory::format_tag::ab)),
                   attr);
  });
}

// linear_product's: Z (m, n) = X (m, k) W^T + b, W (n, k) row-major read in place (W^T stored
// column by column: tag ba), b (1, n) when there is one.
const MatmulPlan& linear_plan(std::size_t m, std::size_t n, std::size_t k, bool bias) {
  using Key = std::tuple<std::size_t, std::size_t, std::size_t, bool>;
  thread_local Plans<Key> plans;
  return cached_plan(plans, Key{m, n, k, bias}, [&] {
    const memory::desc x({dim(m), dim(k)}, f32, memory::format_tag::ab),
        w({dim(k), dim(n)}, f32, memory::format_tag::ba),
        z({dim(m), dim(n)}, f32, memory::format_tag::ab);
    return planned(
        bias ? dnnl::matmul::desc(x, w, memory::desc({1, dim(n)}, f32, memory::format_tag::ab), z)
             : dnnl::matmul::desc(x, w, z),
        dnnl::primitive_attr());
  });
}
}  // namespace
#endif

template <class T>
struct RepeatedProduct<T>::Prepared {
#ifdef XGRAD_ONEDNN
  MatmulPlan plan;  // a copy: the handle is shared, and lives as long as this object
  memory weights;  // W^T (k, n) in the primitive's layout
#endif
  std::vector<float> panels;  // or W^T in vector_math's panels, where they replace the primitive
};

namespace {
std::atomic<bool> panels_forced{false};

#ifdef XGRAD_ONEDNN
// Whether the recurrent product goes to vector_math's panels: where oneDNN's choice is its sgemm
// ("gemm:jit"), which packs W again at every call (an AVX2 machine: oneDNN 2.6's brgemm matmul,
// "brg:...", is AVX-512's alone), W holds 2^18 floats (1 MB) or more, and the vector path has
// them. On a Zen 5 capped at AVX2 (1 MB of second-level cache), the LSTM's 1024 x 256 forward
// went from 9.2 to 5.9 ms a step on the panels, its step 0.87x; the GRU's 768 x 256 did not move
// (its step 0.99-1.05x), so it stays on the primitive (docs/performance.md).
constexpr std::size_t kPanelsFrom = std::size_t{1} << 18;
bool use_panels(const std::string& impl, std::size_t n, std::size_t k) {
  if (!vec::panel_product_available()) return false;
  return panels_forced.load() || (impl.rfind("brg", 0) != 0 && n * k >= kPanelsFrom);
}
#endif
}  // namespace

bool force_repeated_panels(bool on) { return panels_forced.exchange(on); }

template <class T>
RepeatedProduct<T>::RepeatedProduct(std::size_t m, std::size_t n, std::size_t k, const T* w)
    : m_(m), n_(n), k_(k), w_(w) {
#ifdef XGRAD_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (m == 0 || n == 0 || k == 0) return;  // gemm's empty-product rules
    guarded("RepeatedProduct (a recurrent layer's steps)", m, n, k, [&] {
      const MatmulPlan& plan = repeated_plan(m, n, k);
      if (use_panels(plan.impl, n, k)) {
        prepared_ = std::make_unique<Prepared>();
        prepared_->panels.resize(vec::panels_size(n, k));
        vec::pack_panels(w, n, k, prepared_->panels.data());
        return;
      }
      // W (n, k) row-major is W^T (k, n) stored column by column: tag ba
      memory user(memory::desc({dim(k), dim(n)}, f32, memory::format_tag::ba), onednn_engine(),
                  const_cast<float*>(w));
      prepared_ = std::make_unique<Prepared>(Prepared{plan, memory(plan.w, onednn_engine()), {}});
      dnnl::reorder(user, prepared_->weights).execute(onednn_stream(), user, prepared_->weights);
      onednn_stream().wait();
    });
  }
#endif
}

template <class T>
void RepeatedProduct<T>::add_to(const T* a, T* c) const {
#ifdef XGRAD_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (prepared_ && !prepared_->panels.empty()) {
      vec::panel_product(m_, n_, k_, a, prepared_->panels.data(), c);
      return;
    }
    if (prepared_) {
      count_float32_product(double(m_) * double(n_) * double(k_));
      guarded("RepeatedProduct (a recurrent layer's steps)", m_, n_, k_, [&] {
        const MatmulPlan& plan = prepared_->plan;
        memory src(plan.a, onednn_engine(), const_cast<float*>(a)), dst(plan.c, onednn_engine(), c);
        plan.product.execute(
            onednn_stream(),
            {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, prepared_->weights}, {DNNL_ARG_DST, dst}});
        onednn_stream().wait();
      });
      return;
    }
  }
#endif
  gemm(false, true, m_, n_, k_, T{1}, a, k_, w_, k_, T{1}, c, n_);
}

namespace {
// Z = X W^T + b as b copied to every row (zeros without one), then gemm adding X W^T to it.
template <class T>
void linear_by_gemm(std::size_t m, std::size_t n, std::size_t k, const T* x, const T* w, const T* b,
                    T* z) {
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t j = 0; j < n; ++j) z[r * n + j] = b ? b[j] : T{0};
  gemm(false, true, m, n, k, T{1}, x, k, w, k, T{1}, z, n);
}
}  // namespace

// Whether the primitive goes first: from 128 rows of X, or from 64 when the rows are long (k from
// 2048). It repacks W at every call, as sgemm's N T does, but with fewer rows sgemm's kernels win
// or tie: at 1 x 784 x 256 the primitive took 2.6x sgemm's time, at 32 rows 1.02-1.03x, at 64
// 0.97-1.00x, at 128 0.97x, at 256-1024 0.84-0.94x; at 64 x 3136 x 256 (the reference CNN's
// hidden layer) 0.76x, and 0.62x with the caches cold (docs/performance.md).
constexpr std::size_t kLinearPrimitiveRows = 128, kLongRowPrimitiveRows = 64, kLongRow = 2048;

void linear_product(std::size_t m, std::size_t n, std::size_t k, const float* x, const float* w,
                    const float* b, float* z) {
#ifdef XGRAD_ONEDNN
  const bool primitive = m >= kLinearPrimitiveRows || (m >= kLongRowPrimitiveRows && k >= kLongRow);
  if (primitive && n != 0 && k != 0) {
    count_float32_product(double(m) * double(n) * double(k));
    guarded("linear", m, n, k, [&] {
      const MatmulPlan& plan = linear_plan(m, n, k, b != nullptr);
      const dnnl::engine& e = onednn_engine();
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, memory(plan.a, e, const_cast<float*>(x))},
          {DNNL_ARG_WEIGHTS, memory(plan.w, e, const_cast<float*>(w))},
          {DNNL_ARG_DST, memory(plan.c, e, z)}};
      if (b) args[DNNL_ARG_BIAS] = memory(plan.bias, e, const_cast<float*>(b));
      plan.product.execute(onednn_stream(), args);
      onednn_stream().wait();
    });
    return;
  }
#endif
  linear_by_gemm(m, n, k, x, w, b, z);
}
void linear_product(std::size_t m, std::size_t n, std::size_t k, const double* x, const double* w,
                    const double* b, double* z) {
  linear_by_gemm(m, n, k, x, w, b, z);
}

template <class T>
RepeatedProduct<T>::~RepeatedProduct() = default;

template class RepeatedProduct<float>;
template class RepeatedProduct<double>;

std::uint64_t float32_product_flops() { return float32_flops.load(std::memory_order_relaxed); }
void count_float32_product(double multiply_adds) {
  float32_flops.fetch_add(static_cast<std::uint64_t>(2 * multiply_adds), std::memory_order_relaxed);
}

const char* gemm_backend() {
#ifdef XGRAD_ONEDNN
  return "onednn";
#else
  return "openblas";
#endif
}

}  // namespace xgrad::detail
