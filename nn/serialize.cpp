#include "nn/serialize.hpp"

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <zlib.h>

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

std::uint32_t crc32_bytes(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t at = 0; at < bytes.size(); at += 1 << 30) {
    const std::size_t n = std::min<std::size_t>(bytes.size() - at, 1 << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<std::uint32_t>(crc);
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

std::string npy_bytes(const Tensor& tensor) {
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
  return bytes;
}

Tensor parse_npy(const std::string& bytes, const std::string& path) {
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

// The bytes of a regular file of at most `limit` bytes (a FIFO, a device or a folder is refused,
// never read: /dev/zero would fill memory, a FIFO would block).
std::string read_regular_file(const std::string& path, std::uintmax_t limit, const char* who) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw ValueError(std::string(who) + ": " + path + ": cannot open the file");
  if (!fs::is_regular_file(status))
    throw ValueError(std::string(who) + ": " + path + " is not a regular file");
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw ValueError(std::string(who) + ": " + path + ": " + ec.message());
  if (size > limit)
    throw ValueError(std::string(who) + ": " + path + " has " + std::to_string(size) +
                     " bytes, more than the " + std::to_string(limit) + " expected");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ValueError(std::string(who) + ": " + path + ": cannot open the file");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size || in.peek() != std::char_traits<char>::eof())
    throw ValueError(std::string(who) + ": " + path + " changed while it was read");
  return bytes;
}

// An NPY file holds at most 2^40 items of 8 bytes, and a header of up to 4 GB (version 2).
constexpr std::uintmax_t kMaxNpyBytes = (std::uintmax_t{1} << 43) + (std::uintmax_t{1} << 32);

}  // namespace

void save_npy(const std::string& path, const Tensor& tensor) {
  write_atomically(path, npy_bytes(tensor));
}

Tensor load_npy(const std::string& path) {
  return parse_npy(read_regular_file(path, kMaxNpyBytes, "load_npy"), path);
}

// ---- modules ----------------------------------------------------------------------------------

namespace {

// What load(Module) reads, every file checked against the module, before anything changes.
StateDict read_module(const Module& module, const std::string& dir) {
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
  return loaded;
}

// An optimizer's files, read and checked against it: applying them cannot fail.
struct OptimizerState {
  std::int64_t steps = 0;
  std::vector<double> lrs;
  std::vector<std::tuple<std::string, std::size_t, Tensor>> slots;  // name, parameter, value
};

OptimizerState read_optimizer(const Optimizer& optimizer, const std::string& dir) {
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
  OptimizerState state;
  const auto& lr_array = lr_values.value<double>();
  state.lrs.assign(lr_array.begin(), lr_array.end());
  if (!(steps >= 0 && steps <= 9e15 && steps == std::floor(steps)))
    throw ValueError("load: " + steps_file.string() + " holds " + std::to_string(steps) +
                     "; expected a whole number of steps >= 0");
  state.steps = static_cast<std::int64_t>(steps);
  for (double lr : state.lrs)
    if (!(lr >= 0 && std::isfinite(lr)))
      throw ValueError("load: " + lr_file.string() + " holds " + std::to_string(lr) +
                       "; expected a finite learning rate >= 0");
  // State files are NAME.INDEX.npy, INDEX a parameter's position.
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
    const std::string name = stem.substr(0, dot);
    if (!optimizer.state().count(name))
      throw ValueError("load: " + entry.path().string() + ": this optimizer (" +
                       optimizer.name() + ") has no state named '" + name + "'");
    Tensor value = load_npy(entry.path().string());
    const Tensor& p = optimizer.parameters()[index];
    if (value.shape() != p.shape())
      throw ShapeError("load: " + entry.path().string() + " has shape " +
                       shape_str(value.shape()) + "; its parameter has shape " +
                       shape_str(p.shape()));
    state.slots.emplace_back(name, index, std::move(value));
  }
  return state;
}

