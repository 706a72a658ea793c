#pragma once
// The file formats of xgrad's programs, from the tests' side: IDX files written (the data sets'
// format) and PNG files read back (what save_image writes), each checked as it is parsed.

#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace xgrad::testing {

// An IDX file of unsigned bytes: magic, big-endian dimensions, data.
inline std::string idx_bytes(const std::vector<std::uint32_t>& shape,
                             const std::vector<std::uint8_t>& data) {
  std::string s = {0, 0, 8, static_cast<char>(shape.size())};
  for (std::uint32_t d : shape)
    for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((d >> shift) & 0xff);
  return s + std::string(data.begin(), data.end());
}

// `bytes` gzip-compressed into `path`.
inline void write_gz(const std::filesystem::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// A gzip-compressed IDX file.
inline void write_idx(const std::filesystem::path& path, const std::vector<std::uint32_t>& shape,
                      const std::vector<std::uint8_t>& data) {
  write_gz(path, idx_bytes(shape, data));
}

struct Png {
  std::uint32_t width = 0, height = 0;
  int colour_type = -1;
  std::vector<unsigned char> pixels;  // rows without their filter bytes
};

// The big-endian number at `at`.
inline std::uint32_t read_u32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t k = 0; k < 4; ++k) v = (v << 8) | static_cast<unsigned char>(s[at + k]);
  return v;
}

// Decodes what save_image writes (8-bit RGB or RGBA, filter 0 on every row), checking the
// signature, each chunk's CRC and the order IHDR, IDAT..., IEND.
inline Png read_png(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string s((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(s.size() > 8);
  REQUIRE(s.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n"));
  Png png;
  std::string idat;
  std::vector<std::string> types;
  for (std::size_t at = 8; at < s.size();) {
    REQUIRE(at + 12 <= s.size());
    const std::uint32_t length = read_u32(s, at);
    REQUIRE(at + 12 + length <= s.size());
    const std::string typed = s.substr(at + 4, 4 + length);
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(typed.data()),
                            static_cast<uInt>(typed.size()));
    CHECK(read_u32(s, at + 8 + length) == crc);
    types.push_back(typed.substr(0, 4));
    if (types.back() == "IHDR") {
      png.width = read_u32(typed, 4);
      png.height = read_u32(typed, 8);
      CHECK(typed[12] == 8);
      png.colour_type = typed[13];
    }
    if (types.back() == "IDAT") idat += typed.substr(4);
    at += 12 + length;
  }
  REQUIRE(types.size() >= 3);
  CHECK(types.front() == "IHDR");
  CHECK(types.back() == "IEND");
  const std::size_t channels = png.colour_type == 6 ? 4 : 3;
  const std::size_t row = 1 + png.width * channels;
  std::vector<unsigned char> raw(png.height * row);
  uLongf size = raw.size();
  REQUIRE(uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(idat.data()),
                     static_cast<uLong>(idat.size())) == Z_OK);
  REQUIRE(size == raw.size());
  for (std::size_t y = 0; y < png.height; ++y) {
    CHECK(raw[y * row] == 0);
    png.pixels.insert(png.pixels.end(), raw.begin() + static_cast<std::ptrdiff_t>(y * row + 1),
                      raw.begin() + static_cast<std::ptrdiff_t>((y + 1) * row));
  }
  return png;
}

}  // namespace xgrad::testing
