#include "nn/serialize.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "autograd/ops.hpp"

namespace xgrad::nn {

namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "NPY files are written little-endian");

namespace {

constexpr char kMagic[] = "\x93NUMPY";

// "(2, 3)", "(5,)", "()": NumPy's spelling of a shape.
std::string npy_shape(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + ", ";
  if (shape.size() > 1) s.resize(s.size() - 2);
  if (shape.size() == 1) s.resize(s.size() - 1);
  return s + ")";
}

void write_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw ValueError("save: could not write " + tmp.string() + " (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw ValueError("save: could not rename " + tmp.string() + " to " + path.string() + ": " +
                     ec.message());
}

[[noreturn]] void bad_file(const std::string& path, const std::string& why) {
  throw ValueError("load_npy: " + path + ": " + why);
}

// The header of an NPY file: a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }. Read by a plain scanner (no regex,
// no recursion), so that a header of any length costs a loop over its characters.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

NpyHeader parse_npy_header(const std::string& text, const std::string& path) {
  std::size_t i = 0;
  auto fail = [&](const std::string& why) {
    bad_file(path, "malformed header at character " + std::to_string(i) + ": " + why);
  };
  auto skip_spaces = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto expect = [&](char c) {
    skip_spaces();
    if (i >= text.size() || text[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  };
  auto quoted = [&] {
    skip_spaces();
    if (i >= text.size() || (text[i] != '\'' && text[i] != '"')) fail("expected a quoted string");
    const char quote = text[i++];
    const std::size_t end = text.find(quote, i);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = text.substr(i, end - i);
    i = end + 1;
    return out;
  };
  NpyHeader h;
  bool has_descr = false, has_order = false, has_shape = false;
  expect('{');
  for (;;) {
    skip_spaces();
    if (i < text.size() && text[i] == '}') break;
    const std::string key = quoted();
    expect(':');
    skip_spaces();
    if (key == "descr") {
      h.descr = quoted();
      has_descr = true;
    } else if (key == "fortran_order") {
      if (text.compare(i, 4, "True") == 0) {
        h.fortran_order = true;
        i += 4;
      } else if (text.compare(i, 5, "False") == 0) {
        i += 5;
      } else {
        fail("fortran_order must be True or False");
      }
      has_order = true;
    } else if (key == "shape") {
      expect('(');
      for (;;) {
        skip_spaces();
        if (i < text.size() && text[i] == ')') break;
        const std::size_t start = i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        if (i == start) fail("a dimension must be a non-negative integer");
        if (i - start > 12) fail("absurd dimension " + text.substr(start, i - start));
        h.shape.push_back(std::stoull(text.substr(start, i - start)));
        skip_spaces();
        if (i < text.size() && text[i] == ',') ++i;
        else if (i >= text.size() || text[i] != ')') fail("expected ',' or ')' in the shape");
      }
      ++i;  // ')'
      has_shape = true;
    } else {
      fail("unknown key '" + key + "'");
    }
    skip_spaces();
    if (i < text.size() && text[i] == ',') ++i;
    else if (i >= text.size() || text[i] != '}') fail("expected ',' or '}'");
  }
  if (!has_descr) bad_file(path, "the header has no 'descr'");
  if (!has_order) bad_file(path, "the header has no 'fortran_order'");
  if (!has_shape) bad_file(path, "the header has no 'shape'");
  return h;
}

}  // namespace

void save_npy(const std::string& path, const Tensor& tensor) {
  const bool f32 = tensor.dtype() == Dtype::float32;
  std::string header = std::string("{'descr': '") + (f32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + npy_shape(tensor.shape()) + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  const auto length = static_cast<std::uint16_t>(header.size());
  bytes += static_cast<char>(length & 0xff);
  bytes += static_cast<char>(length >> 8);
  bytes += header;
  std::visit(
      [&](const auto& a) {
        bytes.append(reinterpret_cast<const char*>(a.data()), a.size() * sizeof(a.data()[0]));
      },
      tensor.storage());
  write_atomically(path, bytes);
}

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_file(path, "cannot open the file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    bad_file(path, "not an NPY file (the magic string \\x93NUMPY is missing)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_length = 0, offset = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9])
                                                               << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad_file(path, "truncated header");
    for (int i = 3; i >= 0; --i)
      header_length = header_length << 8 | static_cast<unsigned char>(bytes[8 + i]);
    offset = 12;
  } else {
    bad_file(path, "unsupported NPY version " + std::to_string(major));
  }
  if (header_length > bytes.size() - offset) bad_file(path, "truncated header");
  const std::string header = bytes.substr(offset, header_length);
  offset += header_length;

  const NpyHeader h = parse_npy_header(header, path);
  if (h.descr != "<f4" && h.descr != "<f8")
    bad_file(path, "dtype '" + h.descr + "' is not supported (expected '<f4' or '<f8')");
  // A Fortran-order array (np.asfortranarray, a.T) is the C-order array of the reversed shape,
  // transposed: read as that, then put in C order.
  const Shape shape = h.fortran_order ? Shape(h.shape.rbegin(), h.shape.rend()) : h.shape;
  const std::string& descr = h.descr;
  std::size_t count = 1;
  for (std::size_t d : shape) {
    if (d != 0 && count > (std::size_t{1} << 40) / d) bad_file(path, "absurd shape " + npy_shape(shape));
    count *= d;
  }
  const std::size_t item = descr == "<f4" ? 4 : 8;
  if (bytes.size() - offset != count * item)
    bad_file(path, "shape " + npy_shape(shape) + " needs " + std::to_string(count * item) +
                       " bytes of data, the file has " + std::to_string(bytes.size() - offset));
  auto read = [&](auto zero) {
    using T = decltype(zero);
    auto a = xt::xarray<T>::from_shape(shape);
    if (count > 0)
      std::memcpy(a.data(), bytes.data() + offset, count * sizeof(T));  // data() may be null
    if (h.fortran_order) return Tensor(xt::xarray<T>(xt::transpose(a)));
    return Tensor(std::move(a));
  };
  return item == 4 ? read(float{}) : read(double{});
}

