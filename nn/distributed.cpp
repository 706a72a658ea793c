// Data-parallel training over MPI. The gradients of a module are packed into buckets (reverse
// registration order: the order the backward sweep finishes them); each bucket is summed over the
// ranks (MPI_Iallreduce) as soon as all its gradients are final, which the engine says through
// the parameters' post-accumulate-grad hooks; a callback queued on the engine waits for the sums
// at the end of the sweep and writes the averages back into the .grad tensors.
//
// Every rank must start the same collectives in the same order: buckets are sent strictly in
// their index order, whatever order their gradients come in. Each bucket carries, after the
// gradients, one count per parameter (1 where this rank has a gradient): after the sum it says
// whether any rank had one, so that a gradient no rank computed stays undefined.
#include "nn/distributed.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/error.hpp"
#include "autograd/node.hpp"
#include "autograd/xtensor.hpp"

#ifdef XGRAD_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (Open MPI's deprecated C++ bindings otherwise)
#include <mpi.h>
#endif

namespace xgrad::nn {

// ---- the transport: the only MPI calls ----------------------------------------------------------

namespace {

#ifdef XGRAD_MPI
using Request = MPI_Request;
const Request no_request = MPI_REQUEST_NULL;
MPI_Datatype mpi_type(Dtype dtype) { return dtype == Dtype::float64 ? MPI_DOUBLE : MPI_FLOAT; }
#else
using Request = int;
constexpr Request no_request = 0;
#endif

std::size_t dtype_size(Dtype dtype) { return dtype == Dtype::float64 ? 8 : 4; }

int checked_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw ValueError(std::string(what) + ": " + std::to_string(n) +
                     " values in one message; MPI counts stop at " + std::to_string(INT_MAX));
  return static_cast<int>(n);
}

#ifdef XGRAD_MPI
// The raw values of a tensor, for MPI to read and write.
void* data_of(const Tensor& t) {
  return t.dtype() == Dtype::float64 ? static_cast<void*>(t.mutable_value<double>().data())
                                     : static_cast<void*>(t.mutable_value<float>().data());
}
#endif

}  // namespace

// ---- the process group ------------------------------------------------------------------------

namespace distributed {

bool available() {
#ifdef XGRAD_MPI
  return true;
#else
  return false;
#endif
}

bool is_initialized() {
#ifdef XGRAD_MPI
  int started = 0, finished = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finished);
  return started && !finished;
#else
  return false;
#endif
}

#ifdef XGRAD_MPI
namespace {
bool session_open = false;
}  // namespace
#endif

Session::Session([[maybe_unused]] int& argc, [[maybe_unused]] char**& argv) {
#ifdef XGRAD_MPI
  if (session_open) throw ValueError("distributed::Session: one is open already (one per process)");
  int finished = 0;
  MPI_Finalized(&finished);
  if (finished)
    throw ValueError("distributed::Session: MPI was finalized already; a process starts it once");
  if (!is_initialized()) {
    // FUNNELED: xgrad's own threads (OpenMP loops, oneDNN) never call MPI.
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    owns_mpi_ = true;
  }
  session_open = true;
#else
  throw ValueError(
      "distributed::Session: xgrad was built without MPI (install libopenmpi-dev and openmpi-bin, "
      "then build again: ./dev build)");
#endif
}

Session::~Session() {
#ifdef XGRAD_MPI
  session_open = false;
  if (owns_mpi_ && is_initialized()) MPI_Finalize();
#endif
}

