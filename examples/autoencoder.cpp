// A convolutional autoencoder on Fashion-MNIST (or MNIST: the same IDX files): the images pass
// through a bottleneck of --latent numbers and come back; the loss is the mean squared error
// between each image and its reconstruction.
//
//   autoencoder                                    10 epochs on the 60000 training images
//   autoencoder --epochs 2 --limit 2000 --grid grid.png
//
//   encoder  Conv2d(1, 16, 3, stride 2) GroupNorm(4, 16) ReLU      28 x 28 -> 16 x 14 x 14
//            Conv2d(16, 32, 3, stride 2) GroupNorm(8, 32) ReLU     -> 32 x 7 x 7
//            Flatten, Linear(1568, latent)
//   decoder  Linear(latent, 1568) ReLU, Unflatten(1, {32, 7, 7})
//            ConvTranspose2d(32, 16, 3, stride 2) GroupNorm(4, 16) ReLU   -> 16 x 14 x 14
//            ConvTranspose2d(16, 1, 3, stride 2) Sigmoid                  -> 1 x 28 x 28
//
// --grid writes a PNG of test images (odd rows) over their reconstructions (even rows). The last
// lines on stdout are baseline_mse= (every image reconstructed as the mean training image) and
// test_mse=. Bad flags or data exit with status 2.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "autograd/blas.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/ops.hpp"
#include "examples/common/cli.hpp"
#include "examples/common/training_log.hpp"
#include "examples/common/training_run.hpp"
#include "nn/activation.hpp"
#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "nn/image.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/optim.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace fs = std::filesystem;

namespace {

struct Config {
  std::string data = "/usr/share/datasets/fashion-mnist";
  int epochs = 10;
  std::size_t limit = 0;  // 0: every image
  std::size_t batch_size = 128;
  double lr = 2e-3;
  std::size_t latent = 32;
  std::uint64_t seed = 1;
  int threads = 1;
  std::string grid;
};

// The first `limit` images of a data set (all of them for 0), with the images as their own
// targets.
TensorDataset images_of(const TensorDataset& data, std::size_t limit) {
  const std::size_t n = limit == 0 ? data.size() : std::min(limit, data.size());
  const Tensor images = narrow(data.inputs(), 0, 0, n);
  return TensorDataset(images, images);
}

// A 3x3 convolution of stride 2 that halves the side, with GroupNorm and ReLU.
void down(Sequential& net, std::size_t in, std::size_t out, Generator& gen) {
  net.push_back(std::make_shared<Conv2d>(Conv2dOptions(in, out, 3).stride(2).padding(1), gen));
  net.push_back(std::make_shared<GroupNorm>(out / 4, out));
  net.push_back(std::make_shared<ReLU>());
}

// Its mirror: a transposed 3x3 convolution of stride 2 that doubles the side.
std::shared_ptr<ConvTranspose2d> up(std::size_t in, std::size_t out, Generator& gen) {
  return std::make_shared<ConvTranspose2d>(
      ConvTranspose2dOptions(in, out, 3).stride(2).padding(1).output_padding(1), gen);
}

std::shared_ptr<Sequential> make_autoencoder(std::size_t side_h, std::size_t side_w,
                                             std::size_t latent, Generator& gen) {
  const std::size_t h = side_h / 4, w = side_w / 4, code = 32 * h * w;
  auto net = std::make_shared<Sequential>();
  down(*net, 1, 16, gen);
  down(*net, 16, 32, gen);
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(code, latent, true, Dtype::float32, gen));
  net->push_back(std::make_shared<Linear>(latent, code, true, Dtype::float32, gen));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Unflatten>(1, Shape{32, h, w}));
  net->push_back(up(32, 16, gen));
  net->push_back(std::make_shared<GroupNorm>(4, 16));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(up(16, 1, gen));
  net->push_back(std::make_shared<Sigmoid>());
  return net;
}

// The mean squared error of the model's reconstructions over a data set.
double evaluate(Module& model, const TensorDataset& data) {
  NoGradGuard no_grad;
  model.eval();
  double sum = 0;
  for (const Batch& batch : DataLoader(data, {.batch_size = 1000}))
    sum += mse_loss(model(batch.data), batch.target, Reduction::sum).item();
  model.train();
  return sum / static_cast<double>(data.inputs().numel());
}

// The error of reconstructing every image as the mean training image: what a model that ignored
// its input would reach.
double mean_image_mse(const TensorDataset& train, const TensorDataset& test) {
  const Tensor mean_image = mean(train.inputs(), {0}, /*keepdims=*/true);
  return mse_loss(broadcast_to(mean_image, test.inputs().shape()), test.inputs()).item();
}

