// DistributedDataParallel on 2 ranks against one process on the same samples: the same parameters
// after 20 steps; broadcast at construction; unused and frozen parameters; no_sync.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"
#include "nn/conv.hpp"
#include "nn/distributed.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace dist = xgrad::nn::distributed;

namespace {

constexpr std::size_t kIn = 20, kClasses = 5, kBatch = 64, kSteps = 20;

// Fixed samples: row i of the inputs and its label, the same on every rank.
struct Samples {
  Tensor inputs;  // (rows, kIn)
  Tensor labels;  // (rows) int64
  // Rows first, first + stride, ... of count rows: a rank's shard of a batch.
  std::pair<Tensor, Tensor> rows(std::size_t first, std::size_t stride, std::size_t count,
                                 Dtype dtype) const {
    std::vector<std::int64_t> at;
    for (std::size_t k = 0; k < count; ++k)
      at.push_back(static_cast<std::int64_t>(first + k * stride));
    return {index_select(inputs, 0, at).to(dtype), index_select(labels, 0, at)};
  }
};

Samples make_samples(std::size_t rows) {
  Generator gen(42);
  std::vector<std::int64_t> labels(rows);
  for (std::size_t i = 0; i < rows; ++i) labels[i] = static_cast<std::int64_t>((i * 7) % kClasses);
  return {randn({rows, kIn}, {.dtype = kFloat64}, gen), from_vector(labels, {rows})};
}

std::shared_ptr<MLP> make_mlp(Dtype dtype, std::uint64_t seed) {
  Generator gen(seed);
  return std::make_shared<MLP>(std::vector<std::size_t>{kIn, 32, 16, kClasses}, "tanh", dtype, gen);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, const Module& m) {
  if (kind == "sgd")
    return std::make_unique<SGD>(m.parameters(), SGDOptions{.lr = 0.1, .momentum = 0.9});
  return std::make_unique<Adam>(m.parameters(), AdamOptions{.lr = 1e-2});
}

// max |a - b| over the entries of each parameter, against the parameter's largest entry.
double worst_relative_difference(const Module& a, const Module& b) {
  double worst = 0;
  const auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const Tensor x = pa[i].to(kFloat64), y = pb[i].to(kFloat64);
    const auto& u = x.value<double>();
    const auto& v = y.value<double>();
    double diff = 0, largest = 0;
    for (std::size_t k = 0; k < u.size(); ++k) {
      diff = std::max(diff, std::abs(u.data()[k] - v.data()[k]));
      largest = std::max(largest, std::abs(v.data()[k]));
    }
    worst = std::max(worst, diff / largest);
  }
  return worst;
}