int rank() {
  int r = 0;
#ifdef XGRAD_MPI
  if (is_initialized()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
#endif
  return r;
}

int world_size() {
  int n = 1;
#ifdef XGRAD_MPI
  if (is_initialized()) MPI_Comm_size(MPI_COMM_WORLD, &n);
#endif
  return n;
}

void barrier() {
#ifdef XGRAD_MPI
  if (is_initialized()) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void broadcast(const Tensor& tensor, [[maybe_unused]] int root) {
  if (!tensor.defined()) throw ValueError("distributed::broadcast: the tensor is undefined");
  if (root < 0 || root >= world_size())
    throw ValueError("distributed::broadcast: root " + std::to_string(root) + " of " +
                     std::to_string(world_size()) + " ranks");
#ifdef XGRAD_MPI
  if (world_size() == 1) return;
  MPI_Bcast(data_of(tensor), checked_count(tensor.numel(), "distributed::broadcast"),
            mpi_type(tensor.dtype()), root, MPI_COMM_WORLD);
#endif
}

void all_reduce_sum(const Tensor& tensor) {
  if (!tensor.defined()) throw ValueError("distributed::all_reduce_sum: the tensor is undefined");
#ifdef XGRAD_MPI
  if (world_size() == 1) return;
  MPI_Allreduce(MPI_IN_PLACE, data_of(tensor),
                checked_count(tensor.numel(), "distributed::all_reduce_sum"),
                mpi_type(tensor.dtype()), MPI_SUM, MPI_COMM_WORLD);
#endif
}

std::vector<std::string> all_gather(const std::string& bytes) {
  const int ranks = world_size();
  if (ranks == 1) return {bytes};
  std::vector<std::string> out(static_cast<std::size_t>(ranks));
#ifdef XGRAD_MPI
  // The lengths first (one number each, so that this step always matches), then the bytes.
  const long long mine = static_cast<long long>(bytes.size());
  std::vector<long long> lengths(static_cast<std::size_t>(ranks));
  MPI_Allgather(&mine, 1, MPI_LONG_LONG, lengths.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD);
  for (int r = 0; r < ranks; ++r)
    if (lengths[static_cast<std::size_t>(r)] != mine)
      throw ValueError("distributed::all_gather: rank " + std::to_string(r) + " gave " +
                       std::to_string(lengths[static_cast<std::size_t>(r)]) + " bytes, rank " +
                       std::to_string(rank()) + " " + std::to_string(mine) +
                       "; every rank must give the same number");
  const int count = checked_count(bytes.size(), "distributed::all_gather");
  std::string all(bytes.size() * static_cast<std::size_t>(ranks), '\0');
  MPI_Allgather(bytes.data(), count, MPI_CHAR, all.data(), count, MPI_CHAR, MPI_COMM_WORLD);
  for (std::size_t r = 0; r < out.size(); ++r)
    out[r] = all.substr(r * bytes.size(), bytes.size());
#endif
  return out;
}

void abort(int status) {
  if (status == 0) status = 1;
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef XGRAD_MPI
  // Not MPI_Abort: on Debian 12's Open MPI 4.1.4 with PMIx 4.2.2, the message MPI_Abort sends to
  // mpirun often arrives garbled ("ORTE_ERROR_LOG: ... in file show_help.c") and, now and then,
  // crashes mpirun (exit 139: twice in CI). A rank that leaves before MPI_Finalize with a
  // non-zero status makes mpirun end the others and return that status
  // (orte_abort_on_non_zero_status, its default); mpirun prints its own message about it.
  if (is_initialized()) std::_Exit(status);
#endif
  std::exit(status);
}

}  // namespace distributed

// ---- DistributedDataParallel ------------------------------------------------------------------

namespace {

// Gradients of one dtype, sent as one message: the values, then one count per parameter.
struct Bucket {
  Dtype dtype = Dtype::float32;
  std::vector<std::size_t> params;   // indices into State::params
  std::vector<std::size_t> offsets;  // where each one's values start
  std::size_t values = 0;
  std::vector<float> f32;
  std::vector<double> f64;
  std::size_t pending = 0;  // parameters whose gradient is not final yet in this backward
  Request request = no_request;
  std::size_t window_offset = 0;  // where its values sit in each rank's part of a shared window
  void* shared = nullptr;         // this rank's part there, instead of f32 or f64

  void* data() {
    if (shared) return shared;
    return dtype == Dtype::float64 ? static_cast<void*>(f64.data()) : f32.data();
  }
  template <class T>
  T* values_of() {
    return static_cast<T*>(data());
  }
  std::size_t count() const { return values + params.size(); }
  std::size_t bytes() const { return count() * dtype_size(dtype); }
};

// Which gradient went into a bucket: the tensor and its version (in-place additions count up).
struct SentGrad {
  const TensorImpl* grad = nullptr;
  std::uint64_t version = 0;
  bool operator==(const SentGrad&) const = default;
};
SentGrad sent_grad(const Tensor& param) {
  const Tensor g = param.grad();
  if (!g.defined()) return {};
  return {g.impl(), g.impl()->version ? g.impl()->version->load() : 0};
}

template <class T>
void pack(Bucket& b, const std::vector<Tensor>& params, std::vector<SentGrad>& sent) {
  T* buf = b.values_of<T>();
  for (std::size_t j = 0; j < b.params.size(); ++j) {
    const Tensor& p = params[b.params[j]];
    const Tensor g = p.grad();
    sent[b.params[j]] = sent_grad(p);
    T* at = buf + b.offsets[j];
    if (g.defined()) {
      if (g.dtype() != p.dtype() || g.shape() != p.shape())
        throw AutogradError("DistributedDataParallel: a parameter of shape " +
                            shape_str(p.shape()) + " has a gradient of shape " +
                            shape_str(g.shape()) + " and dtype " +
                            std::string(dtype_name(g.dtype())));
      const T* src = g.value<T>().data();
      std::copy(src, src + p.numel(), at);
    } else {
      std::fill(at, at + p.numel(), T(0));
    }
    buf[b.values + j] = g.defined() ? T(1) : T(0);
  }
}

// The sums divided by the number of ranks, into .grad where some rank had a gradient.
template <class T>
void unpack(Bucket& b, const std::vector<Tensor>& params, int world) {
  const T* buf = b.values_of<T>();
  const T scale = T(1) / static_cast<T>(world);
  for (std::size_t j = 0; j < b.params.size(); ++j) {
    if (buf[b.values + j] == T(0)) continue;
    const Tensor& p = params[b.params[j]];
    Tensor g = p.grad();
    if (!g.defined() || g.requires_grad()) {
      g = Tensor(xt::xarray<T>::from_shape(p.shape()));
      p.set_grad(g);
    }
    T* dst = g.mutable_value<T>().data();
    const T* src = buf + b.offsets[j];
    for (std::size_t i = 0, n = p.numel(); i < n; ++i) dst[i] = src[i] * scale;
  }
}

}  // namespace

#ifdef XGRAD_MPI
// The buckets summed in memory that the ranks share, where every rank runs on one machine: each
// rank packs its buckets into its own part of an MPI-3 shared window; then, for each bucket summed
// by a blocking call, rank r sums slice r of it over every rank's part (in rank order, so every
// rank gets the same bits) into its own part, and copies the other slices' sums from the other
// ranks' parts. Between the steps, a barrier on the machine's ranks with MPI_Win_sync on either
// side (the window's memory model: unified, locked once for its whole life). On two ranks on one
// machine this took 74 us against MPI_Allreduce's 93 for 0.94 MB, 481 against 698 us for 3.4 MB (a
// throwaway program, copying each buffer in and out; here the buckets are packed in place).
class SharedSums {
 public:
  // Null unless every rank runs on this machine.
  static std::unique_ptr<SharedSums> open(std::vector<Bucket>& buckets) {
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int ranks = 0, world = 0;
    MPI_Comm_size(node, &ranks);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (ranks != world) {  // the same answer on every rank: no rank allocates
      MPI_Comm_free(&node);
      return nullptr;
    }
    std::size_t bytes = 0;
    for (Bucket& b : buckets) {
      b.window_offset = bytes;
      bytes += (b.bytes() + 63) / 64 * 64;  // each bucket on its own cache lines
    }
    auto sums = std::unique_ptr<SharedSums>(new SharedSums(node, ranks));
    void* mine = nullptr;
    MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes), 1, MPI_INFO_NULL, node, &mine,
                            &sums->window_);
    MPI_Comm_rank(node, &sums->rank_);
    for (int r = 0; r < ranks; ++r) {
      MPI_Aint size = 0;
      int unit = 0;
      void* part = nullptr;
      MPI_Win_shared_query(sums->window_, r, &size, &unit, &part);
      sums->parts_[static_cast<std::size_t>(r)] = static_cast<char*>(part);
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, sums->window_);
    for (Bucket& b : buckets)
      b.shared = sums->parts_[static_cast<std::size_t>(sums->rank_)] + b.window_offset;
    return sums;
  }
  ~SharedSums() {
    if (!distributed::is_initialized()) return;  // MPI already ended: the window went with it
    // Freeing the window is collective: a rank unwinding from an error would wait there for the
    // others instead of reaching distributed::abort. It leaves the window to MPI_Finalize.
    if (std::uncaught_exceptions() > 0) return;
    if (window_ != MPI_WIN_NULL) {
      MPI_Win_unlock_all(window_);
      MPI_Win_free(&window_);
    }
    MPI_Comm_free(&node_);
  }
  SharedSums(const SharedSums&) = delete;
  SharedSums& operator=(const SharedSums&) = delete;

  // Every rank's bucket b summed, into every rank's part; `last`: no other bucket follows before
  // the next backward packs this one again, so the ranks wait for each other at the end.
  void sum(const Bucket& b, bool last) {
    if (b.dtype == Dtype::float64)
      sum<double>(b);
    else
      sum<float>(b);
    if (last) fence();
  }

 private:
  SharedSums(MPI_Comm node, int ranks) : node_(node), parts_(static_cast<std::size_t>(ranks)) {}

  // What each rank wrote before it is seen by every rank after it.
  void fence() {
    MPI_Win_sync(window_);
    MPI_Barrier(node_);
    MPI_Win_sync(window_);
  }
  template <class T>
  T* part(std::size_t r, const Bucket& b) {
    return reinterpret_cast<T*>(parts_[r] + b.window_offset);
  }
  template <class T>
  void sum(const Bucket& b) {
    const std::size_t n = b.count(), ranks = parts_.size(), me = static_cast<std::size_t>(rank_);
    const auto slice = [&](std::size_t r) { return std::pair{n * r / ranks, n * (r + 1) / ranks}; };
    fence();  // every part packed
    const auto [lo, hi] = slice(me);
    T* mine = part<T>(me, b);
    if (ranks == 2) {  // a + b = b + a: both ranks get the same bits adding in place
      const T* other = part<T>(1 - me, b);
      for (std::size_t i = lo; i < hi; ++i) mine[i] += other[i];
    } else {  // ((part 0 + part 1) + part 2) + ...
      std::vector<T> s(part<T>(0, b) + lo, part<T>(0, b) + hi);
      for (std::size_t r = 1; r < ranks; ++r) {
        const T* from = part<T>(r, b) + lo;
        for (std::size_t i = 0; i < s.size(); ++i) s[i] += from[i];
      }
      std::copy(s.begin(), s.end(), mine + lo);
    }
    fence();  // every slice summed
    for (std::size_t r = 0; r < ranks; ++r)
      if (r != me) {
        const auto [from, to] = slice(r);
        std::copy(part<T>(r, b) + from, part<T>(r, b) + to, mine + from);
      }
  }

  MPI_Comm node_;
  MPI_Win window_ = MPI_WIN_NULL;
  int rank_ = 0;
  std::vector<char*> parts_;
};
#endif

