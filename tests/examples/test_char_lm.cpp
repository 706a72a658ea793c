// The language-model program, run as a user runs it, on a small synthetic word list: every model
// learns, a resumed run repeats the straight one, bad input exits 2.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <random>
#include <vector>

#include "tests/examples/run.hpp"
#include "tests/scratch.hpp"

namespace fs = std::filesystem;

namespace {

using xgrad::testing::Run;
Run run(const std::string& args) { return xgrad::testing::run_program(CHAR_LM, args); }

const xgrad::testing::ScratchDir& scratch() {
  static const xgrad::testing::ScratchDir dir("char_lm");
  return dir;
}

// 600 words over 6 letters that follow a pattern a bigram cannot see: each word repeats its first
// letter at its end ("abcda"); its letters in between are drawn freely.
fs::path synthetic_words() {
  const fs::path path = scratch() / "words.txt";
  if (fs::exists(path)) return path;
  std::mt19937 gen(3);
  std::ofstream out(path);
  for (int i = 0; i < 600; ++i) {
    std::string w(1, char('a' + gen() % 6));
    const std::size_t middle = 2 + gen() % 4;
    for (std::size_t k = 0; k < middle; ++k) w += char('a' + gen() % 6);
    out << w + w[0] << "\n";
  }
  out << "\xc3\xa9t\xc3\xa9\n";  // not ASCII: skipped
  return path;
}

double value_after(const std::string& out, const std::string& key) {
  const std::size_t at = out.rfind(key + "=");
  REQUIRE(at != std::string::npos);
  return std::stod(out.substr(at + key.size() + 1));
}

// The line of epoch `e` without its time: what a resumed run must reproduce.
std::string epoch_numbers(const Run& r, const std::string& e) {
  const std::size_t at = r.out.find("epoch " + e);
  if (at == std::string::npos) return "(no epoch " + e + ")";
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  return line.substr(0, line.rfind("  "));
}

}  // namespace

TEST_CASE("char_lm: every model learns the words; the sequence models see what a bigram cannot") {
  const std::string corpus = "--corpus " + synthetic_words().string() + " --samples 3 ";
  double bigram = 0;
  for (const std::string model : {"bigram", "mlp", "gru", "lstm", "transformer"}) {
    INFO(model);
    const Run r = run(corpus + "--model " + model + " --epochs 6 --batch-size 16 --lr 0.01");
    REQUIRE(r.status == 0);
    INFO(r.out << r.err);
    CHECK(r.out.find("(1 skipped)") != std::string::npos);
    CHECK(r.out.find("samples (temperature 1):") != std::string::npos);
    const double loss = value_after(r.out, "test_loss");
    CHECK(loss < std::log(8.0));  // below a uniform guess over the 6 letters and the end
    if (model == "bigram") bigram = loss;
    // The last letter is the first again: a model of the whole prefix predicts it.
    if (model == "gru" || model == "lstm" || model == "transformer") CHECK(loss < bigram - 0.05);
  }
}

