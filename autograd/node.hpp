#pragma once
/// \file
/// Node: one entry of the tape, the record of one op. It knows its inputs (edges), what it saved
/// for backward, and how to turn the gradient of its output into gradients of its inputs.
///
/// Ownership: an op's output holds its node; a node holds the nodes of its inputs (through edges)
/// and the tensors it saved. Nothing points forward in time, so there are no cycles: when the last
/// tensor of a graph goes, the graph goes (see Tape for the order of the sweep).

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "xgrad/autograd/tensor.hpp"

namespace xgrad {

class Tape;

/// Intrusive reference to a node, counted atomically: a handle may be dropped on any thread (a
/// node whose last reference goes on another thread is deleted by its own thread, see Tape).
class NodeRef {
 public:
  NodeRef() = default;
  explicit NodeRef(Node* node);
  NodeRef(const NodeRef& other) : NodeRef(other.node_) {}
  NodeRef(NodeRef&& other) noexcept : node_(other.node_) { other.node_ = nullptr; }
  NodeRef& operator=(NodeRef other) noexcept {
    std::swap(node_, other.node_);
    return *this;
  }
  ~NodeRef();

  Node* get() const { return node_; }
  Node* operator->() const { return node_; }
  explicit operator bool() const { return node_ != nullptr; }

