// The training program, run as a user runs it, on a small synthetic IDX data set (and once, with
// its defaults, on the real Fashion-MNIST).
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/examples/run.hpp"
#include "tests/files.hpp"
#include "tests/scratch.hpp"

using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

using xgrad::testing::Run;
using xgrad::testing::write_idx;
Run run(const std::string& args) { return xgrad::testing::run_program(TRAINER, args); }

std::string last_line(const std::string& text) {
  const std::size_t end = text.find_last_not_of('\n');
  return text.substr(text.rfind('\n', end) + 1, end - text.rfind('\n', end));
}

double accuracy(const Run& r) {
  return std::stod(last_line(r.out).substr(std::string("test_accuracy=").size()));
}

// The line of epoch `e` without its time in seconds: the numbers a run must reproduce.
std::string epoch_numbers(const Run& r, const std::string& e) {
  const std::size_t at = r.out.find("epoch " + e);
  if (at == std::string::npos) return "(no epoch " + e + ")";
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  return line.substr(0, line.rfind("  "));
}

// This run's scratch folder.
const xgrad::testing::ScratchDir& scratch() {
  static const xgrad::testing::ScratchDir dir("train");
  return dir;
}

// 8 x 8 images of 4 classes: class c lights up quadrant c, under noise.
fs::path synthetic_data() {
  const fs::path dir = scratch() / "synthetic_idx";
  fs::create_directories(dir);
  std::mt19937 gen(7);
  for (auto [name, n] : {std::pair{"train"s, 600u}, std::pair{"t10k"s, 200u}}) {
    std::vector<std::uint8_t> images(n * 64), labels(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      labels[i] = static_cast<std::uint8_t>(gen() % 4);
      for (std::uint32_t p = 0; p < 64; ++p) {
        const std::uint32_t quadrant = (p / 8 >= 4) * 2 + (p % 8 >= 4);
        images[i * 64 + p] =
            static_cast<std::uint8_t>((quadrant == labels[i] ? 25 : 0) + gen() % 230);
      }
    }
    write_idx(dir / (name + "-images-idx3-ubyte.gz"), {n, 8, 8}, images);
    write_idx(dir / (name + "-labels-idx1-ubyte.gz"), {n}, labels);
  }
  return dir;
}

std::string small(const fs::path& data) {
  return "--data " + data.string() + " --hidden 16 --batch-size 32 --lr 0.01 ";
}

}  // namespace

TEST_CASE("training: epoch lines, a CSV log, and test_accuracy= as the last line") {
  const fs::path data = synthetic_data();
  const fs::path log = scratch() / "train_log.csv";
  const Run r = run(small(data) + "--epochs 3 --log " + log.string());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("epoch  1/3") != std::string::npos);
  CHECK(r.out.find("epoch  3/3") != std::string::npos);
  CHECK(last_line(r.out).rfind("test_accuracy=", 0) == 0);
  CHECK(accuracy(r) > 0.7);  // the classes overlap: about 0.8 is reachable
  std::ifstream in(log);
  std::string header, row;
  std::getline(in, header);
  CHECK(header == "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds");
  int rows = 0;
  while (std::getline(in, row)) ++rows;
  CHECK(rows == 3);
}

TEST_CASE("training --model cnn: learns, and resumes exactly with crops, flips and dropout") {
  const fs::path data = synthetic_data();
  const std::string cnn =
      "--data " + data.string() + " --hidden 16 --batch-size 32 --model cnn --channels 4,8 ";
  // Flips would swap the quadrants (and so the classes) of these images, and shifts blur them.
  const Run r = run(cnn + "--epochs 20 --augment none --lr 0.03");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("model cnn 4-8 channels (2 convolutions per block), hidden 16 relu, dropout "
                   "0.5\n") != std::string::npos);
  CHECK(accuracy(r) > 0.7);  // chance is 0.25
  CHECK(r.out.find(" s\n") != std::string::npos);  // the time of each epoch
  // A run resumed after epoch 2 sees the same crops, flips and dropout masks in epoch 3.
  const std::string args = cnn + "--augment crop+flip --dropout 0.5 --optimizer sgd --schedule none ";
  const Run straight = run(args + "--epochs 3");
  const fs::path ckpt = scratch() / "cnn_ckpt";
  REQUIRE(run(args + "--epochs 2 --save " + ckpt.string()).status == 0);
  const Run resumed = run(args + "--epochs 3 --resume " + ckpt.string());
  INFO(straight.out << resumed.out << resumed.err);
  CHECK(epoch_numbers(resumed, " 3/3") == epoch_numbers(straight, " 3/3"));
  // options that do not fit
  const Run mlp_dropout = run(small(data) + "--epochs 1 --dropout 0.5");
  CHECK(mlp_dropout.status == 2);
  CHECK(mlp_dropout.err.find("--dropout is an option of --model cnn") != std::string::npos);
  const Run too_deep = run(cnn + "--epochs 1 --channels 4,4,4,4");
  CHECK(too_deep.status == 2);
  CHECK(too_deep.err.find("pooling blocks leave nothing") != std::string::npos);
}

