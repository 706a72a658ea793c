// The walkthrough program, run as a user runs it: output, JSON, exit status, bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "examples/walkthrough/closed_form.hpp"
#include "examples/walkthrough/network_spec.hpp"
#include "tests/examples/run.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using namespace walkthrough;
namespace fs = std::filesystem;

namespace {

struct Run {
  int status;
  std::string output;  // stdout, then stderr
};

Run run(const std::string& args) {
  const testing::Run r = testing::run_program(WALKTHROUGH, args);
  return {r.status, r.out + r.err};
}

std::string spec_file(const std::string& name, const std::string& text) {
  static const testing::ScratchDir dir("walkthrough");
  std::ofstream(dir / name) << text;
  return (dir / name).string();
}

// Two hidden layers (sigmoid, tanh), a batch of two samples.
const char* kSpec = R"({
  "layers": [
    {"W": [[0.2, -0.5, 1.0], [0.7, 0.1, -0.3], [-0.4, 0.9, 0.25], [0.6, -0.2, 0.05]], "b": [0.1, -0.1, 0.0, 0.2], "activation": "sigmoid"},
    {"W": [[0.5, -0.6, 0.3, 0.8], [-0.7, 0.2, 0.9, -0.1], [0.3, 0.3, -0.5, 0.4]], "b": [0.0, 0.05, -0.05], "activation": "tanh"},
    {"W": [[1.0, -1.0, 0.5], [0.2, 0.4, -0.6]], "b": [0.3, -0.3]}
  ],
  "x": [[1.0, 2.0, -1.0], [0.5, -0.5, 0.25]],
  "y": [1, 0],
  "lr": 0.5
})";

}  // namespace

TEST_CASE(
    "walkthrough: the built-in network agrees with the tape, and the document's rule does not") {
  const Run ok = run("");
  CHECK(ok.status == 0);
  CHECK(ok.output.find("agrees with the tape everywhere") != std::string::npos);
  CHECK(ok.output.find("grad_W_1") != std::string::npos);
  const Run doc = run("--formula document");
  CHECK(doc.status == 1);
  CHECK(doc.output.find("first disagrees with the tape at layer 1, grad_o_1") != std::string::npos);
}

TEST_CASE("walkthrough --json: every quantity, batch first, numbers that round-trip") {
  const std::string path = spec_file("net.json", kSpec);
  const Run r = run("--json --spec " + path);
  REQUIRE(r.status == 0);
  const nlohmann::json out = nlohmann::json::parse(r.output);
  const BackpropTrace expected = tape_backprop(load_network_spec(path));
  CHECK(out["loss"].get<double>() == doctest::Approx(expected.loss).epsilon(1e-15));
  CHECK(out["tape"]["loss"].get<double>() == expected.loss);  // exact: digits round-trip
  REQUIRE(out["layers"].size() == 3);
  CHECK(out["p"].size() == 2);
  CHECK(out["p"][0].size() == 2);
  const auto& l1 = out["layers"][0];
  CHECK(l1["z"].size() == 2);  // batch first
  CHECK(l1["z"][0].size() == 4);
  CHECK(l1["grad_W"].size() == 4);  // (d_1, d_0)
  CHECK(l1["grad_W"][0].size() == 3);
  CHECK(l1["grad_b"].is_array());
  CHECK(l1["grad_b"][0].is_number());  // flat
  CHECK(l1["b_next"].size() == 4);
  for (std::size_t l = 0; l < 3; ++l)
    for (std::size_t i = 0; i < expected.W_next[l].shape()[0]; ++i)
      for (std::size_t j = 0; j < expected.W_next[l].shape()[1]; ++j)
        CHECK(out["layers"][l]["W_next"][i][j].get<double>() ==
              doctest::Approx(expected.W_next[l](i, j)).epsilon(1e-14));
  CHECK(out["agree"] == true);
  CHECK(out["first_disagreement"].is_null());

  const Run doc = run("--json --formula document --spec " + path);
  CHECK(doc.status == 1);
  const nlohmann::json d = nlohmann::json::parse(doc.output);
  CHECK(d["agree"] == false);
  CHECK(d["first_disagreement"]["quantity"] == "grad_o");
  CHECK(d["first_disagreement"]["layer"] == 1);
}

TEST_CASE("walkthrough: one sample as a vector, and one hidden layer where the document is right") {
  const std::string path = spec_file("one.json", R"({"layers": [
      {"W": [[1.0, -0.5], [0.3, 0.8], [-0.6, 0.2]], "b": [0, 0.1, -0.1], "activation": "relu"},
      {"W": [[0.5, -1.0, 0.7], [-0.2, 0.4, 0.9]], "b": [0.0, 0.0]}],
    "x": [1.5, -0.5], "y": 1})");
  const Run r = run("--json --formula document --spec " + path);
  CHECK(r.status == 0);
  const nlohmann::json out = nlohmann::json::parse(r.output);
  CHECK(out["layers"][0]["z"].size() == 1);  // a batch of one
  CHECK(out["lr"].get<double>() == 0.1);     // the default
}