void run(const Config& c) {
  set_num_threads(c.threads);
  const std::vector<std::string> files = programs::idx_data_files(c.data);
  const TensorDataset train = images_of(load_idx_dataset(files[0], files[1]), c.limit);
  const TensorDataset test = images_of(load_idx_dataset(files[2], files[3]), c.limit);
  const Shape image = train.inputs().shape();
  if (image.size() != 4 || image[1] != 1 || image[2] % 4 != 0 || image[3] % 4 != 0 ||
      image[2] == 0 || image[3] == 0)
    throw ValueError(
        "the autoencoder takes single-channel images whose sides are multiples of 4 "
        "(two halvings), got training images " +
        shape_str(image));
  if (!std::equal(image.begin() + 1, image.end(), test.inputs().shape().begin() + 1,
                  test.inputs().shape().end()))
    throw ValueError("training images have shape " + shape_str(image) + ", test images " +
                     shape_str(test.inputs().shape()));
  Generator gen(c.seed);
  const auto model = make_autoencoder(image[2], image[3], c.latent, gen);
  Adam optimizer(model->parameters(), AdamOptions{.lr = c.lr});
  std::printf("%s: %zu training and %zu test images; convolutional autoencoder, latent %zu\n",
              c.data.c_str(), train.size(), test.size(), c.latent);
  std::fflush(stdout);
  DataLoader loader(train, {.batch_size = c.batch_size, .shuffle = true, .seed = c.seed});
  for (int epoch = 1; epoch <= c.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    programs::Progress progress(epoch, c.epochs, loader.num_batches());
    double sum = 0;
    std::size_t seen = 0, done = 0;
    for (const Batch& batch : loader) {
      optimizer.zero_grad();
      const Tensor loss = mse_loss((*model)(batch.data), batch.target);
      loss.backward();
      optimizer.step();
      sum += loss.item() * static_cast<double>(batch.data.size(0));
      seen += batch.data.size(0);
      progress.update(++done, sum / static_cast<double>(seen), seen);
    }
    progress.clear();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double train_loss = sum / static_cast<double>(seen);
    if (!std::isfinite(train_loss))
      throw ValueError("epoch " + std::to_string(epoch) + ": the training loss is " +
                       number_str(train_loss) + "; lower --lr");
    std::printf("epoch %2d/%d  train mse %.5f  test mse %.5f  %.2f s\n", epoch, c.epochs,
                train_loss, evaluate(*model, test), seconds);
    std::fflush(stdout);
  }
  if (!c.grid.empty()) {  // 16 test images over their reconstructions, in rows of 8
    NoGradGuard no_grad;
    model->eval();
    const std::size_t n = std::min<std::size_t>(16, test.size());
    const Tensor originals = narrow(test.inputs(), 0, 0, n);
    const Tensor rebuilt = (*model)(originals);
    std::vector<Tensor> rows;
    for (std::size_t at = 0; at < n; at += 8) {
      const std::size_t k = std::min<std::size_t>(8, n - at);
      rows.push_back(narrow(originals, 0, static_cast<std::ptrdiff_t>(at), k));
      rows.push_back(narrow(rebuilt, 0, static_cast<std::ptrdiff_t>(at), k));
    }
    utils::save_image(concat(rows), c.grid, {.nrow = std::min<std::size_t>(8, n)});
    std::printf("grid: %s\n", c.grid.c_str());
  }
  std::printf("baseline_mse=%.5f (the mean training image for every test image)\n",
              mean_image_mse(train, test));
  std::printf("test_mse=%.5f\n", evaluate(*model, test));
}

std::string grid_path_error(const std::string& path) {
  if (fs::path(path).extension() != ".png") return "'" + path + "' must end in .png";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"Train a convolutional autoencoder on Fashion-MNIST (or MNIST) with xgrad."};
  app.add_option("--data", c.data, "folder of the IDX files (.gz or plain)")->capture_default_str();
  app.add_option("--epochs", c.epochs, "epochs")
      ->check(cli::count_up_to(100000))
      ->capture_default_str();
  app.add_option("--limit", c.limit,
                 "use the first N training and the first N test images (0: all of them)")
      ->check(cli::number_rule("a whole number >= 0", 0, false, 1e12, true))
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "images per step")
      ->check(cli::count_up_to(1 << 20))
      ->capture_default_str();
  app.add_option("--lr", c.lr, "Adam's learning rate")
      ->check(cli::positive())
      ->capture_default_str();
  app.add_option("--latent", c.latent, "numbers in the bottleneck")
      ->check(cli::count_up_to(1 << 16))
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the initialization and the shuffling")
      ->capture_default_str();
  app.add_option("--threads", c.threads, "OpenBLAS threads")
      ->check(cli::count_up_to(1024))
      ->capture_default_str();
  app.add_option("--grid", c.grid, "PNG file of test images over their reconstructions")
      ->check(cli::rule(grid_path_error, "FILE.png"));
  if (const int status = cli::parse(app, argc, argv); status >= 0) return status;
  return programs::guarded_main("autoencoder", [&] { run(c); });
}
