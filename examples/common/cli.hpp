#pragma once
// The command line of xgrad's programs (examples and benchmarks): CLI11, with the exit statuses
// the project promises: --help exits 0, a bad flag or value exits 2 after saying what is wrong.

#include <CLI/CLI.hpp>

namespace xgrad::cli {

// Parses argv into `app`. Returns the status to exit with (0 after --help, 2 for bad input), or
// -1 when the program should go on.
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return -1;
}

}  // namespace xgrad::cli