struct DistributedDataParallel::State {
  std::vector<Tensor> params;
  std::vector<std::string> names;
  std::vector<std::size_t> bucket_of;
  std::vector<Bucket> buckets;
  DistributedOptions options;
  int world = 1;
  bool sync = true;
#ifdef XGRAD_MPI
  std::unique_ptr<SharedSums> shared;  // null: the buckets go through MPI_Allreduce
#endif

  // This backward's progress.
  bool in_backward = false;
  std::vector<char> ready;
  std::vector<SentGrad> sent;  // what each parameter's bucket carried
  std::size_t next = 0;        // the next bucket to send: those before it are sent
  std::string late;            // a parameter whose gradient came after its bucket had gone
  DistributedStats stats, last;

  // The leaves the outputs of the wrapper's forwards since the last backward depend on, when some
  // forward went through the wrapper with gradients on.
  std::unordered_set<const TensorImpl*> used;
  bool used_known = false;

  void begin(const std::weak_ptr<State>& self);
  void on_final(std::size_t i);
  void send(Bucket& b);
  void send_ready();
  void finish();
};

void DistributedDataParallel::State::begin(const std::weak_ptr<State>& self) {
#ifdef XGRAD_MPI
  // Sums still under way from a sweep that threw (every rank started them): let them end.
  for (Bucket& b : buckets) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
#endif
  in_backward = true;
  next = 0;
  late.clear();
  stats = {};
  std::fill(ready.begin(), ready.end(), 0);
  for (Bucket& b : buckets) b.pending = b.params.size();
  // What gets no gradient in this sweep is final now: frozen parameters, and those the output of
  // the forward did not use (their .grad may hold what earlier backwards accumulated).
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!params[i].requires_grad() || (used_known && !used.count(params[i].impl()))) on_final(i);
  // When the sweep throws, the engine drops the callback without running it: the token's
  // destructor then ends this backward, so that the next one begins afresh.
  struct Token {
    std::weak_ptr<State> state;
    explicit Token(std::weak_ptr<State> s) : state(std::move(s)) {}
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() {
      if (const auto s = state.lock()) s->in_backward = false;
    }
  };
  queue_backward_callback([self, token = std::make_shared<Token>(self)] {
    if (const auto state = self.lock()) state->finish();
  });
}