TEST_CASE("training: the same seed gives the same numbers, and a resumed run continues exactly") {
  const fs::path data = synthetic_data();
  const fs::path ckpt = scratch() / "ckpt";
  fs::remove_all(ckpt);
  const Run straight =
      run(small(data) + "--epochs 3 --optimizer sgd --momentum 0.9 --schedule none");
  const Run again = run(small(data) + "--epochs 3 --optimizer sgd --momentum 0.9 --schedule none");
  REQUIRE(straight.status == 0);
  CHECK(epoch_numbers(straight, " 3/3") == epoch_numbers(again, " 3/3"));
  CHECK(last_line(straight.out) == last_line(again.out));
  const Run first =
      run(small(data) + "--epochs 2 --optimizer sgd --momentum 0.9 --schedule none --save " +
          ckpt.string());
  REQUIRE(first.status == 0);
  CHECK(fs::exists(ckpt / "model" / "0.weight.npy"));
  CHECK(fs::exists(ckpt / "optimizer" / "momentum_buffer.0.npy"));
  const Run resumed =
      run(small(data) + "--epochs 3 --optimizer sgd --momentum 0.9 --schedule none --resume " +
          ckpt.string());
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK(resumed.out.find("epoch  1/3") == std::string::npos);
  CHECK(resumed.out.find("epoch  3/3") != std::string::npos);
  CHECK(epoch_numbers(resumed, " 3/3") == epoch_numbers(straight, " 3/3"));
  CHECK(last_line(resumed.out) == last_line(straight.out));
  const Run other = run(small(data) + "--epochs 3 --hidden 8 --resume " + ckpt.string());
  CHECK(other.status == 2);
  CHECK(other.err.find("another model") != std::string::npos);
  // The same model in another run: other flags, or other data of the same shape. Refused, each
  // setting named with both values (--lr on a resume was ignored without a word).
  const std::string same = "--epochs 3 --optimizer sgd --momentum 0.9 --schedule none --resume " +
                           ckpt.string() + " ";
  const fs::path other_data = scratch() / "other_idx";
  fs::create_directories(other_data);
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(data / f, other_data / f, fs::copy_options::overwrite_existing);
  std::vector<std::uint8_t> relabelled(600);
  for (std::size_t i = 0; i < relabelled.size(); ++i)
    relabelled[i] = static_cast<std::uint8_t>(i % 4);
  write_idx(other_data / "train-labels-idx1-ubyte.gz", {600}, relabelled);
  const std::string model = "--data " + data.string() + " --hidden 16 ";
  const std::string sgd = " --epochs 3 --optimizer sgd --schedule none --resume " + ckpt.string();
  const std::vector<std::pair<std::string, std::string>> runs = {
      {small(data) + same + "--seed 5", "--seed: 5 here, 1 in the checkpoint"},
      {small(data) + same + "--weight-decay 0.5", "--weight-decay: 0.5 here, 0.0 in the checkpoint"},
      {model + "--batch-size 32 --lr 0.5 --momentum 0.9" + sgd,
       "--lr: 0.5 here, 0.01 in the checkpoint"},
      {model + "--batch-size 32 --lr 0.01 --momentum 0.5" + sgd,
       "--momentum: 0.5 here, 0.9 in the checkpoint"},
      {model + "--batch-size 16 --lr 0.01 --momentum 0.9" + sgd,
       "--batch-size: 16 here, 32 in the checkpoint"},
      {small(other_data) + same, "data train-labels-idx1-ubyte.gz: "},
  };
  for (const auto& [args, message] : runs) {
    const Run r = run(args);
    const auto& shown = args;  // INFO cannot capture a binding (clang 14)
    INFO(shown << "\n" << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("is of another run") != std::string::npos);
    CHECK(r.err.find(message) != std::string::npos);
  }
  // The same data in another folder is the same run.
  fs::copy_file(data / "train-labels-idx1-ubyte.gz", other_data / "train-labels-idx1-ubyte.gz",
                fs::copy_options::overwrite_existing);
  CHECK(run(small(other_data) + same).status == 0);
  // A crafted epoch: far beyond --epochs, or negative. Refused, not run for ages.
  std::ifstream in(ckpt / "checkpoint.json");
  std::string meta((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const std::size_t at = meta.find("\"epoch\": 2");
  REQUIRE(at != std::string::npos);
  for (const std::string epoch : {"1000000000000", "-3"}) {
    std::string crafted = meta;
    crafted.replace(at, 11, "\"epoch\": " + epoch);
    std::ofstream(ckpt / "checkpoint.json") << crafted;
    const Run r = run(small(data) + "--epochs 3 --optimizer sgd --momentum 0.9 --schedule none " +
                      "--resume " + ckpt.string());
    INFO(epoch << ": " << r.err);
    CHECK(r.status == 2);
  }
}

TEST_CASE("training: missing or bad data exits with status 2 and says why") {
  const Run missing = run("--data /nonexistent --epochs 1");
  CHECK(missing.status == 2);
  CHECK(missing.err.find("no train-images-idx3-ubyte(.gz) in /nonexistent") != std::string::npos);
  const fs::path bad = scratch() / "bad_idx";
  fs::create_directories(bad);
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(synthetic_data() / f, bad / f, fs::copy_options::overwrite_existing);
  fs::resize_file(bad / "train-images-idx3-ubyte.gz", 100);
  const Run truncated = run("--data " + bad.string() + " --epochs 1");
  CHECK(truncated.status == 2);
  CHECK(truncated.err.find("train-images-idx3-ubyte.gz") != std::string::npos);
  CHECK(run("--epochs 0").status == 2);
  CHECK(run("--optimizer rmsprop").status == 2);
  const Run act = run("--activation swish");
  CHECK(act.status == 2);
  CHECK(act.err.find("unknown activation 'swish'") != std::string::npos);
}

TEST_CASE("training: --plot draws the curves with gnuplot") {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    const Run r = run(small(synthetic_data()) + "--epochs 1 --plot " + (scratch() / "curves.svg").string());
    CHECK(r.status == 2);
    CHECK(r.err.find("gnuplot") != std::string::npos);
    return;
  }
  const fs::path plot = scratch() / "curves.svg";
  fs::remove(plot);
  const Run r = run(small(synthetic_data()) + "--epochs 2 --plot " + plot.string());
  REQUIRE(r.status == 0);
  std::ifstream in(plot);
  const std::string svg((std::istreambuf_iterator<char>(in)), {});
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.find("accuracy") != std::string::npos);

  // A file name that would run commands if it reached a shell or gnuplot unquoted.
  const fs::path hostile = scratch() / "x'; touch pwned; echo '.svg";
  const Run h = run(small(synthetic_data()) + "--epochs 1 --plot \"" + hostile.string() + "\"");
  INFO(h.err);
  CHECK(h.status == 0);
  CHECK(h.err.find("warning") == std::string::npos);  // one epoch: still an x range
  CHECK(fs::exists(hostile));
  CHECK_FALSE(fs::exists("pwned"));
  CHECK_FALSE(fs::exists(scratch() / "pwned"));

  // A newline would end a quoted string in a gnuplot script and start a command: refused before
  // anything runs, and nothing reaches gnuplot.
  const fs::path marker = scratch() / "ran";
  const Run newline = run(small(synthetic_data()) + "--epochs 1 --plot \"$(printf 'p.png\\nsystem(\"touch " +
                          marker.string() + "\")\\n#')\"");
  INFO(newline.err);
  CHECK(newline.status == 2);
  CHECK(newline.err.find("control character (0x0a)") != std::string::npos);
  CHECK_FALSE(fs::exists(marker));

  // The user's own files beside the plot are neither overwritten nor removed.
  std::ofstream(plot.string() + ".dat") << "mine";
  std::ofstream(plot.string() + ".gp") << "mine too";
  REQUIRE(run(small(synthetic_data()) + "--epochs 1 --plot " + plot.string()).status == 0);
  std::ifstream dat(plot.string() + ".dat"), gp(plot.string() + ".gp");
  CHECK(std::string((std::istreambuf_iterator<char>(dat)), {}) == "mine");
  CHECK(std::string((std::istreambuf_iterator<char>(gp)), {}) == "mine too");

  // A plot that cannot be written whole (a full disk, a missing folder) is an error, not exit 0.
  const fs::path full = scratch() / "full.svg";
  fs::remove(full);
  fs::create_symlink("/dev/full", full);
  for (const fs::path& bad : {full, scratch() / "no_such_folder" / "c.svg"}) {
    const Run r = run(small(synthetic_data()) + "--epochs 1 --plot " + bad.string());
    INFO(bad << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("cannot write the plot") != std::string::npos);
  }
  CHECK(run(small(synthetic_data()) + "--epochs 1 --plot " + (scratch() / "c.pdf").string()).status == 2);
}

