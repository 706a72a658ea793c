// Trains an MLP on Fashion-MNIST (or MNIST: the same IDX files) and reports test accuracy.
//
//   train_fashion_mnist                          the defaults: 89.5% or more in 15 epochs
//   train_fashion_mnist --epochs 10 --optimizer sgd --lr 0.01 --momentum 0.9 --schedule none
//   train_fashion_mnist --save ckpt   then   --resume ckpt --epochs 20
//
// The last line on stdout is test_accuracy=0.xxxx. Bad or missing data exits with status 2.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include "examples/cli.hpp"

#include "autograd/blas.hpp"
#include "autograd/grad_mode.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"
#include "nn/serialize.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  std::string data = "/usr/share/datasets/fashion-mnist";
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
  std::string save, resume, log, plot;
};

struct EpochResult {
  int epoch;
  double train_loss, train_accuracy, test_loss, test_accuracy, seconds;
};

// The data set's files, gzip-compressed or not.
std::string find_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {dir + "/" + name + ".gz", dir + "/" + name})
    if (fs::exists(candidate)) return candidate;
  throw ValueError("no " + name + "(.gz) in " + dir +
                   " (--data points to the folder of the IDX files)");
}

std::size_t correct(const Tensor& logits, const Index& labels) {
  const Index predicted = argmax(logits, 1);
  std::size_t n = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) n += predicted(i) == labels(i);
  return n;
}

// Mean loss and accuracy over a data set, without recording anything.
std::pair<double, double> evaluate(MLP& model, const TensorDataset& data) {
  NoGradGuard no_grad;
  model.eval();
  DataLoader loader(data, {.batch_size = 1000, .shuffle = false});
  double loss = 0;
  std::size_t right = 0;
  for (const Batch& batch : loader) {
    const Tensor logits = model(batch.inputs);
    loss += softmax_cross_entropy(logits, batch.labels, {.reduction = Reduction::sum}).item();
    right += correct(logits, batch.labels);
  }
  model.train();
  return {loss / static_cast<double>(data.size()),
          static_cast<double>(right) / static_cast<double>(data.size())};
}

// A progress line on stderr, redrawn in place; only when stderr is a terminal.
class Progress {
 public:
  Progress(int epoch, int epochs, std::size_t batches)
      : on_(isatty(STDERR_FILENO)),
        epoch_(epoch),
        epochs_(epochs),
        batches_(batches),
        start_(Clock::now()) {}
  void update(std::size_t done, double running_loss, std::size_t images) {
    if (!on_ || (done % 20 != 0 && done != batches_)) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const int width = 30, filled = static_cast<int>(width * done / batches_);
    std::fprintf(stderr, "\repoch %d/%d [%s%s] %zu/%zu loss %.4f %6.0f img/s eta %4.1fs ", epoch_,
                 epochs_, std::string(static_cast<std::size_t>(filled), '=').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), done, batches_,
                 running_loss, static_cast<double>(images) / std::max(elapsed, 1e-9),
                 elapsed / static_cast<double>(done) * static_cast<double>(batches_ - done));
  }
  void clear() const {
    if (on_) std::fprintf(stderr, "\r%s\r", std::string(100, ' ').c_str());
  }

 private:
  bool on_;
  int epoch_, epochs_;
  std::size_t batches_;
  Clock::time_point start_;
};

EpochResult train_epoch(MLP& model, Optimizer& optimizer, DataLoader& loader,
                        const TensorDataset& test, int epoch, int epochs) {
  const auto start = Clock::now();
  Progress progress(epoch, epochs, loader.num_batches());
  double loss_sum = 0;
  std::size_t seen = 0, right = 0, done = 0;
  for (const Batch& batch : loader) {
    optimizer.zero_grad();
    const Tensor logits = model(batch.inputs);
    const Tensor loss = softmax_cross_entropy(logits, batch.labels);
    loss.backward();
    optimizer.step();
    loss_sum += loss.item() * static_cast<double>(batch.labels.size());
    right += correct(logits, batch.labels);
    seen += batch.labels.size();
    progress.update(++done, loss_sum / static_cast<double>(seen), seen);
  }
  progress.clear();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto [test_loss, test_accuracy] = evaluate(model, test);
  return {epoch,
          loss_sum / static_cast<double>(seen),
          static_cast<double>(right) / static_cast<double>(seen),
          test_loss,
          test_accuracy,
          seconds};
}