TEST_CASE("walkthrough: the document's 1-based labels with \"label_base\": 1, shown with it") {
  const std::string layers = R"("layers": [
      {"W": [[1.0, -0.5], [0.3, 0.8], [-0.6, 0.2]], "b": [0, 0.1, -0.1], "activation": "tanh"},
      {"W": [[0.5, -1.0, 0.7], [-0.2, 0.4, 0.9], [0.1, 0.1, 0.1]], "b": [0.0, 0.0, 0.0]}])";
  const std::string zero = spec_file("zero_based.json", "{" + layers + R"(, "x": [[1.5, -0.5], [0.2, 0.1]], "y": [0, 2]})");
  const std::string one = spec_file("one_based.json", "{" + layers + R"(, "x": [[1.5, -0.5], [0.2, 0.1]], "y": [1, 3], "label_base": 1})");
  const Run a = run("--json --spec " + zero), b = run("--json --spec " + one);
  REQUIRE(a.status == 0);
  REQUIRE(b.status == 0);
  CHECK(a.output == b.output);  // class 3 of 1..3 is class 2 of 0..2: the same numbers
  const Run text = run("--spec " + one);
  CHECK(text.output.find("Labels: y = 1, 3, 1-based (classes 1..3, as the document numbers them)") !=
        std::string::npos);
  CHECK(run("--spec " + zero).output.find("Labels: y = 0, 2, 0-based (classes 0..2") !=
        std::string::npos);
  const std::string bad = spec_file("bad_base.json", "{" + layers + R"(, "x": [1.5, -0.5], "y": 0, "label_base": 1})");
  const Run r = run("--spec " + bad);
  CHECK(r.status == 2);
  CHECK(r.output.find("y: label 0 is out of range 1..3 (\"label_base\": 1 numbers the 3 classes from 1)") !=
        std::string::npos);
  const Run base = run("--spec " + spec_file("base2.json", "{" + layers + R"(, "x": [1.5, -0.5], "y": 0, "label_base": 2})"));
  CHECK(base.status == 2);
  CHECK(base.output.find("label_base: expected 0") != std::string::npos);
}

TEST_CASE("walkthrough: bad input exits with status 2 and says what is wrong") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--spec /nonexistent/net.json", "cannot read /nonexistent/net.json"},
      {"--spec " + spec_file("malformed.json", "{\"layers\": [}"), "malformed JSON"},
      {"--spec " +
           spec_file("shapes.json", R"({"layers": [{"W": [[1, 2]], "b": [0], "activation": "relu"},
          {"W": [[1, 2]], "b": [0]}], "x": [1, 2], "y": 0})"),
       "layer 2: W has shape [1, 2]"},
      {"--spec " +
           spec_file("ragged.json",
                     R"({"layers": [{"W": [[1, 2], [3]], "b": [0, 0]}], "x": [1, 2], "y": 0})"),
       "layers[0].W[1]: row 1 has 1 numbers, row 0 has 2"},
      {"--spec " +
           spec_file("act.json", R"({"layers": [{"W": [[1, 2]], "b": [0], "activation": "swish"},
          {"W": [[1]], "b": [0]}], "x": [1, 2], "y": 0})"),
       "layer 1: unknown activation 'swish'"},
      {"--spec " +
           spec_file("label.json",
                     R"({"layers": [{"W": [[1, 2], [3, 4]], "b": [0, 0]}], "x": [1, 2], "y": 5})"),
       "label 5 of sample 0 is out of range for 2 classes"},
      {"--spec " +
           spec_file(
               "count.json",
               R"({"layers": [{"W": [[1, 2], [3, 4]], "b": [0, 0]}], "x": [[1, 2], [3, 4]], "y": [1]})"),
       "1 labels for 2 samples"},
      {"--spec " +
           spec_file(
               "key.json",
               R"({"layers": [{"W": [[1, 2]], "b": [0]}], "x": [1, 2], "y": 0, "learning_rate": 1})"),
       "unknown key \"learning_rate\""},
      {"--spec " +
           spec_file(
               "last.json",
               R"({"layers": [{"W": [[1, 2]], "b": [0], "activation": "relu"}], "x": [1, 2], "y": 0})"),
       "layer 1 is the last"},
      {"--spec " +
           spec_file("lr.json",
                     R"({"layers": [{"W": [[1, 2], [3, 4]], "b": [0, 0]}], "x": [1, 2], "y": 0, "lr": -1})"),
       "lr must be a finite number >= 0"},
      {"--spec " +
           spec_file("overflow.json",
                     R"({"layers": [{"W": [[1e300, 1e300], [3, 4]], "b": [0, 0]}], "x": [1e300, 2], "y": 0})"),
       "leave double's range"},
      {"--spec " + fs::temp_directory_path().string(), "is a folder"},
      {"--spec " + spec_file("big_label.json",
                             R"({"layers": [{"W": [[1, 2], [3, 4]], "b": [0, 0]}], "x": [1, 2], "y": 18446744073709551615})"),
       "label 18446744073709551615 is out of range"},
      {"--formula sloppy", "--formula"},
      {"--no-such-flag", "no-such-flag"},
  };
  for (const auto& [args, message] : cases) {
    const Run r = run(args);
    const auto& shown = args;  // INFO cannot capture a binding (clang 14)
    INFO(shown << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(message) != std::string::npos);
  }
}