void DistributedDataParallel::State::on_final(std::size_t i) {
  if (ready[i]) {  // taken as unused, yet passed by the sweep: did its gradient change since?
    const bool changed = bucket_of[i] < next && !(sent_grad(params[i]) == sent[i]);
    if (changed && late.empty()) late = names[i];
    return;
  }
  ready[i] = 1;
  --buckets[bucket_of[i]].pending;
  if (options.overlap && in_backward) send_ready();
}

void DistributedDataParallel::State::send_ready() {
  const auto start = std::chrono::steady_clock::now();
  while (next < buckets.size() && buckets[next].pending == 0) {
    send(buckets[next++]);
    ++stats.sent_during_backward;
  }
  stats.send_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
#ifdef XGRAD_MPI
  // Lets MPI move the messages on while the sweep goes on (two ranks on two cores have no spare
  // core for a progress thread).
  for (std::size_t k = 0; k < next; ++k) {
    int done = 0;
    MPI_Test(&buckets[k].request, &done, MPI_STATUS_IGNORE);
  }
#endif
}

void DistributedDataParallel::State::send(Bucket& b) {
  stats.bytes += b.values * dtype_size(b.dtype);
  if (world == 1) {  // the average of one rank's gradients: themselves, left where they are
    for (std::size_t i : b.params) sent[i] = sent_grad(params[i]);
    return;
  }
  if (b.dtype == Dtype::float64)
    pack<double>(b, params, sent);
  else
    pack<float>(b, params, sent);
#ifdef XGRAD_MPI
  // Open MPI's non-blocking allreduce (libnbc) took twice as long as the blocking one here: it
  // serves only where there may be backward work left to hide it behind, not for the last bucket.
  // The choice must not depend on when a rank sends (a blocking collective on one rank does not
  // match a non-blocking one on another): it depends on the bucket and the options alone. The
  // blocking sums go through the shared window where there is one: summed there during the sweep
  // instead, the ranks would meet at every bucket (the CNN's step lost what the overlap hides).
  const bool overlapped = options.overlap && &b != &buckets.back();
  if (overlapped)
    MPI_Iallreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.count()), mpi_type(b.dtype), MPI_SUM,
                   MPI_COMM_WORLD, &b.request);
  else if (shared)
    shared->sum(b, &b == &buckets.back());
  else
    MPI_Allreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.count()), mpi_type(b.dtype), MPI_SUM,
                  MPI_COMM_WORLD);
