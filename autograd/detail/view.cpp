#include "autograd/detail/view.hpp"

#include <algorithm>
#include <string>
#include <variant>

#include "autograd/detail/kernels.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad::detail {

namespace {
const Shape& storage_shape(const Storage& s) {
  return std::visit([](const auto& a) -> const Shape& { return a.shape(); }, s);
}
std::size_t storage_size(const Storage& s) {
  return std::visit([](const auto& a) { return a.size(); }, s);
}
}  // namespace

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size(), 0);
  std::size_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<std::size_t>(shape[i], 1);
  }
  return strides;
}

bool is_contiguous(const Shape& shape, const Shape& strides) {
  std::size_t expected = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 0) return true;  // no elements: any layout is every layout
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

Layout layout(const Tensor& x) {
  const TensorImpl& impl = *x.impl();
  if (impl.view) return {impl.view->shape, impl.view->strides, impl.view->offset};
  const Shape& shape = values_shape(*impl.value);
  return {shape, contiguous_strides(shape), 0};
}

std::size_t extent(const Layout& l) {
  std::size_t last = l.offset;
  for (std::size_t i = 0; i < l.shape.size(); ++i) {
    if (l.shape[i] == 0) return l.offset;
    last += (l.shape[i] - 1) * l.strides[i];
  }
  return last + 1;
}

std::optional<Shape> view_strides(const Shape& shape, const Shape& strides,
                                  const Shape& new_shape) {
  Shape out(new_shape.size(), 0);
  if (product(shape) == 0) return contiguous_strides(new_shape);
  // Walk the old axes in groups that are contiguous within themselves (stride[i] =
  // stride[i + 1] * shape[i + 1]), and lay the new axes over each group from its end.
  std::size_t view_d = new_shape.size();
  std::size_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  std::size_t tensor_numel = 1, view_numel = 1;
  for (std::size_t tensor_d = shape.size(); tensor_d-- > 0;) {
    tensor_numel *= shape[tensor_d];
    const bool group_ends =
        tensor_d == 0 ||
        (shape[tensor_d - 1] != 1 && strides[tensor_d - 1] != tensor_numel * chunk_base_stride);
    if (!group_ends) continue;
    while (view_d > 0 && (view_numel < tensor_numel || new_shape[view_d - 1] == 1)) {
      --view_d;
      out[view_d] = view_numel * chunk_base_stride;
      view_numel *= new_shape[view_d];
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (tensor_d > 0) {
      chunk_base_stride = strides[tensor_d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != 0) {
    // Leading axes of length 1 left over.
    while (view_d > 0) {
      --view_d;
      if (new_shape[view_d] != 1) return std::nullopt;
      out[view_d] = 1;
    }
  }
  return out;
}

Tensor make_view(const Tensor& x, Layout l) {
  const TensorImpl& src = *x.impl();
  auto info = std::make_shared<ViewInfo>();
  info->shape = std::move(l.shape);
  info->strides = std::move(l.strides);
  info->offset = l.offset;
  info->base = src.view ? src.view->base : x.impl_ptr();
  auto impl = std::make_shared<TensorImpl>();
  plain(*src.value);  // a view reads plain values through its strides
  impl->value = src.value;
  impl->version = src.version;
  // A view of a detached view is detached too; any other follows its base's history.
  impl->history = src.view && src.history == TensorImpl::kDetached ? TensorImpl::kDetached
                                                                   : info->base->history;
  impl->view = std::move(info);
  return Tensor(std::move(impl));
}

void remake_view_history(TensorImpl& view) {
  const ViewInfo& info = *view.view;
  view.history = info.base->history;
  const Tensor base(info.base);
  if (!base.requires_grad()) {
    view.grad_fn = NodeRef();
    view.requires_grad = false;
    return;
  }
  const GradModeGuard recording(true);
  const Tensor fresh = as_strided(base, info.shape, info.strides, info.offset);
  view.grad_fn = fresh.impl()->grad_fn;
  view.requires_grad = true;
}

bool is_whole(const ViewInfo& v, const Storage& storage) {
  return v.offset == 0 && v.shape == storage_shape(storage) &&
         is_contiguous(v.shape, v.strides);
}

void write_layout(const Tensor& dst, const Tensor& src) {
  const Layout l = layout(dst);
  TensorImpl& impl = *dst.impl();
  const std::size_t n = product(l.shape);
  dispatch_bytes(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* from = static_cast<const T*>(raw_data(src));
    std::visit(
        [&](auto& a) {
          if (extent(l) > a.size()) (void)dst.storage();  // throws: the storage was replaced
          T* to = reinterpret_cast<T*>(a.data()) + l.offset;
          if (is_contiguous(l.shape, l.strides)) {
            std::copy_n(from, n, to);
            return;
          }
          for_each_broadcast<1>(l.shape, {l.strides},
                                [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                                  to[at[0]] = from[i];
                                });
        },
        plain(*impl.value));
  });
  if (impl.version) impl.version->fetch_add(1, std::memory_order_relaxed);
}

void write_positions(const Tensor& dst, const std::vector<std::int64_t>& positions,
                     const Tensor& src) {
  TensorImpl& impl = *dst.impl();
  dispatch_bytes(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* from = static_cast<const T*>(raw_data(src));
    std::visit(
        [&](auto& a) {
          T* to = reinterpret_cast<T*>(a.data());
          for (std::size_t i = 0; i < positions.size(); ++i)
            to[static_cast<std::size_t>(positions[i])] = from[i];
        },
        plain(*impl.value));
  });
  if (impl.version) impl.version->fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::int64_t> storage_positions(const Layout& l) {
  std::vector<std::int64_t> out(product(l.shape));
  if (out.empty()) return out;
  for_each_broadcast<1>(l.shape, {l.strides},
                        [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                          out[i] = static_cast<std::int64_t>(l.offset + at[0]);
                        });
  return out;
}

Storage copy_layout(const Storage& storage, const Layout& l) {
  if (extent(l) > storage_size(storage))
    throw ValueError("view: its storage holds " + std::to_string(storage_size(storage)) +
                     " elements, fewer than the view of shape " + shape_str(l.shape) +
                     " reaches (" + std::to_string(extent(l)) +
                     "): the base's values were replaced (set_data) since the view was made");
  return std::visit(
      [&](const auto& a) -> Storage {
        using A = std::decay_t<decltype(a)>;
        A out = A::from_shape(l.shape);
        const auto* src = a.data() + l.offset;
        auto* dst = out.data();
        if (is_contiguous(l.shape, l.strides)) {
          std::copy_n(src, out.size(), dst);
          return out;
        }
        if (l.shape.size() > 1 &&
            l.strides.back() == 1) {  // whole rows (a transpose of outer axes)
          const std::size_t row = l.shape.back();
          const Shape rows(l.shape.begin(), l.shape.end() - 1);
          const Shape steps(l.strides.begin(), l.strides.end() - 1);
          for_each_broadcast<1>(rows, {steps},
                                [&](std::size_t r, const std::array<std::size_t, 1>& at) {
                                  std::copy_n(src + at[0], row, dst + r * row);
                                });
          return out;
        }
        for_each_broadcast<1>(l.shape, {l.strides},
                              [&](std::size_t i, const std::array<std::size_t, 1>& at) {
                                dst[i] = src[at[0]];
                              });
        return out;
      },
      storage);
}

}  // namespace xgrad::detail