namespace {

// Every number under `path` of two JSON documents, compared to a relative `tolerance` of the
// largest magnitude of that quantity; strings, booleans and nulls must be equal.
void check_same_values(const nlohmann::json& got, const nlohmann::json& stored,
                       const std::string& path, double tolerance, double scale = 0) {
  INFO(path);
  if (stored.is_number()) {
    REQUIRE(got.is_number());
    const double g = got.get<double>(), s = stored.get<double>();
    CHECK(std::abs(g - s) <= tolerance * std::max({scale, std::abs(s), 1e-300}));
    return;
  }
  if (stored.is_array() || stored.is_object()) {
    REQUIRE(got.type() == stored.type());
    REQUIRE(got.size() == stored.size());
    double largest = scale;  // a quantity's scale: its largest entry
    if (stored.is_array() && !stored.empty())
      for (const auto& row : stored)
        for (const auto& v : row.is_array() ? row : nlohmann::json::array({row}))
          if (v.is_number()) largest = std::max(largest, std::abs(v.get<double>()));
    for (auto it = stored.begin(); it != stored.end(); ++it) {
      const std::string key = stored.is_object() ? it.key() : "";
      const nlohmann::json& g =
          stored.is_object() ? got.at(key)
                             : got.at(static_cast<std::size_t>(it - stored.begin()));
      // The differences are rounding noise of the BLAS backend: only where they are found.
      if (key == "max_abs" || key == "rel" || (key == "index" && path.starts_with(".differences")))
        continue;
      check_same_values(g, *it, path + (key.empty() ? "[]" : "." + key), tolerance, largest);
    }
    return;
  }
  CHECK(got == stored);
}

}  // namespace

TEST_CASE("walkthrough: the values are those stored for the built-in network and a 3-layer spec") {
  const std::string data = std::string(XGRAD_SOURCE_DIR) + "/tests/examples/data/";
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"--json", "walkthrough_builtin.json"},
      {"--json --formula document", "walkthrough_builtin_document.json"},
      {"--json --spec " + data + "three_layers.json", "walkthrough_three_layers.json"},
      {"--json --formula document --spec " + data + "three_layers.json",
       "walkthrough_three_layers_document.json"}};
  for (const auto& [args, file] : runs) {
    const auto& shown = args;  // INFO cannot capture a binding (clang 14)
    INFO(shown);
    const Run r = run(args);
    std::ifstream in(data + file);
    const nlohmann::json stored = nlohmann::json::parse(in);
    CHECK(r.status == (stored["agree"] == true ? 0 : 1));
    nlohmann::json got = nlohmann::json::parse(r.output);
    // The mistake the verifier finds where the closed form is wrong (not in the stored files).
    const nlohmann::json mistakes = got["mistakes"];
    got.erase("mistakes");
    REQUIRE(mistakes.size() == (stored["agree"] == true ? 0 : 1));
    if (!mistakes.empty()) CHECK(mistakes[0]["kind"] == "derivative_missing_below");
    // The closed form is plain loops in double: its values may not move. The tape's go through
    // BLAS, whose summation order may change with the backend: rounding only.
    nlohmann::json closed = stored, closed_got = got;
    closed.erase("tape");
    closed_got.erase("tape");
    check_same_values(closed_got, closed, "", 1e-15);
    check_same_values(got["tape"], stored["tape"], "tape", 1e-12);
  }
}

TEST_CASE("walkthrough: an activation added to the table (mish) is taken by specs and checked") {
  const std::string path = spec_file("mish.json", R"({"layers": [
      {"W": [[1.0, -0.5], [0.3, 0.8], [-0.6, 0.2]], "b": [0, 0.1, -0.1], "activation": "mish"},
      {"W": [[0.5, -1.0, 0.7], [-0.2, 0.4, 0.9]], "b": [0.1, 0.0], "activation": "mish"},
      {"W": [[0.3, -0.6], [0.8, 0.1]], "b": [0.0, 0.0]}],
    "x": [[1.5, -0.5], [0.2, 0.7]], "y": [1, 0]})");
  const Run ok = run("--json --spec " + path);
  CHECK(ok.status == 0);
  CHECK(nlohmann::json::parse(ok.output)["layers"][0]["activation"] == "mish");
  const Run doc = run("--json --formula document --spec " + path);
  CHECK(doc.status == 1);
  CHECK(nlohmann::json::parse(doc.output)["first_disagreement"]["layer"] == 1);
}