void write_log(const std::string& path, const std::vector<EpochResult>& results) {
  std::ofstream out(path);
  out << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n";
  for (const EpochResult& r : results)
    out << r.epoch << "," << r.train_loss << "," << r.train_accuracy << "," << r.test_loss << ","
        << r.test_accuracy << "," << r.seconds << "\n";
  if (!out) throw ValueError("cannot write the log " + path);
}

// Loss and accuracy curves through gnuplot: PNG or SVG by the file's extension.
void write_plot(const std::string& path, const std::vector<EpochResult>& results) {
  const fs::path data = fs::path(path).string() + ".dat";
  {
    std::ofstream out(data);
    for (const EpochResult& r : results)
      out << r.epoch << " " << r.train_loss << " " << r.test_loss << " " << r.train_accuracy << " "
          << r.test_accuracy << "\n";
  }
  const bool svg = fs::path(path).extension() == ".svg";
  const std::string script =
      std::string("set terminal ") + (svg ? "svg size 900,400" : "png size 900,400") +
      "\nset output '" + path +
      "'\nset multiplot layout 1,2\nset xlabel 'epoch'\nset grid\nset title 'loss'\nplot '" +
      data.string() +
      "' using 1:2 with linespoints title 'train', '' using 1:3 with linespoints title 'test'\n"
      "set title 'accuracy'\nset key bottom right\nplot '" +
      data.string() +
      "' using 1:4 with linespoints title 'train', '' using 1:5 with linespoints title "
      "'test'\nunset multiplot\n";
  const fs::path script_path = fs::path(path).string() + ".gp";
  std::ofstream(script_path) << script;
  const int status = std::system(("gnuplot '" + script_path.string() + "'").c_str());
  fs::remove(script_path);
  fs::remove(data);
  if (status != 0) throw ValueError("gnuplot failed to write " + path);
}

void save_checkpoint(const std::string& dir, const MLP& model, const Optimizer& optimizer,
                     const Config& c, int epoch, Normalization norm,
                     const std::vector<EpochResult>& results) {
  save(model, dir + "/model");
  save(optimizer, dir + "/optimizer");
  nlohmann::json meta = {{"epoch", epoch},
                         {"hidden", c.hidden},
                         {"activation", c.activation},
                         {"optimizer", c.optimizer},
                         {"seed", c.seed},
                         {"mean", norm.mean},
                         {"std", norm.std},
                         {"history", nlohmann::json::array()}};
  for (const EpochResult& r : results)
    meta["history"].push_back(
        {r.epoch, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy, r.seconds});
  const std::string tmp = dir + "/training.json.tmp";
  std::ofstream(tmp) << meta.dump(2) << "\n";
  fs::rename(tmp, dir + "/training.json");
}

// Restores what save_checkpoint wrote; returns the number of epochs already done.
int load_checkpoint(const std::string& dir, MLP& model, Optimizer& optimizer, const Config& c,
                    std::vector<EpochResult>& results) {
  std::ifstream in(dir + "/training.json");
  if (!in) throw ValueError("--resume: no training.json in " + dir);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError("--resume: " + dir + "/training.json: " + e.what());
  }
  if (meta.value("hidden", std::vector<std::size_t>{}) != c.hidden ||
      meta.value("activation", "") != c.activation || meta.value("optimizer", "") != c.optimizer)
    throw ValueError("--resume: the checkpoint in " + dir +
                     " is of another network or optimizer (hidden " +
                     meta.value("hidden", nlohmann::json()).dump() + ", " +
                     meta.value("activation", "?") + ", " + meta.value("optimizer", "?") + ")");
  load(model, dir + "/model");
  load(optimizer, dir + "/optimizer");
  for (const auto& h : meta["history"])
    results.push_back({h[0].get<int>(), h[1].get<double>(), h[2].get<double>(), h[3].get<double>(),
                       h[4].get<double>(), h[5].get<double>()});
  return meta.value("epoch", 0);
}

