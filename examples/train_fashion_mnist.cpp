// Trains an MLP or a CNN on Fashion-MNIST (or MNIST: the same IDX files) and reports test accuracy.
//
//   train_fashion_mnist                          the MLP's defaults: 89.5% or more in 15 epochs
//   train_fashion_mnist --model cnn              the CNN's defaults: 93% or more in 15 epochs
//                       (bench/cnn_step's network: 32-32 and 64-64 channels, hidden 256, dropout
//                        0.5; training images flipped left-right at random)
//   train_fashion_mnist --epochs 10 --optimizer sgd --lr 0.01 --momentum 0.9 --schedule none
//   train_fashion_mnist --save ckpt   then   --resume ckpt --epochs 20
//   mpirun -np 2 train_fashion_mnist --distributed --batch-size 1024
//                       data parallel: each rank takes half of each (global) batch; rank 0
//                       alone prints and writes files (docs/distributed.md)
//
// The last line on stdout is test_accuracy=0.xxxx (after data_wait_ms_per_batch=, the time the
// training loop waited for each batch). Bad or missing data exits with status 2.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "autograd/allocator.hpp"
#include "autograd/blas.hpp"
#include "autograd/grad_mode.hpp"
#include "examples/common/cli.hpp"
#include "examples/common/training_run.hpp"
#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "nn/distributed.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "nn/serialize.hpp"

using namespace xgrad;
using namespace xgrad::nn;
using namespace xgrad::programs;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string model = "mlp";
  std::vector<std::size_t> channels = {32, 64};
  std::size_t convs_per_block = 2;
  std::string augment = "auto";
  double dropout = 0.5;
  int epochs = 15;
  std::size_t batch_size = 64;
  double lr = 1e-3;
  std::string optimizer = "adam";
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::string schedule = "cosine";
  std::vector<std::size_t> hidden = {256, 128};
  std::string activation = "relu";
  std::uint64_t seed = 1;
  int threads = 1;
  std::size_t workers = 0;  // threads that prepare the next batches
  bool distributed = false;
  std::string save, resume, log, plot;
};

std::size_t correct(const Tensor& logits, const Tensor& labels) {
  return static_cast<std::size_t>(count_nonzero(argmax(logits, 1) == labels).item<std::int64_t>());
}

// The network and how it takes a batch of images (N, 1, H, W): the MLP flattened, the CNN as is.
// Trained through `parallel` when set (--distributed), which averages the ranks' gradients.
struct Model {
  std::shared_ptr<Module> net;
  bool flatten_inputs;
  std::shared_ptr<Module> parallel;
  Tensor operator()(const Tensor& images) const {
    return (parallel ? *parallel : *net)(flatten_inputs ? flatten(images, 1) : images);
  }
};

// The MLP: sizes[0] inputs, the hidden layers, the classes; its activations fused where they can.
Model make_mlp(const Config& c, const std::vector<std::size_t>& sizes, Generator& gen) {
  auto mlp = std::make_shared<MLP>(sizes, c.activation, Dtype::float32, gen);
  // Each hidden activation inside its Linear where it can be (relu, tanh, sigmoid): the same
  // numbers, one op and one array fewer per layer.
  if (c.activation == "relu" || c.activation == "tanh" || c.activation == "sigmoid") mlp->fuse();
  return {mlp, true, nullptr};
}

