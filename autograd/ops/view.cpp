// The view ops: each returns a tensor over its input's storage (no element is copied) with
// another layout, computed by autograd/detail/view.hpp, and records a node whose backward puts
// the gradient back in the input's shape:
//   reshape / view: z = x with another shape, the same elements in row-major order
//     dz/dx: the gradient reshaped back. reshape copies when no view can show x so (x
//     transposed, then flattened), as PyTorch's; view refuses (ShapeError).
//   permute: z[i_axes[0], i_axes[1], ...] = x[i_0, i_1, ...]; dz/dx: permuted back.
//   slice: the entries start, start + step, ... (count of them) along an axis; dz/dx: g in its
//     region. The backward gives only the region's gradient, which the engine adds into the
//     region of x's gradient (Node::grad_region): T slices of one tensor cost O(size + T slice)
//     in the backward. Under create_graph, index_add into zeros, differentiable again.
//   expand: axes of length 1 repeated (stride 0); dz/dx: g summed back (by the engine).
//   as_strided: any layout over x's storage; dz/dx: g added at the storage positions it read,
//     then read at x's (index_add and index_select, so differentiable again); refused for an
//     expanded x, whose elements share positions.
//   diagonal: entries (i, i + offset) of two axes; dz/dx: g written on the diagonal of zeros.
// clone: a copy with its own storage (dz/dx = g); contiguous() of a strided view is one.
// JVP of each: the same view of the tangent (so that a view's tangent is a view of its base's,
// and an in-place write through the view reaches both); as_strided's is the tangent placed at
// x's storage positions of a zero storage, then read at the view's (a new tensor, not a view: a
// tangent's storage need not be laid out as its primal's).
// All of them take every dtype.
#include <algorithm>

#include "autograd/detail/forward.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/view.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

struct Reshape final : Node {
  explicit Reshape(const char* name) : name_(name) {}
  std::string_view name() const override { return name_; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    grads[0] = reshape(g, detail::spec(edge(0).shape));
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return reshape(in.tangent(0), detail::spec(in.out.shape()));
  }
  const char* name_;
};

struct Permute final : Node {
  explicit Permute(Axes axes) : axes_(std::move(axes)) {}
  std::string_view name() const override { return "permute"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    Axes inverse(axes_.size());
    for (std::size_t i = 0; i < axes_.size(); ++i)
      inverse[static_cast<std::size_t>(axes_[i])] = static_cast<std::ptrdiff_t>(i);
    grads[0] = permute(g, inverse);
  }
  Tensor jvp(const ForwardInputs& in) const override { return permute(in.tangent(0), axes_); }
  Axes axes_;
};

struct Slice final : Node {
  explicit Slice(GradRegion region) : region_(region) {}
  std::string_view name() const override { return "slice"; }
  std::optional<GradRegion> grad_region(std::size_t) const override { return region_; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (!detail::differentiable_backward()) {  // no graph recorded: the engine places the region
      grads[0] = g;
      return;
    }
    std::vector<std::int64_t> index(region_.count);
    for (std::size_t k = 0; k < region_.count; ++k)
      index[k] = static_cast<std::int64_t>(region_.start + k * region_.step);
    grads[0] = index_add(zeros(edge(0).shape, {.dtype = g.dtype()}),
                         static_cast<std::ptrdiff_t>(region_.axis), index, g);
  }
  Tensor jvp(const ForwardInputs& in) const override {
    const auto at = [](std::size_t i) { return static_cast<std::ptrdiff_t>(i); };
    const std::size_t stop =
        region_.count == 0 ? region_.start : region_.start + (region_.count - 1) * region_.step + 1;
    return slice(in.tangent(0), at(region_.axis), at(region_.start), at(stop), at(region_.step));
  }
  std::string annotation() const override {
    return "axis " + std::to_string(region_.axis) + " from " + std::to_string(region_.start);
  }
  GradRegion region_;
};

struct Identity final : Node {  // expand (the engine sums g back to x's shape), alias, clone
  enum class Kind { expand, alias, clone };
  explicit Identity(Kind kind) : kind_(kind) {}
  std::string_view name() const override {
    return kind_ == Kind::expand ? "expand" : kind_ == Kind::alias ? "alias" : "clone";
  }
  void backward(const Tensor& g, std::span<Tensor> grads) override { grads[0] = g; }
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor& t = in.tangent(0);
    if (kind_ == Kind::clone) return clone(t);
    return kind_ == Kind::expand ? expand(t, detail::spec(in.out.shape())) : t;
  }
  Kind kind_;
};

