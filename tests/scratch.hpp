#pragma once
// Scratch folders for tests that write files: each is new, empty and of its own (the process id
// in its name, so that two test runs at once never share one), and is removed with everything in
// it when it goes out of scope.

#include <unistd.h>

#include <filesystem>
#include <string>

namespace xgrad::testing {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("xgrad_" + name + "_" + std::to_string(getpid()) + "_" + std::to_string(count()++))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  static int& count() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

}  // namespace xgrad::testing