#endif
}

void DistributedDataParallel::State::finish() {
  const auto start = std::chrono::steady_clock::now();
  in_backward = false;
  while (next < buckets.size()) send(buckets[next++]);  // what is left: no overlap, or never final
  for (Bucket& b : buckets) {
#ifdef XGRAD_MPI
    MPI_Wait(&b.request, MPI_STATUS_IGNORE);
#endif
    if (world == 1) continue;
    if (b.dtype == Dtype::float64)
      unpack<double>(b, params, world);
    else
      unpack<float>(b, params, world);
  }
  stats.buckets = buckets.size();
#ifdef XGRAD_MPI
  stats.shared_memory = shared != nullptr;
#endif
  used.clear();
  used_known = false;
  stats.wait_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  last = stats;
  if (!late.empty())
    throw AutogradError(
        "DistributedDataParallel: parameter '" + late + "'" +
        " was used by this backward but not by the output of the wrapper's forward, so its "
        "gradient was sent before it was final; compute every differentiated output through the "
        "wrapper's forward");
}

namespace {

// Adds the leaves the graph of `output` reaches.
void add_leaves(const Tensor& output, std::unordered_set<const TensorImpl*>& leaves) {
  if (!output.grad_fn()) {
    leaves.insert(output.impl());
    return;
  }
  std::vector<const Node*> stack = {output.grad_fn()};
  std::unordered_set<const Node*> seen = {output.grad_fn()};
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    for (std::size_t k = 0; k < node->num_inputs(); ++k) {
      const Edge& e = node->edge(k);
      if (e.leaf) leaves.insert(e.leaf.get());
      if (e.fn && seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
}

// The ranks must hold the same parameters (count, shapes and dtypes) and options, which decide
// the buckets and how each is sent: summarized in two numbers.
void check_same_parameters(const std::vector<Tensor>& params, const DistributedOptions& options) {
  std::uint64_t mine[2] = {params.size(), 1469598103934665603ull};
  const auto mix = [&](std::uint64_t v) { mine[1] = (mine[1] ^ v) * 1099511628211ull; };
  for (const Tensor& p : params) {
    for (std::size_t d : p.shape()) mix(d);
    mix(static_cast<std::uint64_t>(p.dtype()));
    mix(0xffu);  // between parameters
  }
  mix(options.bucket_bytes);
  mix(options.overlap ? 1u : 0u);
  mix(options.shared_memory ? 1u : 0u);
#ifdef XGRAD_MPI
  const int world = distributed::world_size();
  if (world == 1) return;
  std::vector<std::uint64_t> all(2 * static_cast<std::size_t>(world));
  MPI_Allgather(mine, 2, MPI_UINT64_T, all.data(), 2, MPI_UINT64_T, MPI_COMM_WORLD);
  for (int r = 1; r < world; ++r)
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
      throw ValueError(
          "DistributedDataParallel: rank " + std::to_string(r) + " holds " +
          std::to_string(all[2 * r]) + " parameters, rank 0 " + std::to_string(all[0]) +
          (all[2 * r] == all[0] ? " (their shapes or dtypes differ, or the DistributedOptions)"
                                : "") +
          "; every rank must build the same model");
#endif
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<Module> module,
                                                 DistributedOptions options)
    : module_(std::move(module)), state_(std::make_shared<State>()) {
  if (!module_) throw ValueError("DistributedDataParallel: the module is null");
  register_module("module", module_);
  State& s = *state_;
  s.options = options;
  s.world = distributed::world_size();
  for (auto& [name, p] : module_->named_parameters()) {
    s.names.push_back(name);
    s.params.push_back(p);
  }
  check_same_parameters(s.params, options);
  for (const Tensor& p : s.params) distributed::broadcast(p);
  for (const Tensor& b : module_->buffers()) distributed::broadcast(b);

  // Buckets from the last parameter back: a new one when the dtype changes or the bytes would
  // pass the cap (a parameter larger than the cap gets a bucket of its own).
  s.bucket_of.resize(s.params.size());
  std::size_t bytes = 0;
  for (std::size_t i = s.params.size(); i-- > 0;) {
    const Tensor& p = s.params[i];
    const std::size_t size = p.numel() * dtype_size(p.dtype());
    if (s.buckets.empty() || s.buckets.back().dtype != p.dtype() ||
        (bytes > 0 && bytes + size > options.bucket_bytes)) {
      s.buckets.emplace_back();
      s.buckets.back().dtype = p.dtype();
      bytes = 0;
    }
    Bucket& b = s.buckets.back();
    b.params.push_back(i);
    b.offsets.push_back(b.values);
    b.values += p.numel();
    bytes += size;
    s.bucket_of[i] = s.buckets.size() - 1;
  }
  for (Bucket& b : s.buckets) checked_count(b.count(), "DistributedDataParallel");
#ifdef XGRAD_MPI
  if (s.world > 1 && options.shared_memory) s.shared = SharedSums::open(s.buckets);
#endif
  for (Bucket& b : s.buckets) {
    if (b.shared) continue;
    if (b.dtype == Dtype::float64)
      b.f64.resize(b.count());
    else
      b.f32.resize(b.count());
  }
  s.ready.assign(s.params.size(), 0);
  s.sent.resize(s.params.size());

  const std::weak_ptr<State> weak = state_;
  for (std::size_t i = 0; i < s.params.size(); ++i)
    s.params[i].register_post_accumulate_grad_hook([weak, i](const Tensor&) {
      const auto state = weak.lock();
      if (!state || !state->sync) return;
      if (!state->in_backward) state->begin(weak);
      state->on_final(i);
    });
}

DistributedDataParallel::~DistributedDataParallel() = default;

Tensor DistributedDataParallel::forward(const Tensor& input) {
  Tensor output = (*module_)(input);
  if (output.requires_grad()) {  // not under NoGradGuard
    add_leaves(output, state_->used);
    state_->used_known = true;
  }
  return output;
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp)
    : ddp_(ddp), before_(ddp.state_->sync) {
  ddp_.state_->sync = false;
}

DistributedDataParallel::NoSync::~NoSync() { ddp_.state_->sync = before_; }

DistributedStats DistributedDataParallel::last_stats() const { return state_->last; }

std::string DistributedDataParallel::extra_repr() const {
  return "world_size=" + std::to_string(state_->world) +
         ", buckets=" + std::to_string(state_->buckets.size()) +
         (state_->options.overlap ? "" : ", overlap=false") +
         (state_->options.shared_memory ? "" : ", shared_memory=false");
}

}  // namespace xgrad::nn
