#pragma once
// The process's resident high-water mark (VmHWM of /proc/self/status), in MB: memory as the
// machine sees it, the allocators' caches and the libraries' scratch included. 0 where unknown.
// Header-only and C++17, for the LibTorch peer too.

#include <fstream>
#include <string>

namespace bench {

inline double peak_resident_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // in kB
  return 0;
}

}  // namespace bench