TEST_CASE("training: bad values, bad labels and failed writes exit 2 and say why") {
  const fs::path data = synthetic_data();
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"--hidden -5", "must be a whole number from 1 to 65536, got -5"},
      {"--hidden 100000000", "must be a whole number from 1 to 65536"},
      {"--momentum nan", "must be a number from 0 to 1, got nan"},
      {"--weight-decay nan", "must be a number >= 0"},
      {"--lr -1", "must be a number >= 0, got -1"},
      {"--batch-size 0", "must be a whole number from 1 to"},
  };
  for (const auto& [args, message] : flags) {
    const Run r = run(small(data) + "--epochs 1 " + args);
    const auto& shown = args;  // INFO cannot capture a binding (clang 14)
    INFO(shown << "\n" << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find(message) != std::string::npos);
    CHECK(r.err.find("179769313486231570") == std::string::npos);  // no 300-digit bounds
  }
  const Run full_log = run(small(data) + "--epochs 1 --log /dev/full");
  CHECK(full_log.status == 2);
  CHECK(full_log.err.find("cannot write the log /dev/full") != std::string::npos);
  const Run full_out = run(small(data) + "--epochs 1 >/dev/full");
  CHECK(full_out.status == 2);
  CHECK(full_out.err.find("could not write the output") != std::string::npos);

  // A stray label 255 in the training labels, then a test label no training label has.
  const fs::path bad = scratch() / "bad_labels";
  fs::create_directories(bad);
  for (const char* f : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(data / f, bad / f, fs::copy_options::overwrite_existing);
  std::vector<std::uint8_t> labels(600, 1);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>(i % 4);
  labels[17] = 255;
  write_idx(bad / "train-labels-idx1-ubyte.gz", {600}, labels);
  const Run stray = run("--data " + bad.string() + " --epochs 1");
  CHECK(stray.status == 2);
  CHECK(stray.err.find("class 4 has no training example") != std::string::npos);
  labels[17] = 1;
  write_idx(bad / "train-labels-idx1-ubyte.gz", {600}, labels);
  write_idx(bad / "t10k-labels-idx1-ubyte.gz", {200}, std::vector<std::uint8_t>(200, 7));
  const Run test_label = run("--data " + bad.string() + " --epochs 1");
  CHECK(test_label.status == 2);
  CHECK(test_label.err.find("test label 7 of image 0 is not one of the 4 classes") !=
        std::string::npos);
}