int run(const Config& c) {
  set_num_threads(c.threads);
  if (!c.plot.empty() && std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw ValueError(
        "--plot needs gnuplot, which is not installed (./dev installs it; or apt-get install "
        "gnuplot-nox)");
  std::vector<std::string> files;
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    files.push_back(find_file(c.data, name));
  TensorDataset train = load_idx_dataset(files[0], files[1]);
  TensorDataset test = load_idx_dataset(files[2], files[3]);
  if (train.inputs().size(1) != test.inputs().size(1))
    throw ValueError("training images have " + std::to_string(train.inputs().size(1)) +
                     " pixels, test images " + std::to_string(test.inputs().size(1)));
  const Normalization norm = pixel_statistics(train);
  standardize(train, norm);
  standardize(test, norm);

  std::vector<std::size_t> sizes = {train.inputs().size(1)};
  sizes.insert(sizes.end(), c.hidden.begin(), c.hidden.end());
  std::size_t classes = 0;
  for (std::int64_t y : train.labels())
    classes = std::max(classes, static_cast<std::size_t>(y) + 1);
  sizes.push_back(classes);
  Generator gen(c.seed);
  MLP model(sizes, c.activation, Dtype::float32, gen);
  std::unique_ptr<Optimizer> optimizer;
  if (c.optimizer == "sgd")
    optimizer = std::make_unique<SGD>(
        model.parameters(),
        SGDOptions{.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
  else
    optimizer = std::make_unique<AdamW>(model.parameters(),
                                        AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  std::vector<EpochResult> results;
  const int done = c.resume.empty() ? 0 : load_checkpoint(c.resume, model, *optimizer, c, results);
  optimizer->set_lr(c.lr);
  std::unique_ptr<LRScheduler> schedule;
  if (c.schedule == "cosine") schedule = std::make_unique<CosineAnnealingLR>(*optimizer, c.epochs);
  if (c.schedule == "step")
    schedule = std::make_unique<StepLR>(*optimizer, std::max(1, c.epochs / 3), 0.1);
  for (int e = 0; e < done && schedule; ++e) schedule->step();

  std::printf("%s: %zu training and %zu test images; model %s\n", c.data.c_str(), train.size(),
              test.size(),
              [&] {
                std::string s;
                for (std::size_t d : sizes) s += (s.empty() ? "" : "-") + std::to_string(d);
                return s + " " + c.activation;
              }()
                  .c_str());
  std::fflush(stdout);
  DataLoader loader(train, {.batch_size = c.batch_size, .shuffle = true, .seed = c.seed});
  loader.set_epoch(static_cast<std::size_t>(done));
  for (int epoch = done + 1; epoch <= c.epochs; ++epoch) {
    const EpochResult r = train_epoch(model, *optimizer, loader, test, epoch, c.epochs);
    results.push_back(r);
    std::printf("epoch %2d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.2f s\n", epoch,
                c.epochs, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy, r.seconds);
    std::fflush(stdout);
    if (schedule) schedule->step();
    if (!c.save.empty()) save_checkpoint(c.save, model, *optimizer, c, epoch, norm, results);
    if (!c.log.empty()) write_log(c.log, results);
  }
  if (!c.plot.empty()) write_plot(c.plot, results);
  const double accuracy =
      results.empty() ? evaluate(model, test).second : results.back().test_accuracy;
  std::printf("test_accuracy=%.4f\n", accuracy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"Train an MLP on Fashion-MNIST (or MNIST) with xgrad."};
  app.add_option("--data", c.data, "folder of the IDX files (.gz or plain)")->capture_default_str();
  app.add_option("--epochs", c.epochs, "epochs in all (counting those of a resumed run)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "examples per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--lr", c.lr, "learning rate")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--optimizer", c.optimizer, "sgd or adam (AdamW with --weight-decay)")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  app.add_option("--momentum", c.momentum, "SGD momentum")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "weight decay")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--schedule", c.schedule,
                 "learning-rate schedule over the epochs: cosine, step or none")
      ->check(CLI::IsMember({"cosine", "step", "none"}))
      ->capture_default_str();
  app.add_option("--hidden", c.hidden, "hidden layer sizes, e.g. 256,128")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option(
         "--activation", c.activation,
         "hidden activation: " +
             [] {
               std::string s;
               for (const std::string& n : activation_names()) s += (s.empty() ? "" : ", ") + n;
               return s;
             }())
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the initialization and the shuffling")
      ->capture_default_str();
  app.add_option("--threads", c.threads, "OpenBLAS threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--save", c.save, "folder to write a checkpoint to after every epoch");
  app.add_option("--resume", c.resume, "folder of a checkpoint to continue from");
  app.add_option("--log", c.log,
                 "CSV file: epoch, train loss, train accuracy, test loss, test accuracy, seconds");
  app.add_option("--plot", c.plot,
                 "PNG or SVG file of the loss and accuracy curves (needs gnuplot)");
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  try {
    make_activation(c.activation);
  } catch (const Error& e) {
    std::cerr << "train_fashion_mnist: --activation: " << e.what() << "\n";
    return 2;
  }
  try {
    return run(c);
  } catch (const Error& e) {
    std::cerr << "train_fashion_mnist: " << e.what() << "\n";
    return 2;
  } catch (const fs::filesystem_error& e) {
    std::cerr << "train_fashion_mnist: " << e.what() << "\n";
    return 2;
  }
}
