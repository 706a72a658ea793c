#pragma once
/// \file
/// Anomaly detection, as torch.autograd.detect_anomaly: while a DetectAnomalyGuard lives, every op
/// recorded on the tape checks its output for NaN and Inf, and backward checks every gradient it
/// computes. The first op to produce one throws an AnomalyError that names the op, the entry, and
/// where the op was created (the call stack of its forward, captured only in this mode: link with
/// -rdynamic, meson's export_dynamic, to see your own functions' names in it).
///
///   { DetectAnomalyGuard guard; loss = model(x); loss.backward(); }
///
/// It costs a scan of every output and gradient and a stack capture per op: a debugging tool.

namespace xgrad {

class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard();
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;
  static bool is_enabled();  ///< on the calling thread

 private:
  bool previous_;
};

}  // namespace xgrad
