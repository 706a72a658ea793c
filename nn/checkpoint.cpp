// nn::Checkpoint: a module's, an optimizer's, a schedule's and generators' states in one folder,
// saved so that a crash at any moment leaves a whole checkpoint, loaded all or nothing, and never
// touching a folder that a save did not mark as its own (docs/design.md, "Checkpoints").
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>

#include "nn/serialize.hpp"
#include "nn/state_files.hpp"

namespace xgrad::nn {

namespace fs = std::filesystem;
using namespace state_files;

namespace {

using nlohmann::json;

constexpr char kFormat[] = "xgrad checkpoint 2";
constexpr char kOldFormat[] = "xgrad checkpoint 1";  // without the list of files: still read
// The file that marks a folder as written by Checkpoint::save: "save ID\nreplaces ID\n", the
// save's random identity and that of the checkpoint it replaces. Removed last when xgrad removes
// the folder, so that a removal cut short still leaves it marked.
constexpr char kMarker[] = ".xgrad-checkpoint";
constexpr std::uintmax_t kMaxJsonBytes = std::uintmax_t{64} << 20;

// What load checks: the model's tree and its parameters' shapes.
json describe(const Module& module) {
  json params = json::object();
  for (const auto& [name, p] : module.state_dict()) params[name] = shape_str(p.shape());
  return {{"tree", module.str()}, {"parameters", params}};
}

// "run/ckpt/" and "run/./ckpt" name the folder "run/ckpt".
fs::path folder(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.empty() || p.filename() == "." || p.filename() == "..")
    throw ValueError("checkpoint: '" + dir + "' does not name a folder of its own");
  return p;
}

fs::path sibling(const fs::path& dir, const std::string& suffix) {
  return dir.parent_path() / (dir.filename().string() + suffix);
}

// The type of p itself (a symbolic link is a link, not what it points to).
fs::file_type type_of(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type();
}
bool present(const fs::path& p) { return type_of(p) != fs::file_type::not_found; }
bool whole(const fs::path& dir) {
  return type_of(dir) == fs::file_type::directory &&
         type_of(dir / "checkpoint.json") == fs::file_type::regular;
}

// The first entry of `dir` that a checkpoint does not hold ("" when there is none): a checkpoint
// holds checkpoint.json, the marker, and model/ and optimizer/ folders of .npy files (and the
// .tmp files of a save under way). Anything else is somebody else's, and keeps the folder from
// ever being replaced or removed by xgrad.
std::string foreign_entry(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const fs::file_type type = type_of(entry.path());
    if (type == fs::file_type::regular &&
        (name == "checkpoint.json" || name == "checkpoint.json.tmp" || name == kMarker ||
         name == std::string(kMarker) + ".tmp"))
      continue;
    if (type == fs::file_type::directory && (name == "model" || name == "optimizer")) {
      for (const auto& inner : fs::directory_iterator(entry.path())) {
        const std::string file = inner.path().filename().string();
        if (type_of(inner.path()) != fs::file_type::regular ||
            !(file.ends_with(".npy") || file.ends_with(".npy.tmp")))
          return inner.path().string();
      }
      continue;
    }
    return entry.path().string();
  }
  return "";
}

struct Marker {
  std::string save, replaces;
};

// The marker of a folder that xgrad wrote and nobody added to; nothing otherwise.
std::optional<Marker> marker_of(const fs::path& dir) {
  if (type_of(dir) != fs::file_type::directory || type_of(dir / kMarker) != fs::file_type::regular)
    return std::nullopt;
  if (!foreign_entry(dir).empty()) return std::nullopt;
  std::ifstream in(dir / kMarker);
  Marker m;
  std::string key;
  if (!(in >> key >> m.save) || key != "save" || !(in >> key) || key != "replaces")
    return std::nullopt;
  in >> m.replaces;  // empty: the first save
  if (m.replaces == "-") m.replaces.clear();
  return m;
}

// Removes a folder that xgrad wrote, its marker last.
void remove_own(const fs::path& dir) {
  for (const std::string name :
       {"model", "optimizer", "checkpoint.json", "checkpoint.json.tmp", ".xgrad-checkpoint.tmp"})
    fs::remove_all(dir / name);
  fs::remove(dir / kMarker);
  fs::remove(dir);
}