 private:
  Node* node_ = nullptr;
};

/// float32 values (N, C, H, W) in a channel-blocked layout, oneDNN's aBcd8b or aBcd16b: stored as
/// (N, ceil(C / block), H, W, block), the channels past C zero. A convolution gives its output so
/// (autograd/ops/conv2d.cpp), batch norm and max pooling pass the layout on, and the next
/// convolution reads it without a reorder (autograd/detail/blocked.hpp).
struct BlockedArray {
  xt::xarray<float> values;  ///< (N, ceil(C / block), H, W, block)
  Shape logical;             ///< (N, C, H, W)
  std::size_t block = 0;
};
/// What a tensor's storage holds: plain values (Storage: what storage() gives), or blocked ones,
/// which every reader of plain values turns into plain ones first, in place and once
/// (detail::plain), for every tensor that shares them. The blocked ones behind a pointer, so that
/// the box of plain values keeps its size (a larger one moved the heap's later arrays about, and
/// the LSTM's products with them: 25 ms a step against 20 under the AVX2 caps,
/// docs/performance.md).
using Values = std::variant<Storage, std::unique_ptr<BlockedArray>>;
namespace detail {
/// Blocked values made plain, in place (under a lock: from any thread;
/// autograd/detail/blocked.cpp).
Storage& make_plain(Values& values);
const Shape& logical_shape(const Values& values);  // of blocked ones
/// The plain values: blocked ones made plain first (make_plain). The values, and so their
/// version, stay the same. Inline: every op's reads come here, nearly always plain.
inline Storage& plain(Values& values) {
  if (auto* s = std::get_if<Storage>(&values)) return *s;
  return make_plain(values);
}
inline const Storage& plain(const Values& values) { return plain(const_cast<Values&>(values)); }
/// The shape of the values, (N, C, H, W) for blocked ones, without making them plain.
inline const Shape& values_shape(const Values& values) {
  if (const auto* s = std::get_if<Storage>(&values))
    return std::visit([](const auto& a) -> const Shape& { return a.shape(); }, *s);
  return logical_shape(values);
}
}  // namespace detail

/// A tensor's values and their version: the count of in-place changes (mutable_value), which a
/// node compares, when it uses a tensor it saved, with the count it saw at saving.
struct StorageBox {
  template <class T>
  explicit StorageBox(xt::xarray<T>&& values)
      : data(std::in_place_type<Storage>, std::in_place_type<xt::xarray<T>>, std::move(values)) {}
  explicit StorageBox(BlockedArray&& values)
      : data(std::make_unique<BlockedArray>(std::move(values))) {}
  Values data;
  std::atomic<std::uint64_t> version{0};
};

/// Where a view's elements lie in the storage it shares: sizes, strides and an offset, all in
/// elements (autograd/detail/view.hpp holds the arithmetic on them).
struct ViewInfo {
  Shape shape;
  Shape strides;            ///< 0 along an expanded axis
  std::size_t offset = 0;
  /// The tensor whose storage this is: never a view itself (a view of a view names the root).
  std::shared_ptr<TensorImpl> base;
  /// A contiguous copy, for readers that need the values as one array (Tensor::storage()):
  /// made on first use, remade when the storage's version has moved on.
  mutable std::mutex mutex;
  mutable std::shared_ptr<const Storage> copy;
  mutable std::uint64_t copy_version = 0;
};

namespace detail {
/// A tensor's tangent in forward mode (autograd/forward_ad.hpp), for the dual level `level`: the
/// tangent itself, or, after an op whose JVP is its backward transposed (Node::jvp), that op's
/// node and its inputs' tangents, from which the tangent is made when first read.
struct ForwardGrad {
  std::uint64_t level = 0;
  Tensor tangent;
  NodeRef pending;
  std::vector<Tensor> input_tangents;
};
}  // namespace detail

struct TensorImpl {
  /// The storage: one xarray, shaped as the tensor that made it (the base of every view of it).
  std::shared_ptr<Values> value;  ///< shared so that a node can save its own output without a cycle
  /// Set for a view: its place in `value`. Null for a tensor that is its whole storage.
  std::shared_ptr<const ViewInfo> view;
  /// The version of `value`, in the same StorageBox (alive as long as `value`); shared by every
  /// tensor over the same values (detach). Null for values made without a box: not tracked.
  std::atomic<std::uint64_t>* version = nullptr;
  Tensor grad;
  NodeRef grad_fn;
  bool requires_grad = false;
  /// Called when a backward sweep has finished accumulating into grad (leaves only).
  std::vector<std::function<void(const Tensor&)>> post_accumulate_grad_hooks;
  /// register_hook's hooks with their handles: each sees, and may replace, the gradient that
  /// flows into this tensor (an op's output: through its grad_fn, which lists this tensor among
  /// its hooked outputs; a leaf: before it is added into grad).
  std::vector<std::pair<unsigned, std::function<Tensor(const Tensor&)>>> hooks;
  bool retains_grad = false;  ///< retain_grad() on an op's output: grad kept as a leaf's is
  /// For a tensor that is not a view: how many times a recorded in-place op rewrote its history
  /// (on it, or on a view of it). For a view: that count of its base when its grad_fn was made;
  /// when the base's has moved on, its grad_fn is remade from the base's (sync_history), so
  /// that every view of a storage sees the ops written into it. kDetached for a detach()ed view:
  /// its history is its own.
  std::uint64_t history = 0;
  static constexpr std::uint64_t kDetached = ~std::uint64_t{0};
  /// Forward mode: the tangent, set by make_dual or by an op on tensors with tangents.
  /// (Shared with the nodes that saved this tensor as their output: their saved() carries it.)
  std::shared_ptr<detail::ForwardGrad> forward;
};

namespace detail {
/// Remakes a view's grad_fn from its base's current history: an as_strided node over the base.
void remake_view_history(TensorImpl& view);
}  // namespace detail
/// What every reader of a tensor's grad_fn or requires_grad calls first (cheap for a tensor that
/// is not a view): a view whose base's history was rewritten takes the new one.
inline void sync_history(TensorImpl& impl) {
  if (impl.view && impl.history != TensorImpl::kDetached &&
      impl.history != impl.view->base->history)
    detail::remake_view_history(impl);
}

/// A part of an input along one axis: the entries start, start + step, ... (count of them).
struct GradRegion {
  std::size_t axis = 0, start = 0, step = 1, count = 0;
};

/// Where the gradient of one input goes: into the node that produced it, or into a leaf's .grad.
struct Edge {
  NodeRef fn;
  std::shared_ptr<TensorImpl> leaf;
  Shape shape;  ///< the input's shape: the engine sums broadcast gradients back to it
  Dtype dtype = Dtype::float32;  ///< the input's dtype: a gradient must have it

  bool requires_grad() const { return fn || leaf; }
};

/// What a node's forward-mode rule (Node::jvp) reads: the op's inputs and output, and the
/// inputs' tangents, an undefined one standing for zeros.
struct ForwardInputs {
  std::span<const Tensor* const> primals;
  std::span<const Tensor> tangents;
  const Tensor& out;