struct AsStrided final : Node {
  AsStrided(detail::Layout in, detail::Layout out, std::size_t storage)
      : in_(std::move(in)), out_(std::move(out)), storage_(storage) {}
  std::string_view name() const override { return "as_strided"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    const Tensor flat = reshape(g, {-1});
    const Tensor buffer = index_add(zeros({storage_}, {.dtype = g.dtype()}), 0,
                                    detail::storage_positions(out_), flat);
    grads[0] =
        reshape(index_select(buffer, 0, detail::storage_positions(in_)), detail::spec(in_.shape));
  }
  Tensor jvp(const ForwardInputs& in) const override {  // the backward's transpose
    const Tensor flat = reshape(in.tangent(0), {-1});
    const Tensor buffer = index_add(zeros({storage_}, {.dtype = flat.dtype()}), 0,
                                    detail::storage_positions(in_), flat);
    return reshape(index_select(buffer, 0, detail::storage_positions(out_)),
                   detail::spec(out_.shape));
  }
  detail::Layout in_, out_;
  std::size_t storage_;
};

struct Diagonal final : Node {
  Diagonal(std::ptrdiff_t offset, std::size_t axis1, std::size_t axis2)
      : offset_(offset), axis1_(axis1), axis2_(axis2) {}
  std::string_view name() const override { return "diagonal"; }
  void backward(const Tensor& g, std::span<Tensor> grads) override {
    // g written on the diagonal of zeros (a new tensor: its view is never an expanded one).
    const Tensor z = zeros(edge(0).shape, {.dtype = g.dtype()});
    diagonal(z, offset_, static_cast<std::ptrdiff_t>(axis1_), static_cast<std::ptrdiff_t>(axis2_))
        .copy_(g);
    grads[0] = z;
  }
  Tensor jvp(const ForwardInputs& in) const override {
    return diagonal(in.tangent(0), offset_, static_cast<std::ptrdiff_t>(axis1_),
                    static_cast<std::ptrdiff_t>(axis2_));
  }
  std::ptrdiff_t offset_;
  std::size_t axis1_, axis2_;
};

// A shape spec (one entry may be -1) for x's element count.
Shape resolve(const char* op, const Tensor& x, const std::vector<std::ptrdiff_t>& spec) {
  Shape shape(spec.size(), 1);
  std::size_t known = 1;
  std::ptrdiff_t infer = -1;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == -1 && infer < 0) {
      infer = static_cast<std::ptrdiff_t>(i);
    } else if (spec[i] < 0) {
      throw ShapeError(std::string(op) + ": bad target shape entry " + std::to_string(spec[i]) +
                       " at axis " + std::to_string(i) + " (sizes are >= 0, and one may be -1)");
    } else {
      shape[i] = static_cast<std::size_t>(spec[i]);
      known = detail::size_mul(op, known, shape[i]);
    }
  }
  const std::size_t n = x.numel();
  if (infer >= 0 && known != 0 && n % known == 0)
    shape[static_cast<std::size_t>(infer)] = n / known;
  if (detail::product(shape) != n || (infer >= 0 && known == 0)) {
    throw ShapeError(std::string(op) + ": cannot view " + std::to_string(n) +
                     " elements of shape " + shape_str(x.shape()) + " as [" + join(spec, ", ") +
                     "]");
  }
  return shape;
}

// x shown as `shape` without a copy, or an undefined tensor when its layout does not allow it.
Tensor view_as(const Tensor& x, const Shape& shape) {
  const detail::Layout l = detail::layout(x);
  const std::optional<Shape> strides = detail::view_strides(l.shape, l.strides, shape);
  if (!strides) return Tensor();
  return detail::make_view(x, {shape, *strides, l.offset});
}

Tensor copy_of(const Tensor& x) {
  // A view: one copy, straight from its base's storage (storage() would make and keep a copy of
  // the view, and this one a second).
  if (x.impl()->view)
    return std::visit([](auto&& a) { return Tensor(std::move(a)); },
                      detail::copy_layout(detail::plain(*x.impl()->value), detail::layout(x)));
  return std::visit([](const auto& a) { return Tensor(a); }, x.storage());
}
}  // namespace

Tensor reshape(const Tensor& x, const std::vector<std::ptrdiff_t>& shape_spec) {
  const ProfileScope profiled("reshape");
  const Shape shape = resolve("reshape", x, shape_spec);
  Tensor out = view_as(x, shape);
  if (!out.defined()) out = view_as(copy_of(x), shape);  // a copy of a view is contiguous
  record<Reshape>(out, {x}, "reshape");
  return out;
}

