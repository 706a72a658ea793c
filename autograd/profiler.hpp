#pragma once
/// \file
/// Where a step's time goes, per op, as torch.autograd.profiler: while a Profiler is alive, every
/// op called on its thread (forward) and every tape entry run by backward on it is timed and
/// counted.
///
///   xgrad::Profiler profiler;
///   train_step();
///   std::cout << profiler.table();
///
/// Times are inclusive of nothing else: an op called inside another op, or inside a backward
/// (linear's backward calls mm), counts for the outer one. Composite ops (mean, var, ...) show as
/// the primitives they are made of. Optimizer steps show as a row of their own ("SGD.step").
/// Profiling costs one clock read at each op's start and end; off, a flag test.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xgrad {

class Profiler {
 public:
  struct Row {
    std::string name;  ///< the op's name ("linear"), or the tape entry's ("linear+relu")
    std::size_t forward_calls = 0, backward_calls = 0;
    double forward_us = 0, backward_us = 0;
    double total_us() const { return forward_us + backward_us; }
  };

  struct State;  ///< (the measurements, kept by the thread while the profiler runs)

  Profiler();   ///< starts profiling this thread (AutogradError if a Profiler already is)
  ~Profiler();  ///< stops; destroy it on the thread that made it
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  /// One row per name, the most time first.
  std::vector<Row> rows() const;
  /// Microseconds since the profiler started (or until stop()).
  double elapsed_us() const;
  /// Ends the measurement; rows() and table() stay readable.
  void stop();
  /// The rows as a text table with each one's share of the elapsed time, and a last row for the
  /// time spent outside any op (the program's own code, data loading, the engine's bookkeeping).
  std::string table() const;

 private:
  std::unique_ptr<State> state_;
  std::chrono::steady_clock::time_point start_, end_;
  bool running_ = true;
};

/// Times the enclosing scope as `name` (a string that outlives the scope) when a Profiler runs on
/// this thread and no outer scope is being timed, as torch.profiler.record_function: one opens
/// each op, each tape entry's backward (backward = true) and each optimizer step. A custom op or
/// a program's own phase ("data") can open one too.
class ProfileScope {
 public:
  explicit ProfileScope(std::string_view name, bool backward = false);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  std::string_view name_;
  bool backward_ = false, counted_ = false, timed_ = false, outermost_ = false;
  std::chrono::steady_clock::time_point start_;
};

/// The name of the outermost ProfileScope open on this thread (the op the user called), or "" when
/// none: what an error deep inside an op names.
std::string_view current_op();

}  // namespace xgrad
