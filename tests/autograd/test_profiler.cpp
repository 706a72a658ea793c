// The profiler: per-op counts and times over a step, nested ops counted for the outer one.
#include <doctest/doctest.h>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "autograd/profiler.hpp"

using namespace xgrad;

namespace {
const Profiler::Row* find(const std::vector<Profiler::Row>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}
}  // namespace

TEST_CASE("profiler: each op's forward and backward counted once, nested calls to the outer one") {
  Generator gen(1);
  const Tensor x = randn({8, 5}, {}, gen);
  const Tensor w = randn({4, 5}, {.requires_grad = true}, gen);
  const Tensor b = randn({4}, {.requires_grad = true}, gen);
  linear(x, w, b);  // before: not counted
  Profiler profiler;
  for (int step = 0; step < 3; ++step) {
    const Tensor loss = sum(relu(linear(x, w, b)));
    loss.backward();
    const ProfileScope own("my phase");
    mul(x, 2.0);  // inside a scope of the program's own: counts for it
  }
  profiler.stop();
  linear(x, w, b);  // after: not counted
  const auto rows = profiler.rows();
  const auto* lin = find(rows, "linear");
  REQUIRE(lin != nullptr);
  CHECK(lin->forward_calls == 3);
  CHECK(lin->backward_calls == 3);
  CHECK(lin->forward_us > 0);
  CHECK(lin->backward_us > 0);
  REQUIRE(find(rows, "relu") != nullptr);
  CHECK(find(rows, "relu")->forward_calls == 3);
  CHECK(find(rows, "relu")->backward_calls == 3);
  std::string names;
  for (const auto& r : rows) names += r.name + " ";
  INFO("rows: " << names);
  REQUIRE(find(rows, "sum_to") != nullptr);  // sum is sum_to, a composite of it
  CHECK(find(rows, "sum_to")->forward_calls == 3);
  // its own tape entry, and the engine summing b's gradient over the batch: 2 per step
  CHECK(find(rows, "sum_to")->backward_calls == 6);
  CHECK(find(rows, "mm") == nullptr);     // linear's backward calls mm: counted as linear's
  CHECK(find(rows, "where") == nullptr);  // relu's backward calls where
  CHECK(find(rows, "mul") == nullptr);
  REQUIRE(find(rows, "my phase") != nullptr);
  CHECK(find(rows, "my phase")->forward_calls == 3);
  for (std::size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].total_us() >= rows[i].total_us());
  double in_ops = 0;
  for (const auto& r : rows) in_ops += r.total_us();
  CHECK(in_ops <= profiler.elapsed_us());
  const std::string table = profiler.table();
  CHECK(table.find("backward us") != std::string::npos);
  CHECK(table.find("(outside ops)") != std::string::npos);
  CHECK(table.find("linear ") != std::string::npos);
}

TEST_CASE("profiler: one per thread; a second is refused, a later one starts empty") {
  {
    Profiler first;
    CHECK_THROWS_WITH_AS(Profiler(), doctest::Contains("Profiler: one is already running"),
                         AutogradError);
    exp(ones({2}));
    CHECK(first.rows().size() == 1);
  }
  Profiler second;
  CHECK(second.rows().empty());
}
