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
#include "nn/state_files.hpp"

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

// NPY's names of xgrad's dtypes (little-endian; one-byte types take '|'), and back.
const char* npy_descr(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32: return "<f4";
    case Dtype::float64: return "<f8";
    case Dtype::int64: return "<i8";
    case Dtype::int32: return "<i4";
    case Dtype::uint8: return "|u1";
    case Dtype::bool_: return "|b1";
  }
  return "?";
}

std::optional<Dtype> npy_dtype(const std::string& descr) {
  for (Dtype d : {Dtype::float32, Dtype::float64, Dtype::int64, Dtype::int32, Dtype::uint8,
                  Dtype::bool_})
    if (descr == npy_descr(d)) return d;
  if (descr == "<u1") return Dtype::uint8;  // the same bytes
  return std::nullopt;
}

std::size_t npy_item_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::float64:
    case Dtype::int64: return 8;
    case Dtype::float32:
    case Dtype::int32: return 4;
    case Dtype::uint8:
    case Dtype::bool_: break;
  }
  return 1;
}

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
  const std::optional<Dtype> dtype = npy_dtype(h.descr);
  if (!dtype)
    bad_file(path, "dtype '" + h.descr +
                       "' is not supported (expected '<f4', '<f8', '<i8', '<i4', '|u1' or '|b1')");
  // A Fortran-order array (np.asfortranarray, a.T) is the C-order array of the reversed shape,
  // transposed: read as that, then put in C order.
  const Shape shape = h.fortran_order ? Shape(h.shape.rbegin(), h.shape.rend()) : h.shape;
  std::size_t count = 1;
  for (std::size_t d : shape) {
    if (d != 0 && count > (std::size_t{1} << 40) / d) bad_file(path, "absurd shape " + npy_shape(shape));
    count *= d;
  }
  const std::size_t item = npy_item_size(*dtype);
  if (bytes.size() - offset != count * item)
    bad_file(path, "shape " + npy_shape(shape) + " needs " + std::to_string(count * item) +
                       " bytes of data, the file has " + std::to_string(bytes.size() - offset));
  if (*dtype == Dtype::bool_)  // a byte other than 0 or 1 is no C++ bool
    for (std::size_t i = 0; i < count; ++i)
      if (static_cast<unsigned char>(bytes[offset + i]) > 1)
        bad_file(path, "bool entry " + std::to_string(i) + " is the byte " +
                           std::to_string(static_cast<unsigned char>(bytes[offset + i])) +
                           ", not 0 or 1");
  auto read = [&](auto zero) {
    using T = decltype(zero);
    auto a = xt::xarray<T>::from_shape(shape);
    if (count > 0)
      std::memcpy(a.data(), bytes.data() + offset, count * sizeof(T));  // data() may be null
    return Tensor(std::move(a));
  };
  Tensor out;
  switch (*dtype) {
    case Dtype::float32: out = read(float{}); break;
    case Dtype::float64: out = read(double{}); break;
    case Dtype::int64: out = read(std::int64_t{}); break;
    case Dtype::int32: out = read(std::int32_t{}); break;
    case Dtype::uint8: out = read(std::uint8_t{}); break;
    case Dtype::bool_: out = read(bool{}); break;
  }
  if (!h.fortran_order) return out;
  Axes reversed(shape.size());
  for (std::size_t d = 0; d < shape.size(); ++d)
    reversed[d] = static_cast<std::ptrdiff_t>(shape.size() - 1 - d);
  return permute(out, reversed);
}

// An NPY file holds at most 2^40 items of 8 bytes, and a header of up to 4 GB (version 2).
constexpr std::uintmax_t kMaxNpyBytes = (std::uintmax_t{1} << 43) + (std::uintmax_t{1} << 32);

}  // namespace

namespace state_files {

Tensor npy_tensor(const std::string& bytes, const std::string& where) {
  return parse_npy(bytes, where);
}

std::uint32_t crc32_bytes(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t at = 0; at < bytes.size(); at += 1 << 30) {
    const std::size_t n = std::min<std::size_t>(bytes.size() - at, 1 << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<std::uint32_t>(crc);
}

void write_atomically(const fs::path& path, const std::string& bytes, const char* who) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw ValueError(std::string(who) + ": could not write " + tmp.string() + " (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw ValueError(std::string(who) + ": could not rename " + tmp.string() + " to " +
                     path.string() + ": " + ec.message());
}

std::string npy_bytes(const Tensor& tensor) {
  std::string header = std::string("{'descr': '") + npy_descr(tensor.dtype()) +
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

}  // namespace state_files

void save_npy(const std::string& path, const Tensor& tensor) {
  state_files::write_atomically(path, state_files::npy_bytes(tensor));
}

Tensor load_npy(const std::string& path) {
  return parse_npy(state_files::read_regular_file(path, kMaxNpyBytes, "load_npy"), path);
}

// ---- modules ----------------------------------------------------------------------------------

namespace state_files {

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

OptimizerFiles read_optimizer(const Optimizer& optimizer, const std::string& dir) {
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
  OptimizerFiles state;
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

void apply_optimizer_state(Optimizer& optimizer, const OptimizerFiles& state) {
  for (const auto& [name, index, value] : state.slots) optimizer.set_state(name, index, value);
  optimizer.set_steps(state.steps);
  for (std::size_t g = 0; g < state.lrs.size(); ++g) optimizer.set_lr(g, state.lrs[g]);
}

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

}  // namespace state_files

// ---- optimizers -------------------------------------------------------------------------------

void save(const Optimizer& optimizer, const std::string& dir) {
  state_files::write_tensors(dir, "", state_files::optimizer_tensors(optimizer), nullptr);
}

void load(Optimizer& optimizer, const std::string& dir) {
  state_files::apply_optimizer_state(optimizer, state_files::read_optimizer(optimizer, dir));
}

}  // namespace xgrad::nn