// Every float64 gradient of `got` equals the one of `want` to 1e-12.
void check_same_gradients(const Module& got, const Module& want) {
  const auto pg = got.parameters(), pw = want.parameters();
  REQUIRE(pg.size() == pw.size());
  for (std::size_t i = 0; i < pg.size(); ++i) {
    const auto& u = pg[i].grad().value<double>();
    const auto& v = pw[i].grad().value<double>();
    for (std::size_t k = 0; k < u.size(); ++k)
      CHECK(u.data()[k] == doctest::Approx(v.data()[k]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("2 ranks end with the parameters of 1 rank on the same samples, after 20 steps") {
  REQUIRE(dist::world_size() == 2);
  const int rank = dist::rank(), world = dist::world_size();
  const Samples samples = make_samples(kBatch * kSteps);
  struct Case {
    const char* optimizer;
    Dtype dtype;
    bool overlap;
    bool shared;  // summed in a shared window (both ranks run on this machine) or by MPI
    double tolerance;
  };
  for (const Case& c :
       {Case{"sgd", kFloat64, true, true, 1e-12}, Case{"sgd", kFloat64, false, true, 1e-12},
        Case{"sgd", kFloat64, true, false, 1e-12}, Case{"adam", kFloat64, true, true, 1e-12},
        Case{"adam", kFloat64, false, false, 1e-12}, Case{"sgd", kFloat32, true, true, 1e-5},
        Case{"sgd", kFloat32, false, false, 1e-5}}) {
    INFO(c.optimizer << " " << dtype_name(c.dtype)
                     << (c.overlap ? " overlapped" : " after the sweep")
                     << (c.shared ? ", shared window" : ", MPI_Allreduce"));
    // One process: the whole batch of 64.
    const auto single = make_mlp(c.dtype, 7);
    const auto single_opt = make_optimizer(c.optimizer, *single);
    // Data parallel: each rank starts from another seed (the broadcast makes them rank 0's, which
    // is seed 7's) and takes every second row of each batch. Buckets of 2 KB: several, sent in
    // turn.
    const auto local = make_mlp(c.dtype, 7 + static_cast<std::uint64_t>(rank));
    DistributedDataParallel ddp(
        local, {.bucket_bytes = 2048, .overlap = c.overlap, .shared_memory = c.shared});
    const auto ddp_opt = make_optimizer(c.optimizer, ddp);
    for (std::size_t step = 0; step < kSteps; ++step) {
      const auto [x, y] = samples.rows(step * kBatch, 1, kBatch, c.dtype);
      single_opt->zero_grad();
      softmax_cross_entropy((*single)(x), y).backward();
      single_opt->step();

      const auto [xr, yr] = samples.rows(step * kBatch + static_cast<std::size_t>(rank),
                                         static_cast<std::size_t>(world), kBatch / 2, c.dtype);
      ddp_opt->zero_grad();
      softmax_cross_entropy(ddp(xr), yr).backward();
      ddp_opt->step();
    }
    CHECK(worst_relative_difference(*local, *single) <= c.tolerance);
    // Every rank took the same steps: the same bits everywhere.
    for (const Tensor& p : local->parameters()) {
      const Tensor mine = p.detach().clone();
      const Tensor theirs = p.detach().clone();
      dist::broadcast(theirs, 0);
      CHECK(sum(abs(sub(mine, theirs))).item() == 0.0);
    }
    const DistributedStats stats = ddp.last_stats();
    CHECK(stats.shared_memory == c.shared);
    CHECK(stats.buckets > 2);
    CHECK(stats.sent_during_backward == (c.overlap ? stats.buckets : 0u));
    CHECK(stats.bytes == (32 * 21 + 16 * 33 + 5 * 17) * (c.dtype == kFloat64 ? 8u : 4u));
  }
}

TEST_CASE("construction gives every rank rank 0's parameters and buffers") {
  const int rank = dist::rank();
  auto net = std::make_shared<Sequential>();
  Generator gen(100 + static_cast<std::uint64_t>(rank));
  auto linear = std::make_shared<Linear>(4, 3, true, kFloat64, gen);
  auto norm = std::make_shared<BatchNorm1d>(3, 1e-5, 0.1, true, kFloat64);
  norm->running_mean.mutable_value<double>().fill(static_cast<double>(rank) + 0.5);
  net->push_back(linear).push_back(norm);
  Generator gen0(100);
  const Linear reference(4, 3, true, kFloat64, gen0);
  if (rank != 0) CHECK(linear->weight.value<double>() != reference.weight.value<double>());
  DistributedDataParallel ddp(net);
  CHECK(linear->weight.value<double>() == reference.weight.value<double>());
  CHECK(linear->bias.value<double>() == reference.bias.value<double>());
  CHECK(norm->running_mean.value<double>()(0) == 0.5);
  CHECK(ddp.named_parameters().front().first == "module.0.weight");
}

namespace {
// Two branches, of which each rank uses one (rank 0 `a`, rank 1 `b`); `frozen` used by both,
// `spare` by none.
struct Branches : Module {
  std::shared_ptr<Linear> a, b, frozen, spare;
  bool use_a = true;
  explicit Branches(Generator& gen) {
    a = register_module("a", std::make_shared<Linear>(3, 2, true, kFloat64, gen));
    b = register_module("b", std::make_shared<Linear>(3, 2, true, kFloat64, gen));
    frozen = register_module("frozen", std::make_shared<Linear>(2, 2, true, kFloat64, gen));
    spare = register_module("spare", std::make_shared<Linear>(2, 2, true, kFloat64, gen));
    frozen->requires_grad_(false);
  }
  Tensor forward(const Tensor& x) override { return (*frozen)(use_a ? (*a)(x) : (*b)(x)); }
  std::string name() const override { return "Branches"; }
};
}  // namespace

TEST_CASE("a parameter without gradient counts as zero and holds no bucket back") {
  const int rank = dist::rank();
  Generator gen(3);
  auto model = std::make_shared<Branches>(gen);
  model->use_a = rank == 0;
  // One bucket per parameter (a 1-byte cap): the unused ones would block every bucket after them.
  DistributedDataParallel ddp(model, {.bucket_bytes = 1});
  Generator data(11 + static_cast<std::uint64_t>(rank));
  const Tensor x = randn({4, 3}, {.dtype = kFloat64}, data);
  // This rank's own gradient of its branch, summed over the ranks by hand.
  Generator gen2(3);
  Branches alone(gen2);
  alone.use_a = model->use_a;
  sum(alone(x) * alone(x)).backward();
  const std::shared_ptr<Linear>& mine = rank == 0 ? alone.a : alone.b;
  const Tensor expected_a = rank == 0 ? mine->weight.grad() : zeros({2, 3}, {.dtype = kFloat64});
  dist::all_reduce_sum(expected_a);

  {
    const Tensor y = ddp(x);
    sum(y * y).backward();
    CHECK(ddp.last_stats().buckets == 8);  // a, b, spare: weight and bias; frozen's two
    CHECK(ddp.last_stats().sent_during_backward == 8);
    // a: rank 0's gradient, averaged over 2 ranks, on both ranks.
    REQUIRE(model->a->weight.grad().defined());
    const auto& got = model->a->weight.grad().value<double>();
    const auto& want = expected_a.value<double>();
    for (std::size_t k = 0; k < got.size(); ++k)
      CHECK(got.data()[k] == doctest::Approx(want.data()[k] / 2).epsilon(1e-14));
    CHECK(model->b->weight.grad().defined());
    CHECK_FALSE(model->spare->weight.grad().defined());   // no rank had one
    CHECK_FALSE(model->frozen->weight.grad().defined());  // frozen
  }

  // A forward that does not go through the wrapper: the branch a rank did not use is sent after
  // the sweep there, during it on the other rank; the numbers are the same.
  {
    ddp.zero_grad();
    model->spare->requires_grad_(false);
    const Tensor y = (*model)(x);
    sum(y * y).backward();
    model->spare->requires_grad_(true);
    CHECK(ddp.last_stats().sent_during_backward < 8);
    const auto& got = model->a->weight.grad().value<double>();
    const auto& want = expected_a.value<double>();
    for (std::size_t k = 0; k < got.size(); ++k)
      CHECK(got.data()[k] == doctest::Approx(want.data()[k] / 2).epsilon(1e-14));
  }

  // Two forwards before one backward, through each branch: both are waited for (a branch taken
  // as unused would have been sent before its gradient came: AutogradError).
  {
    ddp.zero_grad();
    model->use_a = true;
    const Tensor ya = ddp(x);
    model->use_a = false;
    const Tensor yb = ddp(x);
    CHECK_NOTHROW(sum(ya * ya + yb * yb).backward());
    CHECK(model->a->weight.grad().defined());
    CHECK(model->b->weight.grad().defined());
  }  // (graphs still alive would delay the hooks of the parameters they used)
  // A forward outside the wrapper, older than the one through it: the sweep reaches the branch
  // it used after that branch, taken as unused, had been sent.
  ddp.zero_grad();
  model->use_a = false;
  const Tensor outside = (*model)(x);
  model->use_a = true;
  const Tensor through = ddp(x);
  CHECK_THROWS_WITH_AS(sum(through * through + outside * outside).backward(),
                       doctest::Contains("parameter 'b.weight' was used by this backward "
                                         "but not by the output of the wrapper's forward"),
                       AutogradError);
}

TEST_CASE("no_sync accumulates locally; the next backward averages the sum") {
  const int rank = dist::rank(), world = dist::world_size();
  const Samples samples = make_samples(4 * kBatch);
  const auto single = make_mlp(kFloat64, 5);
  const auto local = make_mlp(kFloat64, 5);
  DistributedDataParallel ddp(local, {.bucket_bytes = 4096});
  // One process: two micro-batches of 64, gradients summed.
  for (std::size_t m = 0; m < 2; ++m) {
    const auto [x, y] = samples.rows(m * kBatch, 1, kBatch, kFloat64);
    softmax_cross_entropy((*single)(x), y).backward();
  }
  for (std::size_t m = 0; m < 2; ++m) {
    const auto [x, y] = samples.rows(m * kBatch + static_cast<std::size_t>(rank),
                                     static_cast<std::size_t>(world), kBatch / 2, kFloat64);
    if (m == 0) {
      auto guard = ddp.no_sync();
      softmax_cross_entropy(ddp(x), y).backward();
      CHECK(ddp.last_stats().buckets == 0);  // nothing averaged yet
    } else {
      softmax_cross_entropy(ddp(x), y).backward();
    }
  }
  check_same_gradients(*local, *single);
}

TEST_CASE("a backward that throws midway leaves the wrapper ready for the next one") {
  const int rank = dist::rank(), world = dist::world_size();
  const Samples samples = make_samples(kBatch);
  const auto single = make_mlp(kFloat64, 9);
  const auto local = make_mlp(kFloat64, 9);
  DistributedDataParallel ddp(local, {.bucket_bytes = 1024});
  const auto [x, y] = samples.rows(static_cast<std::size_t>(rank), static_cast<std::size_t>(world),
                                   kBatch / 2, kFloat64);
  // An op older than the model's forward, whose backward throws: the sweep passes every layer
  // first (the averaging begins, every bucket goes), then fails.
  const Tensor z =
      from_vector(std::vector<double>{1.0}, {1}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor failing = custom_op(
      "fails", {z}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor&) -> std::vector<Tensor> {
        throw ValueError("this backward fails");
      });
  CHECK_THROWS_AS((sum(failing) + softmax_cross_entropy(ddp(x), y)).backward(), ValueError);
  ddp.zero_grad();
  const auto [xs, ys] = samples.rows(0, 1, kBatch, kFloat64);
  softmax_cross_entropy((*single)(xs), ys).backward();
  softmax_cross_entropy(ddp(x), y).backward();
  CHECK(ddp.last_stats().buckets > 1);
  check_same_gradients(*local, *single);
}

TEST_CASE("ranks that build different models or options: ValueError on every rank") {
  const auto model = std::make_shared<MLP>(
      std::vector<std::size_t>{3, dist::rank() == 0 ? 4u : 5u, 2}, "relu", kFloat64);
  CHECK_THROWS_WITH_AS(DistributedDataParallel{model},
                       doctest::Contains("rank 1 holds 4 parameters, rank 0 4 (their shapes or "
                                         "dtypes differ, or the DistributedOptions)"),
                       ValueError);
  const auto same = make_mlp(kFloat64, 1);
  CHECK_THROWS_WITH_AS((DistributedDataParallel{same, {.overlap = dist::rank() == 0}}),
                       doctest::Contains("or the DistributedOptions"), ValueError);
}

TEST_CASE("all_gather: every rank's bytes in rank order; different lengths a ValueError everywhere") {
  const int rank = dist::rank(), ranks = dist::world_size();
  const std::string mine = "rank " + std::to_string(rank) + std::string(3, char('a' + rank));
  const std::vector<std::string> all = dist::all_gather(mine);
  REQUIRE(all.size() == static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r)
    CHECK(all[static_cast<std::size_t>(r)] == "rank " + std::to_string(r) +
                                                   std::string(3, char('a' + r)));
  // Rank 1 gives one byte more: every rank learns it from the lengths, and none waits.
  if (ranks > 1)
    CHECK_THROWS_WITH_AS(dist::all_gather(std::string(rank == 1 ? 5 : 4, 'x')),
                         doctest::Contains("every rank must give the same number"), ValueError);
}
