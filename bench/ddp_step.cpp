// A data-parallel training step (nn::DistributedDataParallel), run under mpirun: each rank takes
// its share of the global batch, gradients are averaged across the ranks, Adam steps.
//
//   mpirun -np 2 ddp_step --model mlp --batch 1024 --steps 60 [--mode overlap|after|none]
//                         [--bucket-kb K] [--transport shared|mpi]
//     ->  median_us=...  exposed_us=...  allreduce_kb=...  slowest_rank_us=...  (rank 0 prints)
//
// median_us: the median step (after a warm-up) on rank 0; slowest_rank_us: the largest of the
// ranks' medians (with --mode none the ranks run apart: the slowest one). exposed_us: the median
// time a step spent in the averaging itself, on the backward's critical path: sending buckets
// from the hooks (a blocking send waits for the other ranks) and finishing at the end of the
// sweep. --mode overlap: buckets sent during the sweep (the default); after: all sent after it,
// so that exposed_us is all the allreduce adds; none: no averaging at all (no_sync), the compute
// alone. --transport mpi: the buckets summed by MPI_Allreduce even where the ranks share a
// machine (shared: in a shared window there, the default). Run without mpirun, or with -np 1, for
// one process on the whole batch.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "bench/options.hpp"
#include "bench/reference_cnn.hpp"
#include "bench/steps.hpp"
#include "nn/distributed.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;
namespace dist = xgrad::nn::distributed;

namespace {

void run(const std::string& model, std::size_t batch, std::size_t steps, const std::string& mode,
         std::size_t bucket_kb, bool shared) {
  const int ranks = dist::world_size();
  if (batch % static_cast<std::size_t>(ranks) != 0)
    throw ValueError("--batch " + std::to_string(batch) + " is not a multiple of the " +
                     std::to_string(ranks) + " ranks");
  const std::size_t local = batch / static_cast<std::size_t>(ranks);
  Generator gen(0);
  std::shared_ptr<nn::Module> net;
  Shape input;
  if (model == "cnn") {
    net = bench::reference_cnn(gen);
    input = {local, 1, 28, 28};
  } else {
    auto mlp = std::make_shared<nn::MLP>(std::vector<std::size_t>{784, 256, 128, 10}, "relu",
                                         Dtype::float32, gen);
    mlp->fuse();
    net = mlp;
    input = {local, 784};
  }
  nn::DistributedDataParallel ddp(
      net, {.bucket_bytes = bucket_kb << 10, .overlap = mode != "after", .shared_memory = shared});
  nn::Adam adam(ddp.parameters(), {.lr = 1e-3});
  Generator data(static_cast<std::uint64_t>(1 + dist::rank()));
  const Tensor x = randn(input, {}, data);
  std::vector<std::int64_t> labels(local);
  for (std::size_t i = 0; i < local; ++i) labels[i] = static_cast<std::int64_t>((i * 7) % 10);
  const Tensor y = from_vector(labels, {local});
  std::vector<double> exposed;
  const auto step = [&] {
    adam.zero_grad();
    const Tensor loss = nn::softmax_cross_entropy(ddp(x), y);
    if (mode == "none") {
      auto local_only = ddp.no_sync();
      loss.backward();
    } else {
      loss.backward();
      const nn::DistributedStats stats = ddp.last_stats();
      exposed.push_back((stats.send_seconds + stats.wait_seconds) * 1e6);
    }
    adam.step();
  };
  dist::barrier();
  const double median = bench::median_step_us(step, steps);
  const double exposed_us = exposed.empty() ? 0.0 : bench::median_after_warmup(exposed);
  std::size_t bytes = 0;
  for (const Tensor& p : ddp.parameters()) bytes += p.numel() * 4;
  // Each rank's median: the slowest bounds a step once the ranks wait for each other.
  const Tensor medians = zeros({static_cast<std::size_t>(ranks)}, {.dtype = kFloat64});
  medians.mutable_value<double>()(dist::rank()) = median;
  dist::all_reduce_sum(medians);
  if (dist::rank() == 0)
    std::printf("median_us=%g\nexposed_us=%g\nallreduce_kb=%.1f\nranks=%d\nslowest_rank_us=%g\n",
                median, exposed_us, static_cast<double>(bytes) / 1024, ranks,
                *std::max_element(medians.value<double>().begin(), medians.value<double>().end()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "mlp", mode = "overlap", transport = "shared";
  std::size_t batch = 1024, steps = 60, bucket_kb = nn::DistributedOptions{}.bucket_bytes >> 10;
  CLI::App app{"Median time of a data-parallel training step (run under mpirun)."};
  app.add_option("--model", model, "mlp (784-256-128-10) or cnn (bench/reference_cnn.hpp)")
      ->check(CLI::IsMember({"mlp", "cnn"}));
  app.add_option("--batch", batch, "the global batch, shared by the ranks")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", steps, "training steps")->check(CLI::Range(5, 100000));
  app.add_option("--mode", mode, "overlap, after (the sweep) or none (no averaging)")
      ->check(CLI::IsMember({"overlap", "after", "none"}));
  app.add_option("--bucket-kb", bucket_kb, "gradient bucket size in KB")
      ->check(CLI::Range(1, 1 << 22));
  app.add_option("--transport", transport,
                 "shared (a shared window where the ranks share a machine) or mpi (MPI_Allreduce)")
      ->check(CLI::IsMember({"shared", "mpi"}));
  if (const int status = bench::parse(app, argc, argv); status >= 0) return status;
  std::optional<dist::Session> mpi;
  const int status = bench::guarded("ddp_step", [&] {
    mpi.emplace(argc, argv);
    keep_freed_memory();
    set_num_threads(1);
    run(model, batch, steps, mode, bucket_kb, transport == "shared");
  });
  if (status != 0 && dist::world_size() > 1) dist::abort(status);
  return status;
}
