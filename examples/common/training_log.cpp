#include "examples/common/training_log.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

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

// A gnuplot string literal: single quotes, a quote inside doubled.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

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

}  // namespace

bool gnuplot_available() { return run_program({"gnuplot", "--version"}, true) == 0; }

void write_plot(const std::string& path, const std::vector<EpochResult>& results) {
  const fs::path data = path + ".dat", script_path = path + ".gp";
  {
    std::ofstream out(data);
    for (const EpochResult& r : results)
      out << r.epoch << " " << r.train_loss << " " << r.test_loss << " " << r.train_accuracy << " "
          << r.test_accuracy << "\n";
  }
  const bool svg = fs::path(path).extension() == ".svg";
  const std::string d = quoted(data.string());
  // Epochs are whole numbers: ticks on integers (about ten of them), and half an epoch of room
  // on each side, so that a single epoch still has an x range.
  const int first = results.empty() ? 1 : results.front().epoch;
  const int last = results.empty() ? 1 : results.back().epoch;
  const int tick = std::max(1, (last - first + 9) / 10);
  const std::string x_axis = "set xrange [" + std::to_string(first) + "-0.5:" +
                             std::to_string(last) + "+0.5]\nset xtics " + std::to_string(tick) +
                             "\nset format x '%.0f'\n";
  const std::string script =
      std::string("set terminal ") + (svg ? "svg size 900,400" : "png size 900,400") +
      "\nset output " + quoted(path) + "\n" + x_axis +
      "set multiplot layout 1,2\nset xlabel 'epoch'\nset grid\nset title 'loss'\nplot " + d +
      " using 1:2 with linespoints title 'train', '' using 1:3 with linespoints title 'test'\n"
      "set title 'accuracy'\nset key bottom right\nplot " +
      d +
      " using 1:4 with linespoints title 'train', '' using 1:5 with linespoints title "
      "'test'\nunset multiplot\n";
  std::ofstream(script_path) << script;
  const int status = run_program({"gnuplot", script_path.string()});
  fs::remove(script_path);
  fs::remove(data);
  if (status != 0) throw ValueError("gnuplot failed to write " + path);
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