// ---- modules ----------------------------------------------------------------------------------

void save(const Module& module, const std::string& dir) {
  fs::create_directories(dir);
  for (const auto& [name, t] : module.state_dict())
    save_npy((fs::path(dir) / (name + ".npy")).string(), t);
}

void load(Module& module, const std::string& dir) {
  if (!fs::is_directory(dir)) throw ValueError("load: " + dir + " is not a folder");
  StateDict loaded;
  for (const auto& [name, t] : module.state_dict()) {
    const fs::path file = fs::path(dir) / (name + ".npy");
    if (!fs::exists(file))
      throw ValueError("load: " + file.string() + " is missing ('" + name + "' of " +
                       module.name() + ")");
    Tensor given = load_npy(file.string());
    if (given.shape() != t.shape())
      throw ShapeError("load: '" + name + "' has shape " + shape_str(t.shape()) +
                       " in the module but " + shape_str(given.shape()) + " in " + file.string());
    loaded.emplace_back(name, std::move(given));
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    const std::string name = file.size() > 4 ? file.substr(0, file.size() - 4) : file;
    if (file.ends_with(".npy") &&
        std::none_of(loaded.begin(), loaded.end(), [&](const auto& e) { return e.first == name; }))
      throw ValueError("load: " + entry.path().string() + " matches no parameter or buffer of " +
                       module.name());
  }
  module.load_state_dict(loaded);  // converts each to the module's dtype
}

// ---- optimizers -------------------------------------------------------------------------------

void save(const Optimizer& optimizer, const std::string& dir) {
  fs::create_directories(dir);
  for (const auto& [name, slots] : optimizer.state())
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (slots[i].defined())
        save_npy((fs::path(dir) / (name + "." + std::to_string(i) + ".npy")).string(), slots[i]);
  save_npy((fs::path(dir) / "steps.npy").string(),
           scalar(static_cast<double>(optimizer.steps()), {.dtype = kFloat64}));
  // One learning rate (one group), or one per parameter group.
  std::vector<double> lrs;
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) lrs.push_back(optimizer.lr(g));
  save_npy((fs::path(dir) / "lr.npy").string(),
           lrs.size() == 1 ? scalar(lrs[0], {.dtype = kFloat64})
                           : from_vector(lrs, {lrs.size()}, {.dtype = kFloat64}));
}

