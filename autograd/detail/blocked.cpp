// The blocked layout's conversions (oneDNN's reorders) and detail::plain. See blocked.hpp.
#include "autograd/detail/blocked.hpp"

#include <mutex>

#include "autograd/error.hpp"
#include "autograd/node.hpp"

#ifdef XGRAD_ONEDNN
#include "autograd/detail/onednn.hpp"
#endif

namespace xgrad::detail {
namespace {

Shape blocked_shape(const Shape& shape, std::size_t block) {
  if (shape.size() != 4 || (block != 8 && block != 16))
    throw Error("blocked layout: needs (N, C, H, W) and a block of 8 or 16, got " +
                shape_str(shape) + " and " + std::to_string(block));
  return {shape[0], (shape[1] + block - 1) / block, shape[2], shape[3], block};
}

#ifdef XGRAD_ONEDNN
// The two layouts' memory descriptors of (N, C, H, W) and a block.
dnnl::memory::desc plain_desc(const Shape& s) {
  const auto d = [](std::size_t v) { return static_cast<dnnl::memory::dim>(v); };
  return {{d(s[0]), d(s[1]), d(s[2]), d(s[3])},
          dnnl::memory::data_type::f32,
          dnnl::memory::format_tag::nchw};
}
dnnl::memory::desc blocked_desc(const Shape& s, std::size_t block) {
  const auto d = [](std::size_t v) { return static_cast<dnnl::memory::dim>(v); };
  return {{d(s[0]), d(s[1]), d(s[2]), d(s[3])},
          dnnl::memory::data_type::f32,
          block == 16 ? dnnl::memory::format_tag::aBcd16b : dnnl::memory::format_tag::aBcd8b};
}
void reorder(const dnnl::memory::desc& from_desc, const float* from,
             const dnnl::memory::desc& to_desc, float* to) {
  onednn_guarded("blocked layout: oneDNN's reorder failed", [&] {
    dnnl::memory a(from_desc, onednn_engine(), const_cast<float*>(from));
    dnnl::memory b(to_desc, onednn_engine(), to);
    dnnl::reorder(a, b).execute(onednn_stream(), a, b);
    onednn_stream().wait();
  });
}
#endif
}  // namespace

const BlockedArray* blocked(const Tensor& x) {
  if (!x.defined() || x.impl()->view) return nullptr;
  const auto* b = std::get_if<std::unique_ptr<BlockedArray>>(x.impl()->value.get());
  return b ? b->get() : nullptr;
}

Tensor make_blocked(BlockedArray values) {
  auto impl = std::make_shared<TensorImpl>();
  auto box = std::make_shared<StorageBox>(std::move(values));
  impl->version = &box->version;
  Values* data = &box->data;
  impl->value = std::shared_ptr<Values>(std::move(box), data);
  return Tensor(std::move(impl));
}

BlockedArray blocked_zeros(const Shape& shape, std::size_t block) {
  return {xt::zeros<float>(blocked_shape(shape, block)), shape, block};
}

BlockedArray blocked_empty(const Shape& shape, std::size_t block) {
  BlockedArray b{xt::xarray<float>::from_shape(blocked_shape(shape, block)), shape, block};
  const std::size_t c = shape[1], padded = b.values.shape()[1] * block;
  if (padded != c) {  // zero the last block's channels past c
    const std::size_t area = shape[2] * shape[3], cb = padded / block - 1;
    for (std::size_t n = 0; n < shape[0]; ++n) {
      float* p = b.values.data() + ((n * (padded / block) + cb) * area) * block;
      for (std::size_t s = 0; s < area; ++s)
        for (std::size_t lane = c - cb * block; lane < block; ++lane) p[s * block + lane] = 0;
    }
  }
  return b;
}

#ifdef XGRAD_ONEDNN
BlockedArray to_blocked(const Tensor& x, std::size_t block) {
  if (const BlockedArray* b = blocked(x); b && b->block == block) return *b;
  if (x.dtype() != Dtype::float32)
    throw DtypeError("blocked layout: only float32, got " + std::string(dtype_name(x.dtype())));
  BlockedArray out{xt::xarray<float>::from_shape(blocked_shape(x.shape(), block)), x.shape(),
                   block};
  const xt::xarray<float>& plain = x.value<float>();  // settles a blocked x of another block
  reorder(plain_desc(x.shape()), plain.data(), blocked_desc(x.shape(), block), out.values.data());
  return out;
}

xt::xarray<float> to_plain(const BlockedArray& b) {
  xt::xarray<float> out = xt::xarray<float>::from_shape(b.logical);
  reorder(blocked_desc(b.logical, b.block), b.values.data(), plain_desc(b.logical), out.data());
  return out;
}
#else
BlockedArray to_blocked(const Tensor&, std::size_t) {
  throw Error("blocked layout: this build has no oneDNN");
}
xt::xarray<float> to_plain(const BlockedArray&) {
  throw Error("blocked layout: this build has no oneDNN");
}
#endif

Storage& make_plain(Values& values) {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto* b = std::get_if<std::unique_ptr<BlockedArray>>(&values)) {
    xt::xarray<float> values_now = to_plain(**b);
    values.emplace<Storage>(std::in_place_type<xt::xarray<float>>, std::move(values_now));
  }
  return std::get<Storage>(values);
}

const Shape& logical_shape(const Values& values) {
  return std::get<std::unique_ptr<BlockedArray>>(values)->logical;
}

}  // namespace xgrad::detail