// A folder that a save created and had not yet marked: empty, or holding only the marker being
// written (its .tmp).
bool is_unmarked_start(const fs::path& dir) {
  if (type_of(dir) != fs::file_type::directory) return false;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename() != std::string(kMarker) + ".tmp" ||
        type_of(entry.path()) != fs::file_type::regular)
      return false;
  return true;
}

// A save goes to DIR.new (marked first, checkpoint.json written last, by a rename), then DIR
// moves to DIR.old, DIR.new to DIR, and DIR.old is removed. A crash at any point leaves one whole
// checkpoint among the three; this makes it DIR again and removes the leftovers. It touches
// only folders that a save marked as its own and nobody added to, and DIR.old only once DIR
// is the checkpoint that replaced it: a user's folders named DIR.new or DIR.old, or a link, are
// left as they are (save then refuses to go on).
void finish_interrupted_save(const fs::path& dir) {
  const fs::path fresh = sibling(dir, ".new"), old = sibling(dir, ".old");
  for (const fs::path& p : {dir, fresh, old})
    if (type_of(p) == fs::file_type::symlink) return;
  if (is_unmarked_start(fresh)) fs::remove_all(fresh);  // created, not yet marked
  if (const std::optional<Marker> made = marker_of(fresh)) {
    if (!whole(fresh)) {
      remove_own(fresh);  // a save that did not finish
    } else if (!present(dir)) {
      fs::rename(fresh, dir);  // cut short between its two renames
    } else if (const std::optional<Marker> current = marker_of(dir);
               current && current->save == made->replaces && !present(old)) {
      fs::rename(dir, old);  // cut short before its renames
      fs::rename(fresh, dir);
    }
  }
  if (is_unmarked_start(old)) fs::remove_all(old);  // emptied: its marker went last
  const std::optional<Marker> current = marker_of(dir), previous = marker_of(old);
  if (current && previous && whole(dir) && current->replaces == previous->save) remove_own(old);
}

// meta[key] as a T, checked: an integer field must hold an integer within int64's range.
template <class T>
T field(const json& meta, const char* key, const std::string& file) {
  if (!meta.is_object() || !meta.contains(key))
    throw ValueError("load: " + file + " has no \"" + key + "\"");
  const json& v = meta.at(key);
  bool ok = false;
  if constexpr (std::is_same_v<T, std::int64_t>)
    ok = v.is_number_integer() && !(v.is_number_unsigned() &&
                                    v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX));
  else if constexpr (std::is_same_v<T, double>)
    ok = v.is_number() && std::isfinite(v.get<double>());
  else
    ok = v.is_string();
  if (!ok) throw ValueError("load: " + file + ": \"" + key + "\" is not of the expected type");
  return v.get<T>();
}

std::string new_save_id() {
  std::random_device device;
  const std::uint64_t id =
      (std::uint64_t{device()} << 32 | device()) ^
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(id));
  return text;
}

// Every file of a checkpoint's model/ and optimizer/ is the one its checkpoint.json lists, of
// the size and CRC-32 listed, and none is missing or extra.
void check_files(const fs::path& target, const json& listed, const std::string& file) {
  if (!listed.is_object()) throw ValueError("load: " + file + " has no list of its files");
  std::set<std::string> found;
  for (const char* sub : {"model", "optimizer"}) {
    if (type_of(target / sub) != fs::file_type::directory) continue;
    for (const auto& entry : fs::directory_iterator(target / sub)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".npy")) found.insert(std::string(sub) + "/" + name);
    }
  }
  for (const auto& [name, entry] : listed.items()) {
    if (!found.count(name))
      throw ValueError("load: the checkpoint in " + target.string() + " is missing " + name +
                       ", which its checkpoint.json lists: damaged or partly deleted");
    found.erase(name);
    if (!entry.is_object() || !entry.contains("bytes") || !entry.contains("crc32") ||
        !entry["bytes"].is_number_unsigned() || !entry["crc32"].is_number_unsigned())
      throw ValueError("load: " + file + ": the entry of " + name + " is not {bytes, crc32}");
    const std::string bytes =
        read_regular_file((target / name).string(), entry["bytes"].get<std::uint64_t>(), "load");
    if (bytes.size() != entry["bytes"].get<std::uint64_t>() ||
        crc32_bytes(bytes) != entry["crc32"].get<std::uint64_t>())
      throw ValueError("load: " + (target / name).string() +
                       " is not the file the checkpoint saved (its size or checksum differs): "
                       "damaged or replaced");
  }
  if (!found.empty())
    throw ValueError("load: " + (target / *found.begin()).string() +
                     " is not one of the checkpoint's files (checkpoint.json does not list it)");
}

}  // namespace