TEST_CASE("training: a save killed at any moment leaves a checkpoint that resumes exactly") {
  const fs::path data = synthetic_data();
  const std::string args = small(data) + "--epochs 8 --optimizer sgd --momentum 0.9 ";
  const auto start = std::chrono::steady_clock::now();
  const Run straight = run(args);
  const double run_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(straight.status == 0);
  std::mt19937 gen(11);
  int resumed = 0, midway = 0;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const fs::path ckpt = scratch() / ("killed_" + std::to_string(attempt));
    // Started; once its first checkpoint exists (so that timing on a slow machine cannot make
    // every kill too early), killed with SIGKILL after delay_ms, wherever it is: often inside a
    // save, since every epoch saves.
    const int delay_ms = static_cast<int>(run_ms * 0.6 * (gen() % 1000) / 1000.0);
    const std::string first = (ckpt / "checkpoint.json").string();
    const std::string command =
        "( " + std::string(TRAINER) + " " + args + "--save " + ckpt.string() +
        " >/dev/null 2>&1 & pid=$!; while [ ! -e " + first +
        " ] && kill -0 $pid 2>/dev/null; do sleep 0.002; done; sleep " +
        std::to_string(delay_ms / 1000.0) + "; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null ) " +
        "2>/dev/null";
    REQUIRE(std::system(command.c_str()) != -1);
    const Run r = run(args + "--resume " + ckpt.string());
    INFO("killed after " << delay_ms << " ms\n" << r.err);
    if (r.status == 2 && r.err.find("no checkpoint") != std::string::npos) continue;  // too soon
    CHECK(r.status == 0);
    CHECK(last_line(r.out) == last_line(straight.out));
    if (r.out.find("epoch  8/8") != std::string::npos) {  // it had not finished: it trained on
      CHECK(epoch_numbers(r, " 8/8") == epoch_numbers(straight, " 8/8"));
      ++midway;
    }
    CHECK_FALSE(fs::exists(ckpt.string() + ".new"));  // no leftovers of the killed save
    CHECK_FALSE(fs::exists(ckpt.string() + ".old"));
    ++resumed;
  }
  CHECK(resumed > 0);
  CHECK(midway > 0);
}

