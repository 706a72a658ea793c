#pragma once
// The command line of the benchmark programs. The MLP-step programs (mlp_step, raw_step,
// memory_use) take the same flags, so that ./dev bench runs every peer on the same problem, and
// report the same statistic. Header-only on CLI11: raw_step links no xgrad.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace bench {

struct StepOptions {
  std::size_t batch = 64;
  std::size_t steps = 300;
  std::vector<std::size_t> dims = {784, 256, 128, 10};  ///< layer widths, inputs first
  int threads = 1;
};

// --batch, --steps (at least min_steps), --dims and, when with_threads, --threads.
inline void add_step_options(CLI::App& app, StepOptions& o, std::size_t min_steps,
                             bool with_threads = true) {
  app.add_option("--batch", o.batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "training steps")->check(CLI::Range(min_steps, std::size_t{1000000}));
  app.add_option("--dims", o.dims, "layer sizes, inputs first")->delimiter(',')->expected(2, 64);
  if (with_threads) app.add_option("--threads", o.threads, "BLAS threads")->check(CLI::PositiveNumber);
}

// Parses argv: -1 to go on, 0 after --help, 2 for a bad flag (after saying what is wrong).
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

// The step options from argv, for a program described by `description`: -1 to go on, or the
// status to exit with (0 after --help, 2 for a bad flag).
inline int parse_step_options(int argc, char** argv, const std::string& description,
                              StepOptions& o, std::size_t min_steps = 5, bool with_threads = true) {
  CLI::App app{description};
  add_step_options(app, o, min_steps, with_threads);
  return parse(app, argc, argv);
}

// Runs a benchmark's body: an exception (bad --dims, out of memory) is reported and exits 2.
template <class F>
int guarded(const char* program, F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
}

// The median of the times after the first fifth (the warm-up), as every peer reports it.
inline double median_after_warmup(std::vector<double> times) {
  const auto warm = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 5);
  std::sort(warm, times.end());
  return warm[(times.end() - warm) / 2];
}

}  // namespace bench