TEST_CASE("char_lm: a resumed run repeats the straight one; log and checkpoint written") {
  const std::string base = "--corpus " + synthetic_words().string() +
                           " --model transformer --samples 0 --batch-size 32 ";
  const Run straight = run(base + "--epochs 2");
  REQUIRE(straight.status == 0);
  const fs::path ckpt = scratch() / "ckpt", log = scratch() / "log.csv";
  const Run first = run(base + "--epochs 1 --save " + ckpt.string());
  REQUIRE(first.status == 0);
  const Run resumed = run(base + "--epochs 2 --resume " + ckpt.string() + " --log " + log.string());
  REQUIRE(resumed.status == 0);
  CHECK(resumed.out.find("resumed from") != std::string::npos);
  CHECK(epoch_numbers(resumed, "2") == epoch_numbers(straight, "2"));
  CHECK(value_after(resumed.out, "test_loss") == value_after(straight.out, "test_loss"));
  std::ifstream csv(log);
  std::string header, row1, row2;
  std::getline(csv, header);
  std::getline(csv, row1);
  std::getline(csv, row2);
  CHECK(header.find("epoch") == 0);
  CHECK(row2.find("2,") == 0);
  // Another model cannot load this checkpoint.
  const Run other = run("--corpus " + synthetic_words().string() +
                        " --model gru --epochs 2 --resume " + ckpt.string());
  CHECK(other.status == 2);
  // Nor can another run of the same model: another split (--seed: most of the new test words
  // were trained on), learning rate, or corpus with the same letters. Each named, both values.
  const fs::path shuffled = scratch() / "other_words.txt";
  {
    std::ifstream in(synthetic_words());
    std::vector<std::string> words;
    for (std::string w; std::getline(in, w);) words.push_back(w);
    std::ofstream out(shuffled);
    for (auto w = words.rbegin(); w != words.rend(); ++w) out << *w << "\n";
  }
  const std::vector<std::pair<std::string, std::string>> runs = {
      {base + "--seed 2", "--seed: 2 here, 1 in the checkpoint"},
      {base + "--lr 0.1", "--lr: 0.1 here, 0.002 in the checkpoint"},
      {"--corpus " + shuffled.string() + " --model transformer --samples 0 --batch-size 32 ",
       "corpus: "},
  };
  for (const auto& [args, message] : runs) {
    const Run r = run(args + " --epochs 2 --resume " + ckpt.string());
    const auto& shown = args;  // INFO cannot capture a binding (clang 14)
    INFO(shown << "\n" << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("is of another run") != std::string::npos);
    CHECK(r.err.find(message) != std::string::npos);
  }
  // What a resume may change: the epochs, the threads, the files.
  const Run longer = run(base + "--epochs 3 --threads 2 --resume " + ckpt.string());
  INFO(longer.err);
  CHECK(longer.status == 0);
}

TEST_CASE("char_lm: bad input is a message and exit 2") {
  const Run missing = run("--corpus /nonexistent/words --epochs 1");
  CHECK(missing.status == 2);
  CHECK(missing.err.find("cannot read the corpus /nonexistent/words") != std::string::npos);
  const fs::path few = scratch() / "few.txt";
  std::ofstream(few) << "one\ntwo\n";
  const Run small = run("--corpus " + few.string() + " --epochs 1");
  CHECK(small.status == 2);
  CHECK(small.err.find("has 2 usable words") != std::string::npos);
  const Run unknown = run("--model rnn");
  CHECK(unknown.status == 2);
  CHECK(unknown.err.find("rnn not in {bigram,mlp,gru,lstm,transformer}") != std::string::npos);
  CHECK(run("--temperature 0").status == 2);
  CHECK(run("--context 1").status == 2);
  // Negative counts wrapped around to 2^64 - 1 (endless samples); refused as they are parsed.
  for (const char* flag : {"--samples -1", "--limit -1", "--samples 1e12"}) {
    const Run r = run(std::string("--corpus ") + few.string() + " " + flag);
    INFO(flag << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("must be a whole number from 0") != std::string::npos);
  }
  // Not a file of words: a device or a FIFO is refused, never read (/dev/zero had 16.8 GB read
  // before "0 usable words"), and so is one whose words would never end.
  const fs::path fifo = scratch() / "fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& corpus : {std::string("/dev/zero"), fifo.string()}) {
    const Run r = run("--corpus " + corpus + " --epochs 1");
    INFO(corpus << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find("is not a regular file") != std::string::npos);
  }
  const fs::path one_line = scratch() / "one_line.txt";
  std::ofstream(one_line) << std::string(3 << 20, 'a') << "\nab\n";
  const Run long_line = run("--corpus " + one_line.string() + " --epochs 1");
  CHECK(long_line.status == 2);
  CHECK(long_line.err.find("has 1 usable words") != std::string::npos);
  // A plot's path that would end a quoted string in gnuplot's script: refused at once.
  const fs::path marker = scratch() / "ran";
  const Run plot = run("--corpus " + few.string() + " --plot \"$(printf 'p.png\\nsystem(\"touch " +
                       marker.string() + "\")\\n#')\"");
  CHECK(plot.status == 2);
  CHECK(plot.err.find("control character") != std::string::npos);
  CHECK_FALSE(fs::exists(marker));
}