  const Tensor& primal(std::size_t i) const { return *primals[i]; }
  bool has(std::size_t i) const { return tangents[i].defined(); }
  const Tensor& tangent(std::size_t i) const { return tangents[i]; }
  /// The tangent, or zeros of the input's shape when it has none.
  Tensor tangent_or_zeros(std::size_t i) const;
};

class Node {
 public:
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  virtual ~Node();

  virtual std::string_view name() const = 0;
  /// What a picture of the graph shows beside the name: the number of x * 0.05 ("x 0.05").
  virtual std::string annotation() const { return ""; }
  /// The composite op (mean, var, ...) this node was recorded inside, or null, and which call of
  /// it: to_dot can draw each call as one box.
  const char* composite() const { return composite_; }
  std::uint64_t composite_call() const { return composite_call_; }
  /// Given the gradient of the output, fills grads[i] for each input i with needs_grad(i), written
  /// with tensor ops (so that create_graph records them). A gradient may keep a broadcast shape:
  /// the engine sums it back to the input's shape.
  virtual void backward(const Tensor& grad, std::span<Tensor> grads) = 0;
  /// A node whose input gradient covers only a region of the input (slice) says which here; its
  /// backward then gives just that region's gradient, when no graph is being recorded
  /// (create_graph false). The engine adds it into the region of the input's gradient, a buffer
  /// it allocates once per sweep: T slices of one tensor cost O(size + T slice) in the backward,
  /// not O(T size). Under create_graph the backward gives the whole gradient, as any node's.
  virtual std::optional<GradRegion> grad_region(std::size_t /*input*/) const {
    return std::nullopt;
  }

  /// Forward mode: the output's tangent, J u, given the inputs' tangents u (ForwardInputs),
  /// written with tensor ops; the result may keep a broadcast shape (it is expanded to the
  /// output's). The default returns an undefined tensor: the JVP is then the backward transposed,
  /// J u = d/dw <J^T w, u> (J^T w linear in w), made from the saved tensors when the tangent is
  /// first read; exact, at the price of two backward passes. A node whose backward is not written
  /// in tensor ops under GradMode (so that it records) must give a rule of its own.
  virtual Tensor jvp(const ForwardInputs& /*in*/) const { return {}; }

  /// A node that averages over N terms (a loss with the mean reduction) gives N: the verifier tries
  /// a missing or a doubled 1/N there. 0 for any other node.
  virtual double averaged_over() const { return 0; }

  std::size_t num_inputs() const { return edges_.size(); }
  bool needs_grad(std::size_t input) const {
    return forward_needs_ ? (*forward_needs_)[input] : edges_[input].requires_grad();
  }
  const Edge& edge(std::size_t input) const { return edges_[input]; }

  /// Keeps tensors for backward. Saving the node's own output keeps only its value, not a
  /// reference to the output tensor (which holds this node).
  void save(std::initializer_list<std::reference_wrapper<const Tensor>> tensors);
  Tensor saved(std::size_t i) const;
  std::size_t saved_bytes() const;
  bool released() const { return released_; }
  /// Lists an output of this node that has register_hook hooks or retains its gradient: the
  /// engine runs them on the output's gradient before this node's backward (once per output).
  void list_hooked_output(const std::shared_ptr<TensorImpl>& output);
  /// The stack of the forward call that created this node: recorded only under DetectAnomalyGuard.
  const std::string& created_at() const;

 private:
  friend class NodeRef;
  friend class Tape;
  friend void collect_dead(Node*);
  friend class Engine;
  friend void attach(Tensor&, Node*, std::span<const Tensor* const>);
  friend void attach_forward(Node*, std::span<const Tensor* const>);
  friend Tensor transposed_jvp(Node&, const Tensor&, std::span<const Tensor>);
  const char* composite_ = nullptr;
  std::uint64_t composite_call_ = 0;

  struct Saved {
    std::shared_ptr<TensorImpl> tensor;  ///< an input
    std::shared_ptr<Values> output;      ///< or the value of this node's output
    std::shared_ptr<detail::ForwardGrad> forward;   ///< and the output's tangent, if any
    std::atomic<std::uint64_t>* version = nullptr;  ///< the values' version counter
    std::uint64_t at = 0;                           ///< its count when saved
  };

  void release();  ///< drops saved tensors after backward; a second backward then fails

