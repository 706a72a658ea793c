#include "autograd/profiler.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "autograd/error.hpp"

namespace xgrad {
struct Profiler::State {
  int depth = 0;  // scopes open on this thread since the profiler started
  std::map<std::string, Profiler::Row, std::less<>> rows;
};

namespace {
thread_local Profiler::State* running = nullptr;  // the profiler of this thread, if one runs
thread_local std::string_view outermost_op;         // the op the user called, while it runs
}  // namespace

std::string_view current_op() { return outermost_op; }

Profiler::Profiler() : state_(std::make_unique<State>()) {
  if (running) throw AutogradError("Profiler: one is already running on this thread");
  running = state_.get();
  start_ = std::chrono::steady_clock::now();
}

Profiler::~Profiler() { stop(); }

void Profiler::stop() {
  if (!running_) return;
  end_ = std::chrono::steady_clock::now();
  running_ = false;
  if (running == state_.get()) running = nullptr;
}

double Profiler::elapsed_us() const {
  const auto end = running_ ? std::chrono::steady_clock::now() : end_;
  return std::chrono::duration<double, std::micro>(end - start_).count();
}

std::vector<Profiler::Row> Profiler::rows() const {
  std::vector<Row> out;
  for (const auto& [name, row] : state_->rows) out.push_back(row);
  std::stable_sort(out.begin(), out.end(),
                   [](const Row& a, const Row& b) { return a.total_us() > b.total_us(); });
  return out;
}

std::string Profiler::table() const {
  const double elapsed = elapsed_us();
  std::string s;
  char line[200];
  std::snprintf(line, sizeof line, "%-24s %8s %12s %8s %12s %12s %7s\n", "op", "calls",
                "forward us", "calls", "backward us", "total us", "share");
  s += line;
  double in_ops = 0;
  for (const Row& r : rows()) {
    in_ops += r.total_us();
    std::snprintf(line, sizeof line, "%-24s %8zu %12.1f %8zu %12.1f %12.1f %6.1f%%\n",
                  r.name.c_str(), r.forward_calls, r.forward_us, r.backward_calls, r.backward_us,
                  r.total_us(), elapsed > 0 ? 100 * r.total_us() / elapsed : 0.0);
    s += line;
  }
  const double other = std::max(0.0, elapsed - in_ops);
  std::snprintf(line, sizeof line, "%-24s %8s %12s %8s %12s %12.1f %6.1f%%\n", "(outside ops)", "",
                "", "", "", other, elapsed > 0 ? 100 * other / elapsed : 0.0);
  s += line;
  std::snprintf(line, sizeof line, "%-24s %8s %12s %8s %12s %12.1f\n", "elapsed", "", "", "", "",
                elapsed);
  s += line;
  return s;
}

ProfileScope::ProfileScope(std::string_view name, bool backward)
    : name_(name), backward_(backward) {
  if (outermost_op.empty()) {
    outermost_op = name;
    outermost_ = true;
  }
  if (!running) return;
  counted_ = true;
  if (running->depth++ > 0) return;  // inside another timed scope: it counts for that one
  timed_ = true;
  start_ = std::chrono::steady_clock::now();
}

ProfileScope::~ProfileScope() {
  if (outermost_) outermost_op = {};
  if (!counted_ || !running) return;  // the profiler stopped meanwhile: nothing to record
  if (running->depth > 0) --running->depth;
  if (!timed_) return;
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_).count();
  auto it = running->rows.find(name_);
  if (it == running->rows.end())
    it = running->rows.emplace(std::string(name_), Profiler::Row{std::string(name_)}).first;
  Profiler::Row& row = it->second;
  (backward_ ? row.backward_calls : row.forward_calls) += 1;
  (backward_ ? row.backward_us : row.forward_us) += us;
}

}  // namespace xgrad
