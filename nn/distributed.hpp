#pragma once
/// \file
/// Data-parallel training over MPI, as PyTorch's DistributedDataParallel: every process (rank)
/// holds a copy of the model, takes its own shard of each batch (DataLoaderOptions::num_replicas,
/// rank), and after backward() the gradients are averaged across the ranks, so that every rank's
/// optimizer takes the same step. Start the program under `mpirun -np N`; see docs/distributed.md.
///
///     nn::distributed::Session mpi(argc, argv);         // MPI_Init ... MPI_Finalize
///     auto ddp = std::make_shared<nn::DistributedDataParallel>(model);  // rank 0's weights
///     loss = criterion((*ddp)(x), y);  loss.backward();  // gradients averaged here
///     optimizer.step();
///
/// MPI appears in nn/distributed.cpp only. Without MPI (xgrad built where libopenmpi-dev was not
/// installed) the functions behave as a single process and Session throws.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

namespace distributed {

/// Whether xgrad was built with MPI.
bool available();

/// MPI for the life of the object (MPI_Init_thread ... MPI_Finalize), once per process. Started
/// without mpirun, the program is a world of one rank. ValueError when xgrad was built without
/// MPI, or when a Session exists already.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  bool owns_mpi_ = false;  // false when the program had started MPI itself
};

bool is_initialized();  ///< MPI is running (a Session, or the program's own MPI_Init)
int rank();             ///< this process's rank: 0 without a Session
int world_size();       ///< the number of ranks: 1 without a Session
void barrier();
/// Copies rank root's values of `tensor` into every rank's, in place (same shape and dtype
/// everywhere).
void broadcast(const Tensor& tensor, int root = 0);
/// Replaces `tensor` by its sum over the ranks, in place.
void all_reduce_sum(const Tensor& tensor);
/// Every rank's `bytes`, in rank order (MPI_Allgather). The ranks must give the same number of
/// bytes: the lengths are compared first, and a difference is a ValueError on every rank.
std::vector<std::string> all_gather(const std::string& bytes);
/// Ends every rank of the job with `status` (1 if given 0): what a rank that failed calls, so
/// that the others, waiting for it in a collective, do not wait forever. The rank leaves at once
/// (stdout and stderr flushed, no MPI_Finalize) and mpirun ends the others and returns `status`;
/// under another launcher, make it end the job when a rank fails (srun --kill-on-bad-exit).
/// Plain exit without a Session.
[[noreturn]] void abort(int status);

}  // namespace distributed

struct DistributedOptions {
  /// Gradients are sent in buckets of about this many bytes, each as soon as all its gradients
  /// are final during the backward sweep: smaller buckets start sending earlier; each costs a
  /// message. PyTorch's 25 MB suits GPUs; between processes of one machine a message is cheap,
  /// and 1 MB lets a large layer's gradient go by itself while the layers below are differentiated.
  std::size_t bucket_bytes = 1u << 20;
  /// false: every bucket is sent after the sweep instead (same numbers, no overlap).
  bool overlap = true;
  /// Where every rank runs on one machine, the buckets live in memory the ranks share (an MPI-3
  /// shared window), and those summed by a blocking call (the last; all without overlap) are
  /// summed there, each rank its slice, instead of by MPI_Allreduce, whose copies through Open
  /// MPI's shared-memory transport cost more. false: MPI_Allreduce always.
  bool shared_memory = true;
};

/// What the last synchronized backward did on this rank.
struct DistributedStats {
  std::size_t buckets = 0;               ///< buckets averaged
  std::size_t sent_during_backward = 0;  ///< of those, sent before the sweep ended (overlap)
  std::size_t bytes = 0;                 ///< gradient bytes averaged
  /// Time spent packing and sending buckets during the sweep (a blocking send waits for the
  /// other ranks there).
  double send_seconds = 0;
  double wait_seconds = 0;  ///< time the end of the backward spent finishing the averaging
  bool shared_memory = false;  ///< the buckets were summed in a shared window, not by MPI
};

/// Wraps a module for data-parallel training (PyTorch's DistributedDataParallel; its child is
/// named "module", so its state_dict's names start with "module."; checkpoint the wrapped module
/// to keep the names of a single process). At construction the parameters and buffers of rank
/// 0 are copied to every rank. Each backward() that reaches the parameters ends with every
/// .grad the average over the ranks of the ranks' gradients: buckets in reverse registration
/// order (the order the sweep finishes them), sent from the parameters' post-accumulate-grad
/// hooks (MPI_Iallreduce; the last bucket, which nothing is left to hide, MPI_Allreduce, or where
/// every rank shares one machine a sum in a shared window), waited for at the end of the sweep. A
/// parameter that gets no gradient on a rank (not used in its forward, frozen) counts as zero there
/// and does not hold its bucket back when the forward went through this wrapper; its .grad stays
/// undefined when no rank had one. Buffers (batch norm's statistics) stay per rank.
class DistributedDataParallel : public Module {
 public:
  /// ValueError when the ranks' modules differ in their parameters' count, shapes or dtypes, or
  /// the ranks' options differ. Convert the module's dtype (Module::to) before wrapping it.
  explicit DistributedDataParallel(std::shared_ptr<Module> module, DistributedOptions options = {});
  ~DistributedDataParallel() override;

  /// The module's forward; also notes which parameters the output depends on (until the next
  /// averaging backward), so that the others are not waited for.
  Tensor forward(const Tensor& input) override;
  Module& module() const { return *module_; }

  /// While the returned guard lives, backward() only accumulates each rank's own gradients (for
  /// gradient accumulation over several micro-batches); the next backward after it averages
  /// the sum. As PyTorch's no_sync().
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool before_;
  };
  NoSync no_sync() { return NoSync(*this); }

  DistributedStats last_stats() const;
  std::string name() const override { return "DistributedDataParallel"; }
  std::string extra_repr() const override;

  struct State;  ///< the buckets and the MPI requests (nn/distributed.cpp)

 private:
  std::shared_ptr<Module> module_;
  std::shared_ptr<State> state_;  // shared with the hooks, which hold it weakly
};

}  // namespace xgrad::nn
