#include "autograd/allocator.hpp"

#include <malloc.h>

#include <cstdlib>

namespace xgrad {

bool keep_freed_memory() {
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return false;
  // Blocks up to 32 MiB come from the heap, and up to 256 MiB of free heap top stays mapped.
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
}

}  // namespace xgrad
