#pragma once
// The data of examples/char_lm, in plain C++ (no xgrad), so that the LibTorch peer
// (bench/torch_step char-lm) trains on exactly the same words, split, order and batches.
//
// Each word w becomes the input "^w" and the target "w$" (one token stands for both ^ and $);
// a batch pads its words to the longest with a padding token.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace xgrad::programs {

// Token 0 pads, token 1 marks a word's start and end; the characters follow.
constexpr std::int64_t kPad = 0, kBoundary = 1;

struct Vocabulary {
  std::string chars;  // token t + 2 is chars[t]
  std::size_t size() const { return chars.size() + 2; }
  std::int64_t token(char c) const { return static_cast<std::int64_t>(chars.find(c)) + 2; }
  char character(std::int64_t t) const { return t >= 2 ? chars[std::size_t(t - 2)] : '\n'; }
};

struct WordCorpus {
  Vocabulary vocab;
  std::vector<std::string> train, validation, test;
  std::size_t skipped = 0;  // lines not of printable ASCII, or too long for the context
};

// The largest corpus read: far above any word list (wamerican is 1 MB).
constexpr std::uintmax_t kMaxCorpusBytes = std::uintmax_t{1} << 30;

// The words of the file, one per line: those of printable ASCII with at most context - 1 letters,
// shuffled by the seed (the first `limit` kept when limit > 0) and split 80 / 10 / 10. Returns an
// error message, empty when all went well. Only a regular file of at most kMaxCorpusBytes is
// read (a FIFO or a device is refused), and a line is never held longer than the context.
inline std::string load_word_corpus(const std::string& path, std::size_t context,
                                    std::uint64_t seed, std::size_t limit, WordCorpus& out) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    return "the corpus " + path + " is not a regular file (give a text file, one word per line)";
  if (!ec && std::filesystem::is_regular_file(status)) {
    const std::uintmax_t bytes = std::filesystem::file_size(path, ec);
    if (!ec && bytes > kMaxCorpusBytes)
      return "the corpus " + path + " has " + std::to_string(bytes) + " bytes; at most " +
             std::to_string(kMaxCorpusBytes) + " are read";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot read the corpus " + path +
           " (./dev installs wamerican; or give --corpus a text file, one word per line)";
  std::vector<std::string> words;
  std::string line;
  bool too_long = false;
  auto end_line = [&] {
    if (too_long) {
      ++out.skipped;
    } else if (!line.empty()) {
      const bool ascii =
          std::all_of(line.begin(), line.end(), [](char ch) { return ch > ' ' && ch < 127; });
      if (!ascii || line.size() + 1 > context)
        ++out.skipped;
      else
        words.push_back(line);
    }
    line.clear();
    too_long = false;
  };
  std::vector<char> buffer(1 << 16);
  std::uintmax_t total = 0;
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    const auto got = static_cast<std::size_t>(in.gcount());
    total += got;
    if (total > kMaxCorpusBytes)
      return "the corpus " + path + " has more than " + std::to_string(kMaxCorpusBytes) +
             " bytes; at most that many are read";
    for (std::size_t i = 0; i < got; ++i) {
      const char ch = buffer[i];
      if (ch == '\n') {
        end_line();
      } else if (!too_long) {
        line += ch;
        if (line.size() > context) {  // longer than any word kept: not held
          too_long = true;
          line.clear();
        }
      }
    }
  }
  end_line();
  if (words.size() < 10)
    return "the corpus " + path + " has " + std::to_string(words.size()) +
           " usable words (printable ASCII, at most " + std::to_string(context - 1) +
           " letters, one per line); needs at least 10";
  std::mt19937_64 shuffle(seed);
  std::shuffle(words.begin(), words.end(), shuffle);
  if (limit > 0 && limit < words.size()) words.resize(std::max<std::size_t>(limit, 10));
  std::string seen;
  for (const std::string& w : words) seen += w;
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  out.vocab.chars = seen;
  const std::size_t n = words.size(), train = n * 8 / 10, validation = n / 10;
  out.train.assign(words.begin(), words.begin() + long(train));
  out.validation.assign(words.begin() + long(train), words.begin() + long(train + validation));
  out.test.assign(words.begin() + long(train + validation), words.end());
  return "";
}

// The order of the training words in an epoch: a function of the seed and the epoch alone, so
// that a resumed run takes the same.
inline std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, int epoch) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 shuffle(seed * 1000003 + std::uint64_t(epoch));
  std::shuffle(order.begin(), order.end(), shuffle);
  return order;
}

// Inputs (rows, length) and targets (rows length), row-major, length the longest word + 1.
struct TokenBatch {
  std::size_t rows = 0, length = 0;
  std::vector<std::int64_t> inputs, targets;
  std::size_t characters = 0;  // targets that count (not padding)
};

inline TokenBatch make_token_batch(const std::vector<const std::string*>& words,
                                   const Vocabulary& v) {
  TokenBatch b;
  b.rows = words.size();
  for (const std::string* w : words) b.length = std::max(b.length, w->size() + 1);
  b.inputs.assign(b.rows * b.length, kPad);
  b.targets.assign(b.rows * b.length, kPad);
  for (std::size_t i = 0; i < b.rows; ++i) {
    const std::string& w = *words[i];
    std::int64_t* in = b.inputs.data() + i * b.length;
    std::int64_t* target = b.targets.data() + i * b.length;
    in[0] = kBoundary;
    for (std::size_t t = 0; t < w.size(); ++t) in[t + 1] = target[t] = v.token(w[t]);
    target[w.size()] = kBoundary;
    b.characters += w.size() + 1;
  }
  return b;
}

// Calls f(batch) for the words of `order`, batch_size at a time.
template <class F>
void for_each_token_batch(const std::vector<std::string>& words,
                          const std::vector<std::size_t>& order, std::size_t batch_size,
                          const Vocabulary& v, F&& f) {
  std::vector<const std::string*> chunk;
  for (std::size_t i = 0; i < order.size(); ++i) {
    chunk.push_back(&words[order[i]]);
    if (chunk.size() == batch_size || i + 1 == order.size()) {
      f(make_token_batch(chunk, v));
      chunk.clear();
    }
  }
}

}  // namespace xgrad::programs
