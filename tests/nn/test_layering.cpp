// The layering of the source tree, checked on the files themselves: nn/ is written on autograd's
// public API only, and the library speaks its own language, not the exercise's.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;

namespace {

// Every C++ file under `folder` of the source tree, with its text.
std::vector<std::pair<std::string, std::string>> sources(const std::string& folder) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(XGRAD_SOURCE_DIR) / folder)) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".cpp" && ext != ".hpp") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    out.emplace_back(fs::relative(entry.path(), XGRAD_SOURCE_DIR).string(), text.str());
  }
  return out;
}

// The lines of `text` that match `pattern`, as "file:line: text".
std::vector<std::string> matches(const std::string& file, const std::string& text,
                                 const std::regex& pattern) {
  std::vector<std::string> out;
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n)
    if (std::regex_search(line, pattern)) out.push_back(file + ":" + std::to_string(n) + ": " + line);
  return out;
}

}  // namespace

TEST_CASE("nn/ uses only the public API of autograd/, never autograd/detail") {
  const std::regex forbidden(R"(autograd/detail|\bdetail::)");
  const auto files = sources("nn");
  CHECK(files.size() > 10);
  for (const auto& [file, text] : files)
    for (const std::string& hit : matches(file, text, forbidden)) {
      INFO(hit);
      CHECK_MESSAGE(false, "nn/ reaches into autograd's private helpers");
    }
}

TEST_CASE("the library speaks its own language: the exercise's words stay in its walkthrough") {
  // "the document", "question 2": the words of examples/walkthrough/ and docs/derivation.md.
  const std::regex exercise(R"(\b[Dd]ocument('s)?\b|\b[Qq]uestion \d)");
  for (const std::string folder : {"autograd", "nn"})
    for (const auto& [file, text] : sources(folder))
      for (const std::string& hit : matches(file, text, exercise)) {
        INFO(hit);
        CHECK_MESSAGE(false, "library code that speaks of the exercise");
      }
}