Tensor view(const Tensor& x, const std::vector<std::ptrdiff_t>& shape_spec) {
  const ProfileScope profiled("view");
  const Shape shape = resolve("view", x, shape_spec);
  Tensor out = view_as(x, shape);
  if (!out.defined())
    throw ShapeError("view: a tensor of shape " + shape_str(x.shape()) + " and strides " +
                     shape_str(detail::layout(x).strides) + " cannot be viewed as " +
                     shape_str(shape) +
                     " without a copy (its axes are not laid out in that order): use "
                     "reshape(), or contiguous() first");
  record<Reshape>(out, {x}, "view");
  return out;
}

Tensor permute(const Tensor& x, const Axes& axes) {
  const ProfileScope profiled("permute");
  const std::size_t rank = x.dim();
  std::vector<std::size_t> perm(rank);
  std::vector<bool> seen(rank, false);
  if (axes.size() != rank)
    throw ShapeError("permute: " + std::to_string(axes.size()) +
                     " axes given for a tensor of shape " + shape_str(x.shape()));
  for (std::size_t i = 0; i < rank; ++i) {
    perm[i] = detail::normalize_axis("permute", axes[i], rank);
    if (seen[perm[i]])
      throw ShapeError("permute: axis " + std::to_string(perm[i]) +
                       " appears twice; expected a permutation of 0.." + std::to_string(rank - 1));
    seen[perm[i]] = true;
  }
  const detail::Layout l = detail::layout(x);
  detail::Layout p{Shape(rank), Shape(rank), l.offset};
  for (std::size_t i = 0; i < rank; ++i) {
    p.shape[i] = l.shape[perm[i]];
    p.strides[i] = l.strides[perm[i]];
  }
  Tensor out = detail::make_view(x, std::move(p));
  record<Permute>(out, {x}, Axes(perm.begin(), perm.end()));
  return out;
}

Tensor slice(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t start, std::ptrdiff_t stop,
             std::ptrdiff_t step) {
  const ProfileScope profiled("slice");
  const std::size_t a = detail::normalize_axis("slice", axis, x.dim());
  if (step <= 0) throw ValueError("slice: step must be positive, got " + std::to_string(step));
  const auto length = static_cast<std::ptrdiff_t>(x.size(a));
  const auto clamp_index = [length](std::ptrdiff_t i) {
    if (i < 0) i += length;
    return std::clamp<std::ptrdiff_t>(i, 0, length);
  };
  const std::ptrdiff_t first = clamp_index(start), end = clamp_index(stop);
  GradRegion region{.axis = a, .start = static_cast<std::size_t>(first),
                    .step = static_cast<std::size_t>(step), .count = 0};
  if (end > first) region.count = static_cast<std::size_t>((end - first + step - 1) / step);
  detail::Layout l = detail::layout(x);
  l.offset += region.count > 0 ? region.start * l.strides[a] : 0;
  l.shape[a] = region.count;
  l.strides[a] *= region.step;
  Tensor out = detail::make_view(x, std::move(l));
  record<Slice>(out, {x}, region);
  return out;
}

Tensor narrow(const Tensor& x, std::ptrdiff_t axis, std::ptrdiff_t start, std::size_t length) {
  const std::size_t a = detail::normalize_axis("narrow", axis, x.dim());
  const auto size = static_cast<std::ptrdiff_t>(x.size(a));
  const std::ptrdiff_t first = start < 0 ? start + size : start;
  if (first < 0 || first > size || length > static_cast<std::size_t>(size - first))
    throw IndexError("narrow: start " + std::to_string(start) + " and length " +
                     std::to_string(length) + " leave axis " + std::to_string(a) + " of length " +
                     std::to_string(size));
  return slice(x, static_cast<std::ptrdiff_t>(a), first,
               first + static_cast<std::ptrdiff_t>(length));
}

Tensor expand(const Tensor& x, const std::vector<std::ptrdiff_t>& sizes) {
  const ProfileScope profiled("expand");
  if (sizes.size() < x.dim())
    throw ShapeError("expand: " + std::to_string(sizes.size()) + " sizes for a tensor of shape " +
                     shape_str(x.shape()) + "; expected at least " + std::to_string(x.dim()));
  const detail::Layout l = detail::layout(x);
  const std::size_t lead = sizes.size() - x.dim();
  detail::Layout e{Shape(sizes.size()), Shape(sizes.size(), 0), l.offset};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const bool old = i >= lead;
    const std::size_t have = old ? l.shape[i - lead] : 1;
    if (sizes[i] == -1 && old) {
      e.shape[i] = have;
    } else if (sizes[i] < 0) {
      throw ShapeError("expand: size " + std::to_string(sizes[i]) + " at axis " +
                       std::to_string(i) + " (-1 keeps an existing axis; a new one needs a size)");
    } else {
      e.shape[i] = static_cast<std::size_t>(sizes[i]);
      if (have != 1 && e.shape[i] != have)
        throw ShapeError("expand: axis " + std::to_string(i) + " of length " +
                         std::to_string(have) + " (shape " + shape_str(x.shape()) +
                         ") cannot become " + std::to_string(e.shape[i]) +
                         "; only axes of length 1 expand");
    }
    if (old && have == e.shape[i]) e.strides[i] = l.strides[i - lead];
  }
  Tensor out = detail::make_view(x, std::move(e));
  record<Identity>(out, {x}, Identity::Kind::expand);
  return out;
}

