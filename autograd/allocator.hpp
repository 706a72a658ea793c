#pragma once
/// \file
/// Memory settings for training programs: an explicit call, never a side effect of linking xgrad.

namespace xgrad {

/// Asks glibc's malloc to keep freed memory in the process instead of handing it back to the
/// kernel. Training allocates the same large buffers (activations, gradients) at every step; with
/// glibc's defaults every buffer above 128 KiB is unmapped when freed and page-faulted back in at
/// the next step (10-20% of a step of a 784-256-128-10 MLP at batch 256). With this call the
/// resident size stays at the peak of one step instead. It changes the whole process's malloc, so
/// a program calls it once, at its start; xgrad's training example and benchmarks do.
///
/// Does nothing, and returns false, when the user already tunes malloc through the environment
/// (GLIBC_TUNABLES, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_). Returns true once applied.
bool keep_freed_memory();

}  // namespace xgrad