  std::atomic<int> refs_{0};
  std::atomic<Tape*> tape_{nullptr};  ///< the tape of the thread that built it; null once it ended
  std::size_t index_ = 0;  ///< position on the tape (creation order)
  Node* next_dead_ = nullptr;
  bool released_ = false;
  std::vector<Edge> edges_;
  /// While the default jvp runs the backward: which inputs have a tangent (needs_grad's answer).
  const std::vector<bool>* forward_needs_ = nullptr;
  bool forward_only_ = false;  ///< made for a tangent only: not on the tape (attach_forward)
  std::vector<Saved> saved_;
  Tensor grad_;  ///< gradient of the output, accumulated during a backward sweep
  /// Outputs with register_hook hooks or retain_grad(): their hooks see grad_ before backward.
  std::vector<std::weak_ptr<TensorImpl>> hooked_;
  std::unique_ptr<std::string> created_at_;
};

/// Deletes a node whose last reference went, and the older nodes that go with it, on this thread
/// (iteratively: a chain of a million nodes does not overflow the stack).
void collect_dead(Node* node);

/// Marks the nodes recorded while it lives as parts of one call of the composite op `name` (a
/// string literal); inside another one, the outer one counts. Composite ops open one.
class CompositeScope {
 public:
  explicit CompositeScope(const char* name);
  ~CompositeScope();
  CompositeScope(const CompositeScope&) = delete;
  CompositeScope& operator=(const CompositeScope&) = delete;

 private:
  bool outer_ = false;
};

bool should_record(std::span<const Tensor* const> inputs);

namespace detail {
/// Set once any leaf gets a post-accumulate-grad hook: only then does a backward sweep count, per
/// hooked leaf, the ops that use it (autograd/engine.cpp).
void note_post_accumulate_grad_hook();
}  // namespace detail
void attach(Tensor& out, Node* node, std::span<const Tensor* const> inputs);

/// Forward mode (autograd/forward_ad.hpp): gives the edges of a node that is not recorded (no
/// input requires grad) their shapes and dtypes, for its default jvp.
void attach_forward(Node* node, std::span<const Tensor* const> inputs);
/// The default Node::jvp: the tangent of node's output `out` from its inputs' tangents.
Tensor transposed_jvp(Node& node, const Tensor& out, std::span<const Tensor> tangents);

namespace detail {
/// Whether a dual level is open and some input has a tangent at it.
bool has_tangent(std::span<const Tensor* const> inputs);
/// Sets out's tangent from node's rule (Node::jvp) or, when it has none, leaves it pending on the
/// node (which then must outlive the call: the caller saves its tensors on it). Returns whether it
/// is pending.
bool forward_tangent(Tensor& out, Node& node, std::span<const Tensor* const> inputs);
}  // namespace detail

/// Records `out` as the result of a new node N(args...) applied to `inputs`, when grad mode is on,
/// some input requires grad and `out` is floating-point (an integer or bool result, argmax's or a
/// cast's, is a constant). Returns the node, to save tensors on, or nullptr. Under a dual level
/// the node also gives out its tangent (N::jvp), when some input has one: the node is then made,
/// and returned, even when nothing requires grad, if its tangent waits on its saved tensors.
template <class N, class... Args>
N* record_node(Tensor& out, std::span<const Tensor* const> inputs, Args&&... args) {
  if (!is_floating_point(out.dtype())) return nullptr;
  const bool grad = should_record(inputs);
  const bool forward = detail::has_tangent(inputs);
  if (!grad && !forward) return nullptr;
  auto node = std::make_unique<N>(std::forward<Args>(args)...);
  N* made = node.get();
  if (grad) {
    attach(out, made, inputs);  // may throw (anomaly mode, another thread's input): node deletes
    node.release();             // the tape holds it now
    if (forward) detail::forward_tangent(out, *made, inputs);
    return made;
  }
  attach_forward(made, inputs);
  if (!detail::forward_tangent(out, *made, inputs)) return nullptr;  // the rule gave it: done
  node.release();  // out's pending tangent holds it now
  return made;
}

template <class N, class... Args>
N* record(Tensor& out, std::initializer_list<std::reference_wrapper<const Tensor>> inputs,
          Args&&... args) {
  const Tensor* ptrs[4];
  std::size_t n = 0;
  for (const Tensor& t : inputs) ptrs[n++] = &t;
  return record_node<N>(out, std::span<const Tensor* const>(ptrs, n), std::forward<Args>(args)...);
}

}  // namespace xgrad