// The CNN: per entry of --channels, a block of --convs-per-block 3x3 convolutions (padding 1), each
// with batch norm and the activation, and a 2x2 max pool; then the hidden layers of --hidden, each
// with the activation (fused into the Linear where it can be) and dropout; then the classes. The
// defaults are bench/cnn_step's reference network.
Model make_cnn(const Config& c, const Shape& image, std::size_t classes, Generator& gen) {
  auto net = std::make_shared<Sequential>();
  std::size_t channels = image[1], h = image[2], w = image[3];
  // relu, tanh and sigmoid run inside the op before them (the same numbers, one pass fewer)
  const bool fusable =
      c.activation == "relu" || c.activation == "tanh" || c.activation == "sigmoid";
  for (std::size_t out : c.channels) {
    if (h < 2 || w < 2)
      throw ValueError("--channels: " + std::to_string(c.channels.size()) +
                       " pooling blocks leave nothing of " + shape_str(Shape{image[2], image[3]}) +
                       " images; give fewer");
    for (std::size_t k = 0; k < c.convs_per_block; ++k) {
      net->push_back(std::make_shared<Conv2d>(
          Conv2dOptions(k == 0 ? channels : out, out, 3).padding(1).bias(false), gen));
      auto norm = std::make_shared<BatchNorm2d>(out);
      net->push_back(norm);
      if (fusable)
        norm->epilogue = epilogue_from_name(c.activation);
      else
        net->push_back(make_activation(c.activation));
    }
    net->push_back(std::make_shared<MaxPool2d>(2));
    channels = out;
    h /= 2;
    w /= 2;
  }
  net->push_back(std::make_shared<Flatten>());
  std::size_t features = channels * h * w;
  for (std::size_t hidden : c.hidden) {
    auto linear = std::make_shared<Linear>(features, hidden, true, Dtype::float32, gen);
    net->push_back(linear);
    if (fusable)
      linear->epilogue = epilogue_from_name(c.activation);
    else
      net->push_back(make_activation(c.activation));
    if (c.dropout > 0) net->push_back(std::make_shared<Dropout>(c.dropout, gen));
    features = hidden;
  }
  net->push_back(std::make_shared<Linear>(features, classes, true, Dtype::float32, gen));
  return {net, false, nullptr};
}

// Mean loss and accuracy over a data set, without recording anything.
std::pair<double, double> evaluate(const Model& model, const TensorDataset& data,
                                   Normalization norm) {
  NoGradGuard no_grad;
  model.net->eval();
  DataLoader loader(data, {.batch_size = 1000, .shuffle = false, .augment = {.normalize = norm}});
  double loss = 0;
  std::size_t right = 0;
  for (const Batch& batch : loader) {
    const Tensor logits = model(batch.data);
    loss += softmax_cross_entropy(logits, batch.target, {.reduction = Reduction::sum}).item();
    right += correct(logits, batch.target);
  }
  model.net->train();
  return {loss / static_cast<double>(data.size()),
          static_cast<double>(right) / static_cast<double>(data.size())};
}

// The time the training loop waited for its batches, summed over the run.
struct DataWait {
  double seconds = 0;
  std::size_t batches = 0;
};

EpochResult train_epoch(const Model& model, Optimizer& optimizer, DataLoader<>& loader,
                        const TensorDataset& test, Normalization norm, int epoch, int epochs,
                        DataWait& wait) {
  const auto start = Clock::now();
  Progress progress(epoch, epochs, loader.num_batches(), "img/s", distributed::rank() == 0);
  double loss_sum = 0;
  std::size_t seen = 0, right = 0, done = 0;
  auto it = loader.begin();
  for (std::size_t b = 0; b < loader.num_batches(); ++b, ++it) {
    const auto asked = Clock::now();
    const Batch batch = *it;
    wait.seconds += std::chrono::duration<double>(Clock::now() - asked).count();
    ++wait.batches;
    optimizer.zero_grad();
    const Tensor logits = model(batch.data);
    const Tensor loss = softmax_cross_entropy(logits, batch.target);
    loss.backward();
    optimizer.step();
    loss_sum += loss.item() * static_cast<double>(batch.target.numel());
    right += correct(logits, batch.target);
    seen += batch.target.numel();
    progress.update(++done, loss_sum / static_cast<double>(seen), seen);
  }
  progress.clear();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (distributed::world_size() > 1) {  // the training figures of every rank's shard
    const Tensor sums = from_vector(
        std::vector<double>{loss_sum, static_cast<double>(right), static_cast<double>(seen)}, {3},
        {.dtype = kFloat64});
    distributed::all_reduce_sum(sums);
    const auto& v = sums.value<double>();
    loss_sum = v(0);
    right = static_cast<std::size_t>(v(1));
    seen = static_cast<std::size_t>(v(2));
  }
  // Rank 0 alone reports: the others do not evaluate.
  const auto [test_loss, test_accuracy] = distributed::rank() == 0
                                              ? evaluate(model, test, norm)
                                              : std::pair{std::nan(""), std::nan("")};
  return {epoch,
          loss_sum / static_cast<double>(seen),
          static_cast<double>(right) / static_cast<double>(seen),
          test_loss,
          test_accuracy,
          seconds};
}

