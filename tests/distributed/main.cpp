// The data-parallel tests' main: runs under `mpirun -np 2` (tests/meson.build). Every rank runs
// every test case (they call collectives); rank 0 prints the report, the others only failures.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "nn/distributed.hpp"

int main(int argc, char** argv) {
  xgrad::nn::distributed::Session mpi(argc, argv);
  doctest::Context context(argc, argv);
  // mpirun hands the ranks a terminal: no colour codes in the summary ./dev test reads.
  context.setOption("no-colors", true);
  if (xgrad::nn::distributed::rank() != 0) context.setOption("minimal", true);
  const int failed = context.run();
  // A rank that failed ends the job (the others may be waiting for it in a collective).
  if (failed != 0) xgrad::nn::distributed::abort(1);
  return context.shouldExit() ? failed : 0;
}
