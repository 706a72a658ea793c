#pragma once
// What every training program does around its epochs, written once: resuming from a checkpoint
// with the history of the epochs before, saving one and the CSV log after each epoch, the plot at
// the end; and main's mapping of failures to exit statuses. Not part of the library.

#include <functional>
#include <string>
#include <vector>

#include "examples/common/training_log.hpp"
#include "nn/serialize.hpp"

namespace xgrad::programs {

// The files a run reads and writes (empty: none).
struct RunFiles {
  std::string save, resume, log, plot;
};

// What defines a run, as (name, value) pairs: every flag that a resume may not change with its
// value, and the data's identity (file_identity). Saved with each checkpoint; a resume whose
// settings differ is refused, naming both values.
using RunSettings = std::vector<std::pair<std::string, std::string>>;

// A file's identity for RunSettings: its size and CRC-32 ("55000 bytes, crc32 1a2b3c4d").
// ValueError when it cannot be read.
std::string file_identity(const std::string& path);
// A number as a setting's value: the shortest text that reads back as the same double.
std::string setting_value(double value);

// In a data-parallel run, before any other collective: every rank's settings (fixed-size, one
// MPI_Allgather) are compared with rank 0's. ValueError on every rank, naming each setting that
// differs with each rank's value, when the ranks were not started alike (their collectives would
// otherwise mismatch: a hang, a corrupted heap, or models that silently diverge).
void check_ranks_agree(const RunSettings& settings);

class TrainingRun {
 public:
  // Checks that a plot can be drawn, then, with files.resume, loads the checkpoint (whose
  // objects are registered already) and the history kept in its metadata, and checks that the
  // checkpoint's run had the same `settings`. ValueError for a checkpoint of an epoch after the
  // last, of another run (naming each setting that differs, with both values), or metadata that
  // is not readable.
  TrainingRun(nn::Checkpoint& checkpoint, RunFiles files, int epochs, RunSettings settings);
  int epochs_done() const { return static_cast<int>(checkpoint_.epoch); }
  const std::vector<EpochResult>& results() const { return results_; }
  // The program's own metadata saved with the checkpoint (as a JSON object's text), kept across
  // a resume: what was given when the run began.
  std::string extra_metadata() const { return extra_; }
  // Records an epoch: the checkpoint and the log, when asked for. `extra`: a JSON object's text
  // (the program's own metadata, "{}" for none). A training loss or a parameter that is not
  // finite (a run that diverged) is a ValueError, and the last checkpoint is kept as it was.
  void end_epoch(const EpochResult& result, const std::string& extra = "{}");
  // Draws the plot, when asked for.
  void finish() const;

 private:
  nn::Checkpoint& checkpoint_;
  RunFiles files_;
  RunSettings settings_;
  std::vector<EpochResult> results_;
  std::string extra_ = "{}";
};

// The four IDX files of an MNIST-like data set in `dir`, each .gz or plain: training images,
// training labels, test images, test labels. ValueError naming the first one missing.
std::vector<std::string> idx_data_files(const std::string& dir);

// Runs a program's body: returns 0, or prints "program: message" on stderr and returns 2 for bad
// input (an xgrad Error, a file system error, memory exhausted by the sizes asked for) and 3 for
// anything else. Also fails when stdout could not be written whole.
int guarded_main(const char* program, const std::function<void()>& body);

}  // namespace xgrad::programs