// The number of classes: every label from 0 to the largest training label must have training
// examples (a stray label 255 is damage, not a 256-class problem), and test labels must be among
// them. Checked before training, so that bad labels never cost an epoch.
std::size_t count_classes(const TensorDataset& train, const TensorDataset& test) {
  std::vector<std::size_t> seen;
  for (std::int64_t y : train.labels().value<std::int64_t>()) {
    const auto label = static_cast<std::size_t>(y);
    if (label >= seen.size()) seen.resize(label + 1, 0);
    ++seen[label];
  }
  for (std::size_t k = 0; k < seen.size(); ++k)
    if (seen[k] == 0)
      throw ValueError("training labels go up to " + std::to_string(seen.size() - 1) +
                       " but class " + std::to_string(k) +
                       " has no training example: damaged labels?");
  const auto& test_labels = test.labels().value<std::int64_t>();
  for (std::size_t i = 0; i < test_labels.size(); ++i)
    if (static_cast<std::size_t>(test_labels(i)) >= seen.size())
      throw ValueError("test label " + std::to_string(test_labels(i)) + " of image " +
                       std::to_string(i) + " is not one of the " + std::to_string(seen.size()) +
                       " classes of the training labels");
  return seen.size();
}

// What a resume may not change (docs/design.md lists what it may): every flag that shapes the
// model, the optimizer, the schedule, the data's order and augmentation, and the data itself.
RunSettings run_settings(const Config& c, const std::vector<std::string>& files) {
  RunSettings s = {{"--model", c.model},
                   {"--channels", join(c.channels, ",")},
                   {"--convs-per-block", std::to_string(c.convs_per_block)},
                   {"--augment", c.augment},
                   {"--dropout", setting_value(c.dropout)},
                   {"--batch-size", std::to_string(c.batch_size)},
                   {"--lr", setting_value(c.lr)},
                   {"--optimizer", c.optimizer},
                   {"--momentum", setting_value(c.momentum)},
                   {"--weight-decay", setting_value(c.weight_decay)},
                   {"--schedule", c.schedule},
                   {"--hidden", join(c.hidden, ",")},
                   {"--activation", c.activation},
                   {"--seed", std::to_string(c.seed)}};
  for (const std::string& f : files)
    s.emplace_back("data " + fs::path(f).filename().string(), file_identity(f));
  return s;
}

