#include "examples/common/training_run.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "autograd/error.hpp"

namespace xgrad::programs {

TrainingRun::TrainingRun(nn::Checkpoint& checkpoint, RunFiles files, int epochs)
    : checkpoint_(checkpoint), files_(std::move(files)) {
  if (!files_.plot.empty())
    if (const std::string error = plot_path_error(files_.plot); !error.empty())
      throw ValueError("--plot: " + error);
  if (!files_.plot.empty() && !gnuplot_available())
    throw ValueError(
        "--plot needs gnuplot, which is not installed (./dev installs it; or apt-get install "
        "gnuplot-nox)");
  if (files_.resume.empty()) return;
  checkpoint_.load(files_.resume);
  try {
    const nlohmann::json meta = nlohmann::json::parse(checkpoint_.metadata);
    results_ = from_rows(meta.at("history").get<std::vector<std::vector<double>>>());
    if (meta.contains("program")) extra_ = meta.at("program").dump();
  } catch (const nlohmann::json::exception& e) {
    throw ValueError("--resume: the history in " + files_.resume + " is not readable: " + e.what());
  }
  if (checkpoint_.epoch > epochs)
    throw ValueError("--resume: the checkpoint in " + files_.resume + " is of epoch " +
                     std::to_string(checkpoint_.epoch) + ", after the last (--epochs " +
                     std::to_string(epochs) + ")");
  std::printf("resumed from %s after epoch %lld\n", files_.resume.c_str(),
              static_cast<long long>(checkpoint_.epoch));
}

void TrainingRun::end_epoch(const EpochResult& result, const std::string& extra) {
  results_.push_back(result);
  extra_ = extra;
  if (!files_.save.empty()) {
    checkpoint_.epoch = result.epoch;
    checkpoint_.metadata = nlohmann::json{
        {"program", nlohmann::json::parse(extra)},
        {"history",
         to_rows(results_)}}.dump();
    checkpoint_.save(files_.save);
  }
  if (!files_.log.empty()) write_log(files_.log, results_);
}

void TrainingRun::finish() const {
  if (!files_.plot.empty()) write_plot(files_.plot, results_);
}

namespace {

// One write per message: the ranks of a data-parallel run share one stderr, and a message written
// in pieces came out interleaved with the other rank's.
void report(const char* program, const std::string& message) {
  const std::string line = std::string(program) + ": " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

int guarded_main(const char* program, const std::function<void()>& body) {
  try {
    body();
    // What was printed must have reached its destination (a full disk, a closed pipe).
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw ValueError("could not write the output: " + std::string(std::strerror(errno)));
    return 0;
  } catch (const Error& e) {  // bad input: flags, data, checkpoints, files that cannot be written
    report(program, e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    report(program, e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    report(program,
           "out of memory: the data or the sizes asked for are too large for this machine");
    return 2;
  } catch (const std::exception& e) {
    report(program, std::string("internal error: ") + e.what());
    return 3;
  }
}

}  // namespace xgrad::programs