void load(Optimizer& optimizer, const std::string& dir) {
  if (!fs::is_directory(dir)) throw ValueError("load: " + dir + " is not a folder");
  const fs::path steps_file = fs::path(dir) / "steps.npy", lr_file = fs::path(dir) / "lr.npy";
  if (!fs::exists(steps_file) || !fs::exists(lr_file))
    throw ValueError("load: " + dir + " has no steps.npy or lr.npy: not an optimizer checkpoint");
  const double steps = load_npy(steps_file.string()).item();
  const Tensor lr_values = cast(load_npy(lr_file.string()), Dtype::float64);
  if (lr_values.numel() != optimizer.num_groups())
    throw ValueError("load: " + lr_file.string() + " holds " + std::to_string(lr_values.numel()) +
                     " learning rates for " + std::to_string(optimizer.num_groups()) +
                     " parameter groups");
  const auto& lr_array = lr_values.value<double>();
  const std::vector<double> lrs(lr_array.begin(), lr_array.end());
  if (!(steps >= 0 && steps <= 9e15 && steps == std::floor(steps)))
    throw ValueError("load: " + steps_file.string() + " holds " + std::to_string(steps) +
                     "; expected a whole number of steps >= 0");
  for (double lr : lrs)
    if (!(lr >= 0 && std::isfinite(lr)))
      throw ValueError("load: " + lr_file.string() + " holds " + std::to_string(lr) +
                       "; expected a finite learning rate >= 0");
  // State files are NAME.INDEX.npy, INDEX a parameter's position: read them all, then apply.
  std::vector<std::tuple<std::string, std::size_t, Tensor>> slots;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (!file.ends_with(".npy") || file == "steps.npy" || file == "lr.npy") continue;
    const std::string stem = file.substr(0, file.size() - 4);
    const std::size_t dot = stem.rfind('.');
    std::size_t index = 0;
    const char* first = stem.data() + (dot == std::string::npos ? 0 : dot + 1);
    const char* last = stem.data() + stem.size();
    const auto [end, error] = std::from_chars(first, last, index);
    if (dot == std::string::npos || dot == 0 || error != std::errc() || end != last ||
        index >= optimizer.parameters().size())
      throw ValueError("load: " + entry.path().string() +
                       " is not a state file of this optimizer (expected NAME.INDEX.npy with "
                       "INDEX below " + std::to_string(optimizer.parameters().size()) + ")");
    slots.emplace_back(stem.substr(0, dot), index, load_npy(entry.path().string()));
  }
  for (const auto& [name, index, value] : slots) optimizer.set_state(name, index, value);
  optimizer.set_steps(static_cast<std::int64_t>(steps));
  for (std::size_t g = 0; g < lrs.size(); ++g) optimizer.set_lr(g, lrs[g]);
}

// ---- checkpoints ------------------------------------------------------------------------------

namespace {

using nlohmann::json;

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

// A save goes to DIR.new, whole once its checkpoint.json is there (written last, by a rename),
// then DIR moves to DIR.old and DIR.new to DIR, and DIR.old goes. A crash at any point leaves
// one whole checkpoint among the three; this makes it DIR again and removes the leftovers.
void finish_interrupted_save(const fs::path& dir) {
  const fs::path fresh = sibling(dir, ".new"), old = sibling(dir, ".old");
  if (fs::exists(fresh / "checkpoint.json")) {  // whole, and the newest
    fs::remove_all(dir);
    fs::rename(fresh, dir);
  } else {
    fs::remove_all(fresh);  // a save that did not finish
  }
  if (!fs::exists(dir / "checkpoint.json") && fs::exists(old / "checkpoint.json")) {
    fs::remove_all(dir);
    fs::rename(old, dir);
  }
  fs::remove_all(old);
}

// meta[key] as a T, checked: an integer field must hold an integer within int64's range.
template <class T>
T field(const json& meta, const char* key, const std::string& file) {
  if (!meta.is_object() || !meta.contains(key))
    throw ValueError("load: " + file + " has no \"" + key + "\"");
  const json& v = meta.at(key);
  bool ok = false;
  if constexpr (std::is_same_v<T, std::int64_t>)
    ok = v.is_number_integer() &&
         !(v.is_number_unsigned() &&
           v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX));
  else if constexpr (std::is_same_v<T, double>)
    ok = v.is_number() && std::isfinite(v.get<double>());
  else
    ok = v.is_string();
  if (!ok) throw ValueError("load: " + file + ": \"" + key + "\" is not of the expected type");
  return v.get<T>();
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
    if (fs::exists(sibling(folder(dir), suffix) / "checkpoint.json")) return true;
  return false;
}

