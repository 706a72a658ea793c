#pragma once
// What a training program shows and keeps of its epochs: a progress line on the terminal, a CSV
// log, and the curves drawn by gnuplot. Shared by the example programs; not part of the library.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace xgrad::programs {

struct EpochResult {
  int epoch;
  double train_loss, train_accuracy, test_loss, test_accuracy, seconds;
};

// A progress line on stderr, redrawn in place; only when stderr is a terminal.
class Progress {
 public:
  // `unit`: what update's count counts, per second ("img/s", "char/s"). Shown on a terminal only,
  // and only when `show` (rank 0 alone, in a data-parallel run).
  Progress(int epoch, int epochs, std::size_t batches, const char* unit = "img/s",
           bool show = true);
  void update(std::size_t done, double running_loss, std::size_t count);
  void clear() const;

 private:
  bool on_;
  int epoch_, epochs_;
  std::size_t batches_;
  const char* unit_;
  std::chrono::steady_clock::time_point start_;
};

// epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds: one row per epoch.
// ValueError when the file cannot be written whole.
void write_log(const std::string& path, const std::vector<EpochResult>& results);

// Loss and accuracy curves through gnuplot, PNG or SVG by the file's extension. gnuplot runs
// without a shell, on a script and into a folder of this process's own (mkdtemp): the path is
// written by this program, never seen by gnuplot, and no other file is created or removed.
// ValueError when the path is refused (plot_path_error), gnuplot is missing or fails, or the
// plot cannot be written whole.
void write_plot(const std::string& path, const std::vector<EpochResult>& results);
// Why `path` cannot be a plot's file (a control character, an extension other than .png or
// .svg), or "" when it can.
std::string plot_path_error(const std::string& path);
bool gnuplot_available();

// The results as rows of numbers (for a checkpoint's metadata), and back.
std::vector<std::vector<double>> to_rows(const std::vector<EpochResult>& results);
std::vector<EpochResult> from_rows(const std::vector<std::vector<double>>& rows);

}  // namespace xgrad::programs