void apply(Optimizer& optimizer, const OptimizerState& state) {
  for (const auto& [name, index, value] : state.slots) optimizer.set_state(name, index, value);
  optimizer.set_steps(state.steps);
  for (std::size_t g = 0; g < state.lrs.size(); ++g) optimizer.set_lr(g, state.lrs[g]);
}

// Each tensor of `named` as NAME.npy in `dir`, the file's size and CRC-32 added to `manifest`
// under PREFIX/NAME.npy (a checkpoint's list of its files).
using Manifest = std::map<std::string, std::pair<std::uint64_t, std::uint32_t>>;
void write_tensors(const fs::path& dir, const std::string& prefix,
                   const std::vector<std::pair<std::string, Tensor>>& named, Manifest* manifest) {
  fs::create_directories(dir);
  for (const auto& [name, t] : named) {
    const std::string bytes = npy_bytes(t);
    write_atomically(dir / (name + ".npy"), bytes);
    if (manifest)
      (*manifest)[prefix + "/" + name + ".npy"] = {
          bytes.size(), crc32_bytes(bytes)};
  }
}

std::vector<std::pair<std::string, Tensor>> optimizer_tensors(const Optimizer& optimizer) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, slots] : optimizer.state())
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (slots[i].defined()) out.emplace_back(name + "." + std::to_string(i), slots[i]);
  out.emplace_back("steps", scalar(static_cast<double>(optimizer.steps()), {.dtype = kFloat64}));
  // One learning rate (one group), or one per parameter group.
  std::vector<double> lrs;
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) lrs.push_back(optimizer.lr(g));
  out.emplace_back("lr", lrs.size() == 1 ? scalar(lrs[0], {.dtype = kFloat64})
                                         : from_vector(lrs, {lrs.size()}, {.dtype = kFloat64}));
  return out;
}

}  // namespace

void save(const Module& module, const std::string& dir) {
  write_tensors(dir, "", module.state_dict(), nullptr);
}

void load(Module& module, const std::string& dir) {
  module.load_state_dict(read_module(module, dir));  // converts each to the module's dtype
}

// ---- optimizers -------------------------------------------------------------------------------

void save(const Optimizer& optimizer, const std::string& dir) {
  write_tensors(dir, "", optimizer_tensors(optimizer), nullptr);
}

void load(Optimizer& optimizer, const std::string& dir) {
  apply(optimizer, read_optimizer(optimizer, dir));
}

// ---- checkpoints ------------------------------------------------------------------------------

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
  for (const std::string name : {"model", "optimizer", "checkpoint.json", "checkpoint.json.tmp",
                                 ".xgrad-checkpoint.tmp"})
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

std::string new_save_id() {
  std::random_device device;
  const std::uint64_t id = (std::uint64_t{device()} << 32 | device()) ^
                           static_cast<std::uint64_t>(
                               std::chrono::steady_clock::now().time_since_epoch().count());
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
    const std::string bytes = read_regular_file((target / name).string(),
                                                entry["bytes"].get<std::uint64_t>(), "load");
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
  if (epoch < 0) throw ValueError("Checkpoint::save: epoch must be >= 0, got " + std::to_string(epoch));
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
  if (!present(file)) throw ValueError("load: no checkpoint in " + dir + " (" + file + " is missing)");
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
      throw ValueError("load: the checkpoint in " + dir + " has no state of generator '" + name + "'");
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
  OptimizerState optimizer;
  if (optimizer_) optimizer = read_optimizer(*optimizer_, (target / "optimizer").string());
  if (module_) module_->load_state_dict(model);
  if (optimizer_) apply(*optimizer_, optimizer);
  if (scheduler_) scheduler_->set_state(schedule);
  for (std::size_t i = 0; i < generators_.size(); ++i)
    generators_[i].second->set_state(generator_states[i]);
  epoch = saved_epoch;
  metadata = saved_metadata;
}

}  // namespace xgrad::nn