void Checkpoint::save(const std::string& dir) const {
  if (epoch < 0) throw ValueError("Checkpoint::save: epoch must be >= 0, got " + std::to_string(epoch));
  const fs::path target = folder(dir), fresh = sibling(target, ".new"),
                 old = sibling(target, ".old");
  finish_interrupted_save(target);  // a crashed save's leftovers, before this one begins
  // A save replaces DIR whole: never a folder that holds something other than a checkpoint.
  if (fs::exists(target) && !fs::is_empty(target) && !fs::exists(target / "checkpoint.json"))
    throw ValueError("Checkpoint::save: " + target.string() +
                     " exists and is not a checkpoint; refusing to replace it");
  fs::remove_all(fresh);
  fs::create_directories(fresh);
  json meta = {{"format", "xgrad checkpoint 1"}, {"epoch", epoch}, {"metadata", metadata}};
  if (module_) {
    nn::save(*module_, (fresh / "model").string());
    meta["model"] = describe(*module_);
  }
  if (optimizer_) {
    nn::save(*optimizer_, (fresh / "optimizer").string());
    meta["optimizer"] = optimizer_->name();
  }
  if (scheduler_) meta["scheduler"] = scheduler_->state();  // "epoch", "base_lr" and its own
  meta["generators"] = json::object();
  for (const auto& [name, g] : generators_) meta["generators"][name] = g->state();
  // checkpoint.json last, by a rename: a folder with it is whole.
  {
    const fs::path tmp = fresh / "checkpoint.json.tmp";
    std::ofstream out(tmp);
    out << meta.dump(2) << "\n";
    out.close();
    if (!out) throw ValueError("Checkpoint::save: could not write " + tmp.string() + " (disk full?)");
    fs::rename(tmp, fresh / "checkpoint.json");
  }
  fs::remove_all(old);
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(fresh, target);
  fs::remove_all(old);
}

void Checkpoint::load(const std::string& dir) {
  const fs::path target = folder(dir);
  finish_interrupted_save(target);
  const std::string file = (target / "checkpoint.json").string();
  std::ifstream in(file);
  if (!in) throw ValueError("load: no checkpoint in " + dir + " (" + file + " is missing)");
  json meta;
  try {
    meta = json::parse(in);
  } catch (const json::exception& e) {
    throw ValueError("load: " + file + ": " + e.what());
  }
  if (!meta.is_object() || !meta.contains("format") || meta["format"] != "xgrad checkpoint 1")
    throw ValueError("load: " + file + " is not an xgrad checkpoint");
  const auto saved_epoch = field<std::int64_t>(meta, "epoch", file);
  if (saved_epoch < 0) throw ValueError("load: " + file + ": epoch " + std::to_string(saved_epoch) + " is negative");
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
  std::map<std::string, double> schedule;
  if (scheduler_) {
    if (!meta.contains("scheduler") || !meta["scheduler"].is_object())
      throw ValueError("load: the checkpoint in " + dir + " has no learning-rate schedule");
    for (const auto& [key, value] : meta["scheduler"].items()) {
      if (!value.is_number())
        throw ValueError("load: " + file + ": scheduler entry '" + key + "' is not a number");
      schedule[key] = value.get<double>();
    }
    for (const auto& [key, value] : scheduler_->state())  // this schedule's entries, all there
      if (!schedule.count(key))
        throw ValueError("load: the checkpoint in " + dir + " has no '" + key +
                         "' in its learning-rate schedule (saved with another schedule?)");
  }
  for (const auto& [name, g] : generators_)
    if (!meta.contains("generators") || !meta["generators"].contains(name))
      throw ValueError("load: the checkpoint in " + dir + " has no state of generator '" + name + "'");
  // Everything checked: now restore.
  if (module_) nn::load(*module_, (target / "model").string());
  if (optimizer_) nn::load(*optimizer_, (target / "optimizer").string());
  if (scheduler_) scheduler_->set_state(schedule);
  for (const auto& [name, g] : generators_) {
    if (!meta["generators"][name].is_string())
      throw ValueError("load: " + file + ": generator '" + name + "' is not a state");
    g->set_state(meta["generators"][name].get<std::string>());
  }
  epoch = saved_epoch;
  metadata = field<std::string>(meta, "metadata", file);
}

}  // namespace xgrad::nn