TEST_CASE("training: a run that diverges stops with exit 2 and keeps the last good checkpoint") {
  const fs::path data = synthetic_data();
  const fs::path ckpt = scratch() / "diverged";
  REQUIRE(run(small(data) + "--epochs 1 --save " + ckpt.string()).status == 0);
  std::ifstream in(ckpt / "checkpoint.json");
  const std::string good((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const std::string weights = (ckpt / "model" / "0.weight.npy").string();
  std::ifstream w(weights, std::ios::binary);
  const std::string good_weights((std::istreambuf_iterator<char>(w)), {});
  w.close();
  // A learning rate of 1e300 takes the weights to inf and the loss to NaN in the first epoch.
  const Run r = run("--data " + data.string() + " --hidden 16 --batch-size 32 --lr 1e300 " +
                    "--epochs 2 --save " + ckpt.string());
  INFO(r.out << r.err);
  CHECK(r.status == 2);
  CHECK(r.err.find("training diverged in epoch 1") != std::string::npos);
  CHECK(r.err.find("the last checkpoint in " + ckpt.string() + " is kept") != std::string::npos);
  std::ifstream again(ckpt / "checkpoint.json");
  CHECK(std::string((std::istreambuf_iterator<char>(again)), {}) == good);
  std::ifstream w2(weights, std::ios::binary);
  CHECK(std::string((std::istreambuf_iterator<char>(w2)), {}) == good_weights);
}

// A 1 MB .gz declaring 256 MB of pixels (1 GB as floats), under a 1.5 GB limit of address space.
// AddressSanitizer reserves far more address space than that: not under ./dev sanitize.
TEST_CASE("training: running out of memory is a message and exit 2, not a crash" *
          doctest::skip(std::getenv("XGRAD_SANITIZED") != nullptr)) {
  const fs::path dir = scratch() / "huge";
  fs::create_directories(dir);
  const std::uint32_t n = 4096;
  std::vector<std::uint8_t> labels(n);
  for (std::uint32_t i = 0; i < n; ++i) labels[i] = static_cast<std::uint8_t>(i % 4);
  write_idx(dir / "train-images-idx3-ubyte.gz", {n, 256, 256},
            std::vector<std::uint8_t>(std::size_t{n} * 256 * 256, 0));
  write_idx(dir / "train-labels-idx1-ubyte.gz", {n}, labels);
  fs::copy_file(dir / "train-images-idx3-ubyte.gz", dir / "t10k-images-idx3-ubyte.gz");
  fs::copy_file(dir / "train-labels-idx1-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  CHECK(fs::file_size(dir / "train-images-idx3-ubyte.gz") < (std::size_t{2} << 20));
  const Run r = xgrad::testing::run_program("ulimit -v 1500000; " + std::string(TRAINER),
                                            "--data " + dir.string() + " --epochs 1");
  INFO(r.err);
  CHECK(r.status == 2);
  CHECK(r.err.find("out of memory") != std::string::npos);
}

// 15 epochs of real training: about 25 s in a release build, far longer under the sanitizers.
TEST_CASE(
    "training on Fashion-MNIST with the defaults reaches 89.5% test accuracy" *
    doctest::skip(!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") ||
                  std::getenv("XGRAD_SANITIZED") != nullptr)) {
  const Run r = run("");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("epoch 15/15") != std::string::npos);
  CHECK(accuracy(r) >= 0.895);
}

#ifdef MPIRUN
// ---- --distributed: the trainer on 2 ranks of mpirun ----------------------------------------------

namespace {

// mpirun with `args`. Open MPI wants its two variables to run as root (CI does); under the
// sanitizers its own leaks are suppressed by name (tests/openmpi.supp).
Run run_mpirun(const std::string& args) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  const std::string lsan = "suppressions="s + XGRAD_SOURCE_DIR +
                           "/tests/openmpi.supp:fast_unwind_on_malloc=0:print_suppressions=0";
  setenv("LSAN_OPTIONS", lsan.c_str(), 1);
  const Run r = xgrad::testing::run_program(MPIRUN, "--oversubscribe " + args);
  unsetenv("LSAN_OPTIONS");
  return r;
}

// The trainer on 2 ranks.
Run run_distributed(const std::string& args) {
  return run_mpirun("-np 2 "s + TRAINER + " --distributed " + args);
}

// Rank 0 started with args0, rank 1 with args1 (mpirun's MPMD form).
Run run_ranks(const std::string& args0, const std::string& args1) {
  return run_mpirun("-np 1 "s + TRAINER + " --distributed " + args0 + " : -np 1 " + TRAINER +
                    " --distributed " + args1);
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The numbers of epoch line `e`: train loss, train accuracy, test loss, test accuracy.
std::vector<double> epoch_values(const Run& r, const std::string& e) {
  std::istringstream line(epoch_numbers(r, e));
  std::vector<double> values;
  for (std::string word; line >> word;)
    if (!word.empty() && (std::isdigit(static_cast<unsigned char>(word[0])) != 0) &&
        word.find('/') == std::string::npos)
      values.push_back(std::stod(word));
  return values;
}

}  // namespace

TEST_CASE("training --distributed: one process's numbers on 2 ranks; rank 0 alone prints, "
          "writes and resumes") {
  const fs::path data = synthetic_data();
  const std::string args = small(data) + "--optimizer sgd --momentum 0.9 --schedule none ";
  const Run single = run(args + "--epochs 3");
  const fs::path log = scratch() / "distributed_log.csv", ckpt = scratch() / "distributed_ckpt";
  const Run parallel = run_distributed(args + "--epochs 3 --log " + log.string());
  INFO(parallel.out << parallel.err);
  REQUIRE(parallel.status == 0);
  CHECK(parallel.out.find("2 ranks, 16 images of each batch of 32 per rank") != std::string::npos);
  CHECK(count(parallel.out, "epoch  3/3") == 1);
  CHECK(count(parallel.out, "test_accuracy=") == 1);
  // The same steps in float32, summed in another order: the same figures but for rounding (a test
  // accuracy step is 1/200).
  const std::vector<double> a = epoch_values(single, " 3/3"), b = epoch_values(parallel, " 3/3");
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  CHECK(b[0] == doctest::Approx(a[0]).epsilon(2e-3));
  CHECK(b[2] == doctest::Approx(a[2]).epsilon(2e-3));
  CHECK(std::abs(b[3] - a[3]) <= 0.011);
  std::ifstream in(log);
  std::string row;
  int rows = 0;
  while (std::getline(in, row)) ++rows;
  CHECK(rows == 4);  // the header and 3 epochs
  // Saved after epoch 2 and resumed on 2 ranks: epoch 3 as in the unbroken run.
  REQUIRE(run_distributed(args + "--epochs 2 --save " + ckpt.string()).status == 0);
  const Run resumed = run_distributed(args + "--epochs 3 --resume " + ckpt.string());
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK(count(resumed.out, "resumed from") == 1);
  CHECK(epoch_numbers(resumed, " 3/3") == epoch_numbers(parallel, " 3/3"));
}

TEST_CASE("training --distributed --model cnn runs on 2 ranks") {
  const Run r = run_distributed("--data " + synthetic_data().string() +
                                " --hidden 16 --batch-size 32 --model cnn --channels 4,8 "
                                "--epochs 1 --augment none");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(count(r.out, "epoch  1/1") == 1);
  CHECK(last_line(r.out).rfind("test_accuracy=", 0) == 0);
}

TEST_CASE("training --distributed: a rank that fails ends the job with its message") {
  const fs::path data = synthetic_data();
  // Rank 0 alone writes checkpoints: it fails after epoch 1, while rank 1 goes on into epoch 2 and
  // waits for it in the first allreduce. The job must end, not hang.
  const fs::path file = scratch() / "not_a_folder";
  std::ofstream(file) << "x";
  const auto start = std::chrono::steady_clock::now();
  const Run r = run_distributed(small(data) + "--epochs 50 --save " + (file / "ckpt").string());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(r.out << r.err);
  CHECK(r.status != 0);
  CHECK(r.err.find("train_fashion_mnist (rank 0): ") != std::string::npos);
  CHECK(r.err.find("not_a_folder") != std::string::npos);
  CHECK(count(r.out, "epoch  2/50") == 0);
  CHECK(seconds < 60);  // 50 epochs would take minutes; the abort takes a few seconds
  // MPI_Abort's message reached Debian's mpirun garbled (and sometimes crashed it): not used.
  CHECK(r.err.find("ORTE_ERROR_LOG") == std::string::npos);
  // Bad input on every rank: status 2 and the reason.
  const Run uneven = run_distributed("--data " + data.string() + " --epochs 1 --batch-size 33");
  CHECK(uneven.status == 2);
  CHECK(uneven.err.find("--batch-size 33 (the global batch) is not a multiple of the 2 ranks") !=
        std::string::npos);
}

TEST_CASE("training --distributed: ranks started with different settings exit 2, never hang") {
  // Before: another --batch-size or data set corrupted the heap inside MPI_Allreduce, another
  // --epochs or --resume hung, another --lr, --optimizer, --seed, --schedule or --activation
  // trained diverging models without a word.
  const fs::path data = synthetic_data();
  const fs::path other_data = scratch() / "rank_idx";
  fs::create_directories(other_data);
  for (const char* f : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(data / f, other_data / f, fs::copy_options::overwrite_existing);
  std::vector<std::uint8_t> labels(600);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>(i % 4);
  write_idx(other_data / "train-labels-idx1-ubyte.gz", {600}, labels);
  const std::string common = "--data " + data.string() + " --hidden 16 ";
  const std::string base = common + "--batch-size 32 --epochs 2";
  const fs::path ckpt = scratch() / "rank_ckpt";
  REQUIRE(run(common + "--batch-size 32 --epochs 1 --save " + ckpt.string()).status == 0);
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {common + "--batch-size 64 --epochs 2", "--batch-size: 32 on rank 0, 64 on rank 1"},
      {"--data " + other_data.string() + " --hidden 16 --batch-size 32 --epochs 2",
       "data train-labels-idx1-ubyte.gz: "},
      {common + "--batch-size 32 --epochs 3", "--epochs: 2 on rank 0, 3 on rank 1"},
      {base + " --resume " + ckpt.string(), "resumed after epoch: 0 on rank 0, 1 on rank 1"},
      {base + " --lr 0.01", "--lr: 0.001 on rank 0, 0.01 on rank 1"},
      {base + " --optimizer sgd", "--optimizer: adam on rank 0, sgd on rank 1"},
      {base + " --seed 2", "--seed: 1 on rank 0, 2 on rank 1"},
      {base + " --schedule none", "--schedule: cosine on rank 0, none on rank 1"},
      {base + " --activation tanh", "--activation: relu on rank 0, tanh on rank 1"},
  };
  for (const auto& [other, message] : kinds) {
    const Run r = run_ranks(base, other);
    const auto& shown = other;  // INFO cannot capture a binding (clang 14)
    INFO(shown << "\n" << r.out << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("the ranks were started with different settings") != std::string::npos);
    CHECK(r.err.find(message) != std::string::npos);
    CHECK(count(r.out, "epoch  1/") == 0);
  }
  // Alike: trains.
  CHECK(run_ranks(base, base).status == 0);
}
#endif
