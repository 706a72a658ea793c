#pragma once
// The command line of xgrad's programs: CLI11, with the exit statuses the project promises:
// --help exits 0, a bad flag or value exits 2 after saying what is wrong.

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

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

// A check on a number that states its rule ("must be a number > 0"), refuses NaN and infinities,
// and never prints CLI11's 300-digit bounds. `whole` also refuses fractions and signs that would
// wrap around an unsigned option.
inline CLI::Validator number_rule(const std::string& rule, double low, bool low_open, double high,
                                  bool whole = false) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::size_t used = 0;
        double v = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        const bool ok = used == text.size() && std::isfinite(v) && (low_open ? v > low : v >= low) &&
                        v <= high && (!whole || v == std::floor(v));
        return ok ? std::string() : "must be " + rule + ", got " + text;
      },
      rule);
}
inline CLI::Validator positive() { return number_rule("a number > 0", 0, true, INFINITY); }
inline CLI::Validator non_negative() { return number_rule("a number >= 0", 0, false, INFINITY); }
inline CLI::Validator fraction() { return number_rule("a number from 0 to 1", 0, false, 1); }
// A whole number from 1 to `max`.
inline CLI::Validator count_up_to(double max) {
  char rule[64];
  std::snprintf(rule, sizeof rule, "a whole number from 1 to %.0f", max);
  return number_rule(rule, 1, false, max, true);
}

// A check by a function that says what is wrong with a value ("" when nothing is).
inline CLI::Validator rule(std::string (*why)(const std::string&), const std::string& description) {
  return CLI::Validator([why](std::string& text) { return why(text); }, description);
}

}  // namespace xgrad::cli