Tensor as_strided(const Tensor& x, const Shape& size, const Shape& stride,
                  std::optional<std::size_t> storage_offset) {
  const ProfileScope profiled("as_strided");
  if (size.size() != stride.size())
    throw ShapeError("as_strided: " + std::to_string(size.size()) + " sizes but " +
                     std::to_string(stride.size()) + " strides");
  const detail::Layout in = detail::layout(x);
  const detail::Layout out{size, stride, storage_offset.value_or(in.offset)};
  const std::size_t storage =
      std::visit([](const auto& a) { return a.size(); }, detail::plain(*x.impl()->value));
  if (detail::extent(out) > storage)
    throw ValueError("as_strided: sizes " + shape_str(size) + ", strides " + shape_str(stride) +
                     " and offset " + std::to_string(out.offset) + " reach element " +
                     std::to_string(detail::extent(out) - 1) + " of a storage of " +
                     std::to_string(storage));
  if (detail::differentiable(x))
    for (std::size_t d = 0; d < in.shape.size(); ++d)
      if (in.shape[d] > 1 && in.strides[d] == 0)
        throw ValueError("as_strided: the input's elements overlap (an expanded axis " +
                         std::to_string(d) +
                         "), so its gradient is not defined; call contiguous() first");
  Tensor view = detail::make_view(x, out);
  record<AsStrided>(view, {x}, in, out, storage);
  return view;
}

Tensor diagonal(const Tensor& x, std::ptrdiff_t offset, std::ptrdiff_t axis1,
                std::ptrdiff_t axis2) {
  const std::size_t a = detail::normalize_axis("diagonal", axis1, x.dim());
  const std::size_t b = detail::normalize_axis("diagonal", axis2, x.dim());
  if (a == b)
    throw ShapeError("diagonal: axis1 and axis2 are both " + std::to_string(a) + " of shape " +
                     shape_str(x.shape()));
  const detail::Layout l = detail::layout(x);
  const auto rows = static_cast<std::ptrdiff_t>(l.shape[a]);
  const auto cols = static_cast<std::ptrdiff_t>(l.shape[b]);
  // Entries (i, i + offset): from row max(0, -offset) and column max(0, offset).
  const std::ptrdiff_t first_row = std::max<std::ptrdiff_t>(0, -offset);
  const std::ptrdiff_t first_col = std::max<std::ptrdiff_t>(0, offset);
  const std::ptrdiff_t count =
      std::max<std::ptrdiff_t>(0, std::min(rows - first_row, cols - first_col));
  Shape shape, strides;
  for (std::size_t d = 0; d < l.shape.size(); ++d)
    if (d != a && d != b) {
      shape.push_back(l.shape[d]);
      strides.push_back(l.strides[d]);
    }
  shape.push_back(static_cast<std::size_t>(count));
  strides.push_back(l.strides[a] + l.strides[b]);
  const std::size_t start =
      count > 0 ? l.offset + static_cast<std::size_t>(first_row) * l.strides[a] +
                      static_cast<std::size_t>(first_col) * l.strides[b]
                : l.offset;
  const ProfileScope profiled("diagonal");
  Tensor out = detail::make_view(x, {shape, strides, start});
  record<Diagonal>(out, {x}, offset, a, b);
  return out;
}

std::vector<Tensor> unbind(const Tensor& x, std::ptrdiff_t axis) {
  const std::size_t a = detail::normalize_axis("unbind", axis, x.dim());
  std::vector<Tensor> parts;
  for (std::size_t i = 0; i < x.size(a); ++i)
    parts.push_back(select(x, static_cast<std::ptrdiff_t>(a), static_cast<std::ptrdiff_t>(i)));
  return parts;
}

Tensor detail::alias(const Tensor& x) {
  Tensor out = detail::make_view(x, detail::layout(x));
  record<Identity>(out, {x}, Identity::Kind::alias);
  return out;
}

Tensor clone(const Tensor& x) {
  const ProfileScope profiled("clone");
  Tensor out = copy_of(x);
  record<Identity>(out, {x}, Identity::Kind::clone);
  return out;
}

}  // namespace xgrad
