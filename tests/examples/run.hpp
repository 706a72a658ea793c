#pragma once
// Runs one of the example programs as a user would, from a shell, for the tests of tests/examples.

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/scratch.hpp"

namespace xgrad::testing {

struct Run {
  int status;       // the exit status (-1 if the program did not exit normally)
  std::string out;  // what it printed on stdout
  std::string err;  // and on stderr
};

inline Run run_program(const std::string& program, const std::string& args) {
  static const ScratchDir dir("stderr");
  const std::filesystem::path err = dir / (std::filesystem::path(program).filename().string() + ".txt");
  const std::string command = program + " " + args + " 2>" + err.string();
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  std::ifstream e(err);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out,
          std::string(std::istreambuf_iterator<char>(e), {})};
}

}  // namespace xgrad::testing