void run(const Config& c) {
  keep_freed_memory();
  set_num_threads(c.threads);
  const int rank = distributed::rank(), ranks = distributed::world_size();
  if (c.batch_size % static_cast<std::size_t>(ranks) != 0)
    throw ValueError("--batch-size " + std::to_string(c.batch_size) +
                     " (the global batch) is not a multiple of the " + std::to_string(ranks) +
                     " ranks, which take equal shares of it");
  const std::vector<std::string> files = idx_data_files(c.data);
  TensorDataset train = load_idx_dataset(files[0], files[1]);
  TensorDataset test = load_idx_dataset(files[2], files[3]);
  const Shape image = train.inputs().shape();
  if (!std::equal(image.begin() + 1, image.end(), test.inputs().shape().begin() + 1,
                  test.inputs().shape().end()))
    throw ValueError("training images have shape " + shape_str(train.inputs().shape()) +
                     ", test images " + shape_str(test.inputs().shape()));
  if (c.model == "cnn" && image.size() != 4)
    throw ValueError("--model cnn needs images (N, H, W) in the IDX files, got " +
                     shape_str(image));
  const Normalization norm = pixel_statistics(train);
  const bool cnn = c.model == "cnn";
  const bool crop = c.augment == "crop" || c.augment == "crop+flip";
  const bool flip = c.augment == "flip" || c.augment == "crop+flip" || (c.augment == "auto" && cnn);

  std::vector<std::size_t> sizes = {train.inputs().numel() / train.size()};
  sizes.insert(sizes.end(), c.hidden.begin(), c.hidden.end());
  const std::size_t classes = count_classes(train, test);
  sizes.push_back(classes);
  Generator gen(c.seed);
  Model model = cnn ? make_cnn(c, image, classes, gen) : make_mlp(c, sizes, gen);
  std::unique_ptr<Optimizer> optimizer;
  if (c.optimizer == "sgd")
    optimizer = std::make_unique<SGD>(
        model.net->parameters(),
        SGDOptions{.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
  else
    optimizer = std::make_unique<AdamW>(model.net->parameters(),
                                        AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  std::unique_ptr<LRScheduler> schedule;
  if (c.schedule == "cosine") schedule = std::make_unique<CosineAnnealingLR>(*optimizer, c.epochs);
  if (c.schedule == "step")
    schedule = std::make_unique<StepLR>(*optimizer, std::max(1, c.epochs / 3), 0.1);
  Checkpoint checkpoint;
  // The generator goes on drawing dropout masks after the initialization: saved with the rest,
  // so that a resumed run draws the same masks.
  checkpoint.module(*model.net).optimizer(*optimizer).generator("model", gen);
  if (schedule) checkpoint.scheduler(*schedule);
  // Every rank resumes from the checkpoint; rank 0 alone writes files.
  const RunSettings settings = run_settings(c, files);
  TrainingRun training(checkpoint,
                       rank == 0 ? RunFiles{c.save, c.resume, c.log, c.plot}
                                 : RunFiles{"", c.resume, "", ""},
                       c.epochs, settings);
  const int done = training.epochs_done();
  if (c.distributed) {  // before any collective: ranks started alike, or exit 2 on every rank
    RunSettings all = settings;
    all.emplace_back("--epochs", std::to_string(c.epochs));
    all.emplace_back("resumed after epoch", std::to_string(done));
    all.emplace_back("resumed checkpoint",
                     c.resume.empty() ? "none"
                                      : file_identity((fs::path(c.resume) / "checkpoint.json").string()));
    check_ranks_agree(all);
  }
  // Rank 0's parameters and buffers on every rank, then gradients averaged at each backward.
  if (c.distributed) model.parallel = std::make_shared<DistributedDataParallel>(model.net);
  const std::string described =
      cnn ? "cnn " + join(c.channels, "-") + " channels (" + std::to_string(c.convs_per_block) +
                " convolutions per block), hidden " + join(c.hidden, "-") + " " + c.activation +
                (c.dropout > 0 ? ", dropout " + number_str(c.dropout) : "") +
                (crop ? ", random crops" : "") + (flip ? ", flips" : "")
          : join(sizes, "-") + " " + c.activation;
  const std::string parallel =
      c.distributed ? "; " + std::to_string(ranks) + " ranks, " +
                          std::to_string(c.batch_size / static_cast<std::size_t>(ranks)) +
                          " images of each batch of " + std::to_string(c.batch_size) + " per rank"
                    : "";
  std::printf("%s: %zu training and %zu test images; model %s%s\n", c.data.c_str(),
              train.size(), test.size(), described.c_str(), parallel.c_str());
  std::fflush(stdout);
  DataLoader loader(
      train,
      {.batch_size = c.batch_size / static_cast<std::size_t>(ranks),
       .shuffle = true,
       .seed = c.seed,
       .num_workers = c.workers,
       .augment = {.crop_padding = crop ? 2u : 0u, .horizontal_flip = flip, .normalize = norm},
       .num_replicas = static_cast<std::size_t>(ranks),
       .rank = static_cast<std::size_t>(rank)});
  loader.set_epoch(static_cast<std::size_t>(done));
  DataWait wait;
  for (int epoch = done + 1; epoch <= c.epochs; ++epoch) {
    const EpochResult r = train_epoch(model, *optimizer, loader, test, norm, epoch, c.epochs, wait);
    std::printf("epoch %2d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.2f s\n", epoch,
                c.epochs, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy, r.seconds);
    std::fflush(stdout);
    if (schedule) schedule->step();
    training.end_epoch(r, nlohmann::json{{"mean", norm.mean}, {"std", norm.std}}.dump());
  }
  training.finish();
  const std::vector<EpochResult>& results = training.results();
  const double accuracy =
      results.empty() ? evaluate(model, test, norm).second : results.back().test_accuracy;
  if (wait.batches > 0)  // what a worker saves: the time the step waited for each batch
    std::printf("data_wait_ms_per_batch=%.4f (%zu workers)\n",
                1e3 * wait.seconds / static_cast<double>(wait.batches), c.workers);
  std::printf("test_accuracy=%.4f\n", accuracy);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"Train an MLP or a CNN on Fashion-MNIST (or MNIST) with xgrad."};
  app.add_option("--data", c.data, "folder of the IDX files (.gz or plain)")->capture_default_str();
  app.add_option("--model", c.model,
                 "mlp, or cnn: 3x3 convolutions with batch norm and 2x2 max pooling (--channels), "
                 "then the hidden layers")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  app.add_option("--channels", c.channels, "the CNN's convolution blocks' channels, e.g. 32,64")
      ->delimiter(',')
      ->check(cli::count_up_to(4096))
      ->capture_default_str();
  app.add_option("--convs-per-block", c.convs_per_block,
                 "the CNN's 3x3 convolutions before each pooling")
      ->check(cli::number_rule("a whole number from 0 to 64", 0, false, 64, true))
      ->capture_default_str();
  app.add_option("--augment", c.augment,
                 "training-image augmentation: crop (shifts of up to 2 pixels, zero padding), "
                 "flip (left-right), crop+flip, none, or auto (flip for the CNN, none for the "
                 "MLP)")
      ->check(CLI::IsMember({"auto", "none", "crop", "flip", "crop+flip"}))
      ->capture_default_str();
  app.add_option("--dropout", c.dropout, "the CNN's dropout after each hidden layer (0: none)")
      ->check(cli::fraction())
      ->capture_default_str();
  app.add_option("--epochs", c.epochs, "epochs in all (counting those of a resumed run)")
      ->check(cli::count_up_to(100000))
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "examples per step")
      ->check(cli::count_up_to(1 << 20))
      ->capture_default_str();
  app.add_option("--lr", c.lr, "learning rate")
      ->check(cli::non_negative())
      ->capture_default_str();
  app.add_option("--optimizer", c.optimizer, "sgd or adam (AdamW with --weight-decay)")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  app.add_option("--momentum", c.momentum, "SGD momentum")
      ->check(cli::fraction())
      ->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "weight decay")
      ->check(cli::non_negative())
      ->capture_default_str();
  app.add_option("--schedule", c.schedule,
                 "learning-rate schedule over the epochs: cosine, step or none")
      ->check(CLI::IsMember({"cosine", "step", "none"}))
      ->capture_default_str();
  app.add_option("--hidden", c.hidden,
                 "hidden layer sizes, e.g. 256,128 (the CNN's after its convolutions; 256 by "
                 "default)")
      ->delimiter(',')
      ->check(cli::count_up_to(1 << 16))
      ->capture_default_str();
  app.add_option(
         "--activation", c.activation,
         "hidden activation: " + join(activation_names(), ", "))
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the initialization and the shuffling")
      ->capture_default_str();
  app.add_option("--threads", c.threads, "OpenBLAS threads")
      ->check(cli::count_up_to(1024))
      ->capture_default_str();
  app.add_option("--workers", c.workers,
                 "threads that prepare the next batches while the step runs (the same batches "
                 "for any number)")
      ->check(cli::number_rule("a whole number from 0 to 64", 0, false, 64, true))
      ->capture_default_str();
  app.add_flag("--distributed", c.distributed,
               "data parallel over the ranks of mpirun (each takes its share of every batch of "
               "--batch-size; rank 0 prints and writes the files)");
  app.add_option("--save", c.save, "folder to write a checkpoint to after every epoch");
  app.add_option("--resume", c.resume, "folder of a checkpoint to continue from");
  app.add_option("--log", c.log,
                 "CSV file: epoch, train loss, train accuracy, test loss, test accuracy, seconds");
  app.add_option("--plot", c.plot,
                 "PNG or SVG file of the loss and accuracy curves (needs gnuplot)")
      ->check(cli::rule(plot_path_error, "FILE.png or FILE.svg"));
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  if (c.model == "cnn" && app.count("--hidden") == 0) c.hidden = {256};  // the CNN's default head
  if (c.model == "mlp" && app.count("--dropout") > 0) {
    std::cerr << "train_fashion_mnist: --dropout is an option of --model cnn; the MLP has none\n";
    return 2;
  }
  try {
    make_activation(c.activation);
  } catch (const Error& e) {
    std::cerr << "train_fashion_mnist: --activation: " << e.what() << "\n";
    return 2;
  }
  if (!c.distributed) return guarded_main("train_fashion_mnist", [&] { run(c); });
  std::optional<distributed::Session> mpi;
  try {
    mpi.emplace(argc, argv);
  } catch (const Error& e) {
    std::cerr << "train_fashion_mnist: --distributed: " << e.what() << "\n";
    return 2;
  }
  const int rank = distributed::rank();
  if (rank != 0 && !std::freopen("/dev/null", "w", stdout)) return 3;  // rank 0 alone prints
  const std::string program =
      "train_fashion_mnist (rank " + std::to_string(rank) + ")";
  const int status = guarded_main(program.c_str(), [&] { run(c); });
  // A rank that failed ends the job: the others may be waiting for it in an allreduce.
  if (status != 0 && distributed::world_size() > 1) distributed::abort(status);
  return status;
}
