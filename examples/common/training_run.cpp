#include "examples/common/training_run.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <variant>
#include <nlohmann/json.hpp>

#include "autograd/error.hpp"
#include "nn/distributed.hpp"

namespace xgrad::programs {

std::string file_identity(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ValueError("cannot read " + path);
  std::vector<char> buffer(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::uint64_t bytes = 0;
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(in.gcount()));
    bytes += static_cast<std::uint64_t>(in.gcount());
  }
  if (in.bad()) throw ValueError("cannot read " + path);
  char text[64];
  std::snprintf(text, sizeof text, "%llu bytes, crc32 %08lx", static_cast<unsigned long long>(bytes),
                static_cast<unsigned long>(crc));
  return text;
}

std::string setting_value(double value) { return nlohmann::json(value).dump(); }

namespace {

// A setting as the ranks exchange it: its name and value in fixed fields (a long value keeps its
// start and a hash of the whole, so that any difference still shows).
constexpr std::size_t kMaxSettings = 64, kNameBytes = 32, kValueBytes = 96;

std::string fixed(const std::string& text, std::size_t bytes) {
  if (text.size() <= bytes) return text + std::string(bytes - text.size(), '\0');
  const std::string hash = " #" + std::to_string(std::hash<std::string>{}(text));
  return text.substr(0, bytes - hash.size()) + hash;
}

std::string unfixed(const std::string& field) { return field.substr(0, field.find('\0')); }

}  // namespace

void check_ranks_agree(const RunSettings& settings) {
  if (nn::distributed::world_size() == 1) return;
  if (settings.size() > kMaxSettings)
    throw ValueError("check_ranks_agree: " + std::to_string(settings.size()) +
                     " settings; at most " + std::to_string(kMaxSettings));
  constexpr std::size_t entry = kNameBytes + kValueBytes;
  std::string mine(kMaxSettings * entry, '\0');
  for (std::size_t i = 0; i < settings.size(); ++i)
    mine.replace(i * entry, entry,
                 fixed(settings[i].first, kNameBytes) + fixed(settings[i].second, kValueBytes));
  const std::vector<std::string> all = nn::distributed::all_gather(mine);
  std::string differences;
  for (std::size_t i = 0; i < kMaxSettings; ++i) {
    auto name = [&](std::size_t r) { return unfixed(all[r].substr(i * entry, kNameBytes)); };
    auto value = [&](std::size_t r) {
      return unfixed(all[r].substr(i * entry + kNameBytes, kValueBytes));
    };
    bool same = true;
    for (std::size_t r = 1; r < all.size(); ++r)
      same = same && name(r) == name(0) && value(r) == value(0);
    if (same) continue;
    differences += "\n  " + name(0) + ":";
    for (std::size_t r = 0; r < all.size(); ++r) {
      differences += r == 0 ? " " : ", ";
      if (name(r) == name(0))
        differences += value(r);
      else
        differences.append("(").append(name(r)).append(" ").append(value(r)).append(")");
      differences += " on rank " + std::to_string(r);
    }
  }
  if (!differences.empty())
    throw ValueError(
        "the ranks were started with different settings; every rank must be given the same "
        "flags, data and checkpoint:" +
        differences);
}

