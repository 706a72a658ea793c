#include "autograd/anomaly.hpp"

namespace xgrad {

namespace {
thread_local bool anomaly_enabled = false;
}  // namespace

DetectAnomalyGuard::DetectAnomalyGuard() : previous_(anomaly_enabled) { anomaly_enabled = true; }
DetectAnomalyGuard::~DetectAnomalyGuard() { anomaly_enabled = previous_; }
bool DetectAnomalyGuard::is_enabled() { return anomaly_enabled; }

}  // namespace xgrad
