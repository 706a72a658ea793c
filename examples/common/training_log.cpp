#include "examples/common/training_log.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/error.hpp"

extern char** environ;

namespace xgrad::programs {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Progress::Progress(int epoch, int epochs, std::size_t batches, const char* unit, bool show)
    : on_(show && isatty(STDERR_FILENO)),
      epoch_(epoch),
      epochs_(epochs),
      batches_(batches),
      unit_(unit),
      start_(Clock::now()) {}

void Progress::update(std::size_t done, double running_loss, std::size_t count) {
  if (!on_ || (done % 20 != 0 && done != batches_)) return;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const int width = 30, filled = static_cast<int>(width * done / batches_);
  std::fprintf(stderr, "\repoch %d/%d [%s%s] %zu/%zu loss %.4f %6.0f %s eta %4.1fs ", epoch_,
               epochs_, std::string(static_cast<std::size_t>(filled), '=').c_str(),
               std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), done, batches_,
               running_loss, static_cast<double>(count) / std::max(elapsed, 1e-9), unit_,
               elapsed / static_cast<double>(done) * static_cast<double>(batches_ - done));
}

void Progress::clear() const {
  if (on_) std::fprintf(stderr, "\r%s\r", std::string(100, ' ').c_str());
}

void write_log(const std::string& path, const std::vector<EpochResult>& results) {
  std::ofstream out(path);
  out << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n";
  for (const EpochResult& r : results)
    out << r.epoch << "," << r.train_loss << "," << r.train_accuracy << "," << r.test_loss << ","
        << r.test_accuracy << "," << r.seconds << "\n";
  out.close();
  if (!out) throw ValueError("cannot write the log " + path);
}

namespace {

// Runs a program by its argument vector (no shell); its exit status, or -1. quiet: its stdout
// goes to /dev/null, not into the calling program's output.
int run_program(const std::vector<std::string>& args, bool quiet = false) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A folder of this process's own under the temporary directory (mkdtemp: a new name, mode 0700),
// removed with what it holds when the object goes.
class PrivateFolder {
 public:
  PrivateFolder() {
    std::string pattern = (fs::temp_directory_path() / "xgrad-plot-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      throw ValueError("--plot: cannot create a temporary folder in " +
                       fs::temp_directory_path().string() + ": " + std::strerror(errno));
    path_ = pattern;
  }
  ~PrivateFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& bytes, const std::string& what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw ValueError("cannot write " + what + " " + path.string());
}

}  // namespace

bool gnuplot_available() { return run_program({"gnuplot", "--version"}, true) == 0; }

std::string plot_path_error(const std::string& path) {
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", c);
      return std::string("the path has a control character (") + code +
             "); give a file name without one";
    }
  const std::string extension = fs::path(path).extension().string();
  if (extension != ".png" && extension != ".svg")
    return "'" + path + "' must end in .png or .svg";
  return "";
}

void write_plot(const std::string& path, const std::vector<EpochResult>& results) {
  if (const std::string error = plot_path_error(path); !error.empty())
    throw ValueError("--plot: " + error);
  const bool svg = fs::path(path).extension() == ".svg";
  // gnuplot reads a script of this program's own and writes into a private folder: the user's
  // path never reaches gnuplot (nothing in it can be read as a command), and no file beside it is
  // touched. The points go inside the script, as a data block.
  const PrivateFolder folder;
  const fs::path script_path = folder / "curves.gp", drawn = folder / (svg ? "curves.svg" : "curves.png");
  std::ostringstream points;
  points.precision(10);
  for (const EpochResult& r : results)
    points << r.epoch << " " << r.train_loss << " " << r.test_loss << " " << r.train_accuracy
           << " " << r.test_accuracy << "\n";
  // Epochs are whole numbers: ticks on integers (about ten of them), and half an epoch of room
  // on each side, so that a single epoch still has an x range.
  const int first = results.empty() ? 1 : results.front().epoch;
  const int last = results.empty() ? 1 : results.back().epoch;
  const int tick = std::max(1, (last - first + 9) / 10);
  const std::string x_axis = "set xrange [" + std::to_string(first) + "-0.5:" +
                             std::to_string(last) + "+0.5]\nset xtics " + std::to_string(tick) +
                             "\nset format x '%.0f'\n";
  const std::string script =
      "$points << EOD\n" + points.str() + "EOD\n" + "set terminal " +
      (svg ? "svg size 900,400" : "png size 900,400") +
      "\nset output ARG1\n" + x_axis +  // ARG1: the first argument after the script's name
      "set multiplot layout 1,2\nset xlabel 'epoch'\nset grid\nset title 'loss'\n"
      "plot $points using 1:2 with linespoints title 'train', '' using 1:3 with linespoints "
      "title 'test'\nset title 'accuracy'\nset key bottom right\n"
      "plot $points using 1:4 with linespoints title 'train', '' using 1:5 with linespoints "
      "title 'test'\nunset multiplot\nset output\n";
  write_file(script_path, script, "the plot's script");
  const int status = run_program({"gnuplot", "-c", script_path.string(), drawn.string()});
  std::error_code ec;
  const auto size = fs::file_size(drawn, ec);
  if (status != 0 || ec || size == 0) throw ValueError("gnuplot failed to draw the plot " + path);
  std::ifstream in(drawn, std::ios::binary);
  const std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (image.size() != size) throw ValueError("cannot read gnuplot's plot " + drawn.string());
  write_file(path, image, "the plot");
}

std::vector<std::vector<double>> to_rows(const std::vector<EpochResult>& results) {
  std::vector<std::vector<double>> rows;
  for (const EpochResult& r : results)
    rows.push_back({static_cast<double>(r.epoch), r.train_loss, r.train_accuracy, r.test_loss,
                    r.test_accuracy, r.seconds});
  return rows;
}

std::vector<EpochResult> from_rows(const std::vector<std::vector<double>>& rows) {
  std::vector<EpochResult> out;
  for (const std::vector<double>& r : rows) {
    if (r.size() != 6) throw ValueError("an epoch's record has " + std::to_string(r.size()) +
                                        " numbers; expected 6");
    if (!(r[0] >= 0 && r[0] <= 1e9 && r[0] == std::floor(r[0])))
      throw ValueError("an epoch's record starts with " + std::to_string(r[0]) +
                       "; expected an epoch number");
    out.push_back({static_cast<int>(r[0]), r[1], r[2], r[3], r[4], r[5]});
  }
  return out;
}

}  // namespace xgrad::programs