TrainingRun::TrainingRun(nn::Checkpoint& checkpoint, RunFiles files, int epochs,
                         RunSettings settings)
    : checkpoint_(checkpoint), files_(std::move(files)), settings_(std::move(settings)) {
  if (!files_.plot.empty() && !gnuplot_available())
    throw ValueError(
        "--plot needs gnuplot, which is not installed (./dev installs it; or apt-get install "
        "gnuplot-nox)");
  if (files_.resume.empty()) return;
  checkpoint_.load(files_.resume);
  nlohmann::json saved_settings;
  try {
    const nlohmann::json meta = nlohmann::json::parse(checkpoint_.metadata);
    results_ = from_rows(meta.at("history").get<std::vector<std::vector<double>>>());
    if (meta.contains("program")) extra_ = meta.at("program").dump();
    saved_settings = meta.value("run", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw ValueError("--resume: the history in " + files_.resume + " is not readable: " + e.what());
  }
  // The run must be the one the checkpoint continues: the same data, model, optimizer,
  // schedule and their settings. Only what docs/design.md lists may change (--epochs, ...).
  std::string differences;
  for (const auto& [name, value] : settings_) {
    const nlohmann::json& saved = saved_settings.is_object() && saved_settings.contains(name)
                                      ? saved_settings[name]
                                      : nlohmann::json();
    const std::string was = saved.is_string() ? saved.get<std::string>() : "(not recorded)";
    if (was != value) differences += "\n  " + name + ": " + value + " here, " + was + " in the checkpoint";
  }
  if (!differences.empty())
    throw ValueError("--resume: the checkpoint in " + files_.resume +
                     " is of another run; a resume continues the run it was saved from, and "
                     "changes only --epochs and the files and threads it uses. Different:" +
                     differences);
  if (checkpoint_.epoch > epochs)
    throw ValueError("--resume: the checkpoint in " + files_.resume + " is of epoch " +
                     std::to_string(checkpoint_.epoch) + ", after the last (--epochs " +
                     std::to_string(epochs) + ")");
  std::printf("resumed from %s after epoch %lld\n", files_.resume.c_str(),
              static_cast<long long>(checkpoint_.epoch));
}

namespace {

// The name of the first parameter of `module` with an entry that is not finite, or "".
std::string non_finite_parameter(const nn::Module& module) {
  for (const auto& [name, p] : module.named_parameters()) {
    const bool finite = std::visit(
        [](const auto& a) {
          return std::all_of(a.begin(), a.end(), [](auto v) { return std::isfinite(v); });
        },
        p.storage());
    if (!finite) return name;
  }
  return "";
}

}  // namespace

void TrainingRun::end_epoch(const EpochResult& result, const std::string& extra) {
  // A run that diverged stops here, before its weights replace the last good checkpoint.
  const std::string bad = checkpoint_.module() ? non_finite_parameter(*checkpoint_.module()) : "";
  if (!std::isfinite(result.train_loss) || !bad.empty()) {
    const std::string kept = files_.save.empty() ? ""
                             : nn::Checkpoint::exists(files_.save)
                                 ? "; the last checkpoint in " + files_.save + " is kept as it was"
                                 : "; nothing was saved";
    throw ValueError("training diverged in epoch " + std::to_string(result.epoch) + ": " +
                     (bad.empty() ? "the training loss is " + number_str(result.train_loss)
                                  : "parameter '" + bad + "' has entries that are not finite") +
                     " (a smaller --lr?)" + kept);
  }
  results_.push_back(result);
  extra_ = extra;
  if (!files_.save.empty()) {
    checkpoint_.epoch = result.epoch;
    nlohmann::json run = nlohmann::json::object();
    for (const auto& [name, value] : settings_) run[name] = value;
    checkpoint_.metadata = nlohmann::json{
        {"program", nlohmann::json::parse(extra)},
        {"run", run},
        {"history",
         to_rows(results_)}}.dump();
    checkpoint_.save(files_.save);
  }
  if (!files_.log.empty()) write_log(files_.log, results_);
}

void TrainingRun::finish() const {
  if (!files_.plot.empty()) write_plot(files_.plot, results_);
}

namespace {

// One write per message: the ranks of a data-parallel run share one stderr, and a message written
// in pieces came out interleaved with the other rank's.
void report(const char* program, const std::string& message) {
  const std::string line = std::string(program) + ": " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

std::vector<std::string> idx_data_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    const std::string plain = dir + "/" + name;
    if (std::filesystem::exists(plain + ".gz"))
      files.push_back(plain + ".gz");
    else if (std::filesystem::exists(plain))
      files.push_back(plain);
    else
      throw ValueError("no " + std::string(name) + "(.gz) in " + dir +
                       " (--data points to the folder of the IDX files)");
  }
  return files;
}

int guarded_main(const char* program, const std::function<void()>& body) {
  try {
    body();
    // What was printed must have reached its destination (a full disk, a closed pipe).
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw ValueError("could not write the output: " + std::string(std::strerror(errno)));
    return 0;
  } catch (const Error& e) {  // bad input: flags, data, checkpoints, files that cannot be written
    report(program, e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    report(program, e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    report(program,
           "out of memory: the data or the sizes asked for are too large for this machine");
    return 2;
  } catch (const std::exception& e) {
    report(program, std::string("internal error: ") + e.what());
    return 3;
  }
}

}  // namespace xgrad::programs