Checkpoint& Checkpoint::module(Module& module) {
  module_ = &module;
  return *this;
}
Checkpoint& Checkpoint::optimizer(Optimizer& optimizer) {
  optimizer_ = &optimizer;
  return *this;
}
Checkpoint& Checkpoint::scheduler(LRScheduler& scheduler) {
  scheduler_ = &scheduler;
  return *this;
}
Checkpoint& Checkpoint::generator(const std::string& name, Generator& generator) {
  generators_.emplace_back(name, &generator);
  return *this;
}

bool Checkpoint::exists(const std::string& dir) {
  for (const char* suffix : {"", ".new", ".old"})
    if (whole(sibling(folder(dir), suffix))) return true;
  return false;
}

void Checkpoint::save(const std::string& dir) const {
  if (epoch < 0)
    throw ValueError("Checkpoint::save: epoch must be >= 0, got " + std::to_string(epoch));
  const fs::path target = folder(dir), fresh = sibling(target, ".new"),
                 old = sibling(target, ".old");
  // Nothing is written or moved before every check has passed.
  for (const fs::path& p : {target, fresh, old})
    if (type_of(p) == fs::file_type::symlink)
      throw ValueError("Checkpoint::save: " + p.string() +
                       " is a symbolic link; a save replaces its folder whole and never follows "
                       "a link: give the folder it points to, or another name");
  if (present(target) && type_of(target) != fs::file_type::directory)
    throw ValueError("Checkpoint::save: " + target.string() + " exists and is not a folder");
  finish_interrupted_save(target);  // a crashed save's leftovers, before this one begins
  // A save replaces DIR whole: only a checkpoint, with nothing of anybody else's in it.
  std::string replaces;
  if (present(target) && !fs::is_empty(target)) {
    if (!whole(target))
      throw ValueError("Checkpoint::save: " + target.string() +
                       " exists and is not a checkpoint; refusing to replace it");
    if (const std::string other = foreign_entry(target); !other.empty())
      throw ValueError("Checkpoint::save: " + target.string() + " holds " + other +
                       ", which is not part of a checkpoint; refusing to replace it");
    if (const std::optional<Marker> m = marker_of(target)) {
      replaces = m->save;
    } else {  // saved before folders were marked: adopted, so that a crash below is recoverable
      replaces = new_save_id();
      std::ofstream(target / kMarker) << "save " << replaces << "\nreplaces -\n";
    }
  }
  for (const fs::path& p : {fresh, old})
    if (present(p))
      throw ValueError("Checkpoint::save: " + p.string() +
                       " exists and is not a save of xgrad in progress; refusing to touch it "
                       "(move it away)");
  const std::string id = new_save_id();
  fs::create_directories(fresh);
  write_atomically(fresh / kMarker,
                   "save " + id + "\nreplaces " + (replaces.empty() ? "-" : replaces) + "\n");
  json meta = {{"format", kFormat}, {"epoch", epoch}, {"metadata", metadata}};
  Manifest manifest;
  if (module_) {
    write_tensors(fresh / "model", "model", module_->state_dict(), &manifest);
    meta["model"] = describe(*module_);
  }
  if (optimizer_) {
    write_tensors(fresh / "optimizer", "optimizer", optimizer_tensors(*optimizer_), &manifest);
    meta["optimizer"] = optimizer_->name();
  }
  meta["files"] = json::object();
  for (const auto& [name, entry] : manifest)
    meta["files"][name] = {{"bytes", entry.first}, {"crc32", entry.second}};
  if (scheduler_) meta["scheduler"] = scheduler_->state();  // "epoch", "base_lr" and its own
  meta["generators"] = json::object();
  for (const auto& [name, g] : generators_) meta["generators"][name] = g->state();
  // checkpoint.json last, by a rename: a folder with it is whole.
  write_atomically(fresh / "checkpoint.json", meta.dump(2) + "\n");
  if (present(target)) fs::rename(target, old);
  fs::rename(fresh, target);
  if (present(old)) remove_own(old);
}

