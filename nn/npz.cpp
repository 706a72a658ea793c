// A state dict as one .npz file, NumPy's: a zip archive of NAME.npy entries (np.savez writes them
// stored, np.savez_compressed deflated; both are read). The zip format is libzip's. Writing goes
// to PATH.tmp, renamed to PATH at the end. Reading is bounded as the other formats: the file is a
// regular one of bounded size, read whole; no entry may claim more bytes than deflate could make
// of its compressed ones; every entry is an .npy file, named once, checked (CRC-32 included)
// before any tensor is returned.
#include <zip.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "nn/serialize.hpp"
#include "nn/state_files.hpp"

namespace xgrad::nn {
namespace {

namespace fs = std::filesystem;

// The largest .npz file read: 2^43 bytes, as an NPY file.
constexpr std::uintmax_t kMaxNpzBytes = std::uintmax_t{1} << 43;
constexpr zip_int64_t kMaxEntries = 1 << 20;
// Deflate writes at least one byte per 1032 it encodes (its best case, a run of one value).
constexpr zip_uint64_t kMaxDeflateRatio = 1032;

std::string zip_message(zip_error_t* error) { return zip_error_strerror(error); }

struct ArchiveCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
using Archive = std::unique_ptr<zip_t, ArchiveCloser>;

struct FileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

[[noreturn]] void bad_npz(const std::string& path, const std::string& why) {
  throw ValueError("load_npz: " + path + ": " + why);
}

}  // namespace

void save_npz(const StateDict& state, const std::string& path) {
  for (std::size_t i = 0; i < state.size(); ++i) {
    if (state[i].first.empty() || !state[i].second.defined())
      throw ValueError("save_npz: entry " + std::to_string(i) +
                       " has an empty name or an undefined tensor");
    for (std::size_t j = 0; j < i; ++j)
      if (state[j].first == state[i].first)
        throw ValueError("save_npz: the name '" + state[i].first + "' is given twice");
  }
  const std::string tmp = path + ".tmp";
  int code = 0;
  Archive archive(zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code));
  if (!archive) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string why = zip_message(&error);
    zip_error_fini(&error);
    throw ValueError("save_npz: cannot create " + tmp + ": " + why);
  }
  // libzip reads the entries' bytes when the archive is closed: they live until then.
  std::vector<std::string> bytes;
  bytes.reserve(state.size());
  for (const auto& [name, tensor] : state) {
    bytes.push_back(state_files::npy_bytes(tensor.contiguous()));
    zip_source_t* source =
        zip_source_buffer(archive.get(), bytes.back().data(), bytes.back().size(), 0);
    const zip_int64_t index =
        source ? zip_file_add(archive.get(), (name + ".npy").c_str(), source, ZIP_FL_ENC_UTF_8)
               : -1;
    if (index < 0) {
      if (source) zip_source_free(source);
      throw ValueError("save_npz: cannot add '" + name + "' to " + tmp + ": " +
                       zip_strerror(archive.get()));
    }
    zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
  }
  if (zip_close(archive.get()) != 0) {
    const std::string why = zip_strerror(archive.get());
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw ValueError("save_npz: could not write " + tmp + ": " + why);
  }
  archive.release();  // closed: freed by zip_close
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw ValueError("save_npz: could not rename " + tmp + " to " + path + ": " + ec.message());
}

StateDict load_npz(const std::string& path) {
  const std::string bytes = state_files::read_regular_file(path, kMaxNpzBytes, "load_npz");
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (!source) bad_npz(path, zip_message(&error));
  Archive archive(zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) {
    zip_source_free(source);
    const std::string why = zip_message(&error);
    zip_error_fini(&error);
    bad_npz(path, "not a readable zip archive (" + why + ")");
  }
  zip_error_fini(&error);
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  if (entries < 0 || entries > kMaxEntries)
    bad_npz(path, "holds " + std::to_string(entries) + " entries (at most " +
                      std::to_string(kMaxEntries) + " read)");
  StateDict state;
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_SIZE))
      bad_npz(path, "entry " + std::to_string(i) + " cannot be read");
    const std::string file = st.name;
    if (file.size() <= 4 || !file.ends_with(".npy"))
      bad_npz(path, "entry '" + file + "' is not an .npy file (an .npz holds NAME.npy entries)");
    const std::string name = file.substr(0, file.size() - 4);
    if (std::any_of(state.begin(), state.end(), [&](const auto& e) { return e.first == name; }))
      bad_npz(path, "the entry '" + file + "' is there twice");
    if (st.size > st.comp_size * kMaxDeflateRatio + 1024 ||
        st.size > bytes.size() * kMaxDeflateRatio)
      bad_npz(path, "entry '" + file + "' claims " + std::to_string(st.size) + " bytes from " +
                        std::to_string(st.comp_size) +
                        " compressed ones (more than deflate makes)");
    std::unique_ptr<zip_file_t, FileCloser> entry(
        zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0));
    if (!entry)
      bad_npz(path, "entry '" + file + "' cannot be opened: " + zip_strerror(archive.get()));
    std::string data(static_cast<std::size_t>(st.size), '\0');
    zip_uint64_t got = 0;
    while (got < st.size) {
      const zip_int64_t n = zip_fread(entry.get(), data.data() + got, st.size - got);
      if (n <= 0) break;
      got += static_cast<zip_uint64_t>(n);
    }
    char extra = 0;
    // At the end, libzip checks the entry's CRC-32 and its size: an error here is a damaged file.
    if (got != st.size || zip_fread(entry.get(), &extra, 1) != 0)
      bad_npz(path, "entry '" + file + "' is damaged or truncated (" +
                        zip_file_strerror(entry.get()) + ")");
    state.emplace_back(name, state_files::npy_tensor(data, path + ":" + file));
  }
  return state;
}

void save(const Module& module, const std::string& path) {
  if (path.ends_with(".npz")) return save_npz(module.state_dict(), path);
  state_files::write_tensors(path, "", module.state_dict(), nullptr);
}

void load(Module& module, const std::string& path) {
  // Checked against the module (names, shapes) before anything changes; each converted to the
  // module's dtype.
  if (path.ends_with(".npz")) return module.load_state_dict(load_npz(path));
  module.load_state_dict(state_files::read_module(module, path));
}

}  // namespace xgrad::nn