void Checkpoint::load(const std::string& dir) {
  const fs::path target = folder(dir);
  finish_interrupted_save(target);
  const std::string file = (target / "checkpoint.json").string();
  if (!present(file))
    throw ValueError("load: no checkpoint in " + dir + " (" + file + " is missing)");
  const std::string text = read_regular_file(file, kMaxJsonBytes, "load");
  json meta;
  try {
    meta = json::parse(text);
  } catch (const json::exception& e) {
    throw ValueError("load: " + file + ": " + e.what());
  }
  if (!meta.is_object() || !meta.contains("format") ||
      (meta["format"] != kFormat && meta["format"] != kOldFormat))
    throw ValueError("load: " + file + " is not an xgrad checkpoint");
  const auto saved_epoch = field<std::int64_t>(meta, "epoch", file);
  if (saved_epoch < 0)
    throw ValueError("load: " + file + ": epoch " + std::to_string(saved_epoch) + " is negative");
  auto mismatch = [&](const std::string& what, const std::string& saved, const std::string& here) {
    throw ValueError("load: the checkpoint in " + dir + " is of another " + what + ": saved\n" +
                     saved + "\nbut this program has\n" + here);
  };
  if (module_) {
    const json saved = meta.contains("model") ? meta["model"] : json();
    if (saved != describe(*module_))
      mismatch("model",
               saved.is_object() && saved.contains("tree") && saved["tree"].is_string()
                   ? saved["tree"].get<std::string>()
                   : saved.dump(),
               module_->str());
  }
  if (optimizer_ && meta.value("optimizer", json()).dump() != json(optimizer_->name()).dump())
    mismatch("optimizer", meta.value("optimizer", json()).dump(), optimizer_->name());
  if (meta["format"] == kFormat) check_files(target, meta.value("files", json()), file);
  std::map<std::string, double> schedule;
  if (scheduler_) {
    if (!meta.contains("scheduler") || !meta["scheduler"].is_object())
      throw ValueError("load: the checkpoint in " + dir + " has no learning-rate schedule");
    for (const auto& [key, value] : meta["scheduler"].items()) {
      if (!value.is_number() || !std::isfinite(value.get<double>()))
        throw ValueError("load: " + file + ": scheduler entry '" + key + "' is not a number");
      // The epoch, learning rates and counts are never negative (a plateau's best loss may be).
      if (key != "best" && value.get<double>() < 0)
        throw ValueError("load: " + file + ": scheduler entry '" + key + "' is negative");
      schedule[key] = value.get<double>();
    }
    for (const auto& [key, value] : scheduler_->state())  // this schedule's entries, all there
      if (!schedule.count(key))
        throw ValueError("load: the checkpoint in " + dir + " has no '" + key +
                         "' in its learning-rate schedule (saved with another schedule?)");
  }
  std::vector<std::string> generator_states;
  for (const auto& [name, g] : generators_) {
    if (!meta.contains("generators") || !meta["generators"].is_object() ||
        !meta["generators"].contains(name))
      throw ValueError("load: the checkpoint in " + dir + " has no state of generator '" + name +
                       "'");
    if (!meta["generators"][name].is_string())
      throw ValueError("load: " + file + ": generator '" + name + "' is not a state");
    generator_states.push_back(meta["generators"][name].get<std::string>());
    Generator probe;
    probe.set_state(generator_states.back());  // throws for a state that is not one
  }
  const auto saved_metadata = field<std::string>(meta, "metadata", file);
  // Every file read and checked before anything changes: a load that fails leaves the module,
  // the optimizer, the schedule and the generators as they were.
  StateDict model;
  if (module_) model = read_module(*module_, (target / "model").string());
  OptimizerFiles optimizer;
  if (optimizer_) optimizer = read_optimizer(*optimizer_, (target / "optimizer").string());
  if (module_) module_->load_state_dict(model);
  if (optimizer_) apply_optimizer_state(*optimizer_, optimizer);
  if (scheduler_) scheduler_->set_state(schedule);
  for (std::size_t i = 0; i < generators_.size(); ++i)
    generators_[i].second->set_state(generator_states[i]);
  epoch = saved_epoch;
  metadata = saved_metadata;
}

}  // namespace xgrad::nn
