// Views: tensors over another's storage. What shares, what copies, the version counter they
// share, and the accessors of the storage/stride model, against layouts worked out by hand.
#include <doctest/doctest.h>

#include <sstream>

#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

namespace {
// A 2 x 3 float64 tensor 0..5 (not through `using namespace xgrad`: printing sizes must work
// without it).
xgrad::Tensor six() {
  return xgrad::tensor({{0, 1, 2}, {3, 4, 5}}, {.dtype = xgrad::kFloat64});
}
}  // namespace

TEST_CASE("sizes() and strides() print as [2, 3], with or without using namespace xgrad") {
  const xgrad::Tensor x = six();
  std::ostringstream os;
  os << x.sizes() << " " << x.strides() << " " << x.t().strides();
  CHECK(os.str() == "[2, 3] [3, 1] [1, 3]");
  CHECK(x.sizes()[1] == 3);
  CHECK(x.sizes() == xgrad::IntList({2, 3}));
}

using namespace xgrad;

TEST_CASE("views share their base's storage: nothing is copied, a change shows through") {
  const Tensor x = six();
  const double* base = x.data_ptr<double>();
  const Tensor t = x.t(), r = reshape(x, {3, 2}), s = slice(x, 1, 1, 3), row = select(x, 0, 1);
  const Tensor e = expand(slice(x, 0, 0, 1), {4, 3});
  for (const Tensor& v : {t, r, s, row, e}) {
    CHECK(v.is_view());
    CHECK(v.base().impl() == x.impl());
  }
  CHECK(t.data_ptr<double>() == base);
  CHECK(s.data_ptr<double>() == base + 1);
  CHECK(row.data_ptr<double>() == base + 3);
  CHECK(t.strides() == IntList({1, 3}));
  CHECK(s.strides() == IntList({3, 1}));
  CHECK(e.strides() == IntList({0, 1}));
  CHECK(t.is_contiguous() == false);
  CHECK(r.is_contiguous());
  CHECK(row.is_contiguous());
  CHECK_FALSE(s.is_contiguous());
  // A view of a view names the root as its base.
  CHECK(slice(t, 0, 1, 2).base().impl() == x.impl());
  CHECK_FALSE(x.is_view());
  CHECK_FALSE(x.base().defined());
  x.mutable_value<double>()(1, 2) = 50;  // through the base
  CHECK(testing::flat(t) == std::vector<double>{0, 3, 1, 4, 2, 50});
  CHECK(testing::flat(s) == std::vector<double>{1, 2, 4, 50});
  CHECK(testing::flat(row) == std::vector<double>{3, 4, 50});
  CHECK(testing::flat(e) == std::vector<double>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
}

TEST_CASE("view refuses what needs a copy; reshape copies then; value() of a strided view") {
  const Tensor x = six();
  CHECK(view(x, {3, 2}).is_view());
  CHECK(view(x, {-1}).sizes() == IntList({6}));
  CHECK(view(x.t(), {3, 1, 2}).sizes() == IntList({3, 1, 2}));  // an axis of 1 fits anywhere
  CHECK_THROWS_WITH_AS(view(x.t(), {6}), doctest::Contains("use reshape(), or contiguous()"),
                       ShapeError);
  const Tensor flat = reshape(x.t(), {6});  // a copy: its own storage
  CHECK(flat.base().impl() != x.impl());
  CHECK(testing::flat(flat) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK_THROWS_WITH_AS(x.t().value<double>(), doctest::Contains("call contiguous() first"),
                       ValueError);
  CHECK(reshape(x, {3, 2}).value<double>()(2, 1) == 5);  // a contiguous view: one array
  CHECK(x.t().contiguous().value<double>()(0, 1) == 3);
  CHECK_FALSE(x.t().contiguous().is_view());
  CHECK(x.contiguous().impl() == x.impl());  // nothing to do
  CHECK_THROWS_AS(x.t().mutable_value<double>(), ValueError);
  CHECK_THROWS_WITH_AS(expand(x, {2, 6}), doctest::Contains("only axes of length 1 expand"),
                       ShapeError);
  CHECK_THROWS_AS(as_strided(x, {3, 3}, {2, 1}, 1), ValueError);  // past the storage's end
  CHECK_THROWS_AS(x.data_ptr<float>(), DtypeError);
}

TEST_CASE("clone and contiguous copy; their gradients flow back to the view") {
  const Tensor x = six().requires_grad_();
  const Tensor c = clone(x.t());
  CHECK_FALSE(c.is_view());
  CHECK(c.data_ptr<double>() != x.data_ptr<double>());
  sum(c * testing::f64({{1, 2}, {3, 4}, {5, 6}})).backward();
  CHECK(testing::flat(x.grad()) == std::vector<double>{1, 3, 5, 2, 4, 6});
}

TEST_CASE("contiguous copies of views whose last axis is whole rows, and of others, by index") {
  using namespace xgrad;
  // 0..119 as (4, 5, 6): each view's copy against the entries its strides point at.
  std::vector<std::int64_t> v(120);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::int64_t(i);
  const Tensor base = from_vector(v, {4, 5, 6});
  struct Case {
    const char* what;
    Tensor view;
    std::size_t offset;
    std::vector<std::size_t> strides;  // of the view, in elements of base
  };
  const std::vector<Case> cases = {
      {"transpose(0, 1)", transpose(base, 0, 1), 0, {6, 30, 1}},
      {"rows stepped by 2", slice(base, 1, 1, 5, 2), 6, {30, 12, 1}},
      {"a column block", slice(base, 2, 2, 5), 2, {30, 6, 1}},
      {"transpose(1, 2) (last axis strided)", transpose(base, 1, 2), 0, {30, 1, 6}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Tensor copy = c.view.contiguous();
    REQUIRE(copy.is_contiguous());
    const Shape shape = c.view.shape();
    const std::vector<double> got = testing::flat(cast(copy, kFloat64));
    std::size_t k = 0;
    for (std::size_t i = 0; i < shape[0]; ++i)
      for (std::size_t j = 0; j < shape[1]; ++j)
        for (std::size_t l = 0; l < shape[2]; ++l, ++k)
          CHECK(got[k] ==
                double(c.offset + i * c.strides[0] + j * c.strides[1] + l * c.strides[2]));
  }
}

TEST_CASE("the version counter belongs to the storage: a change through the base reaches a node "
          "that saved a view") {
  const Tensor x = six();
  const Tensor w = testing::f64({1.0, 2.0}, true);
  const Tensor y = sum(select(x, 1, 0) * w);  // mul saves the view
  x.mutable_value<double>()(0, 0) = 7;         // the base changes after the forward
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("changed in place after the forward"),
                       AutogradError);
}

TEST_CASE("x[i] is the first axis's entry i, a view, with its gradient") {
  const Tensor m = tensor({{1, 2, 3}, {4, 5, 6}}, {.dtype = kFloat64, .requires_grad = true});
  CHECK(testing::flat(m[1]) == std::vector<double>{4, 5, 6});
  CHECK(m[-2][2].item<double>() == 3);
  CHECK(m[1].is_view());
  CHECK_THROWS_AS(m[2], IndexError);
  (m[1][0] * 10.0 + m[0][2]).backward();
  CHECK(testing::flat(m.grad()) == std::vector<double>{0, 0, 1, 10, 0, 0});
}

TEST_CASE("diagonal and unbind are views; as_strided reads any layout of the storage") {
  const Tensor m = tensor({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}, {.dtype = kFloat64});
  CHECK(testing::flat(diagonal(m)) == std::vector<double>{1, 5, 9});
  CHECK(testing::flat(diagonal(m, 1)) == std::vector<double>{2, 6});
  CHECK(testing::flat(diagonal(m, -2)) == std::vector<double>{7});
  CHECK(diagonal(m).strides() == IntList({4}));
  const std::vector<Tensor> rows = unbind(m, 1);
  REQUIRE(rows.size() == 3);
  CHECK(testing::flat(rows[2]) == std::vector<double>{3, 6, 9});
  CHECK(testing::flat(as_strided(m, {2, 2}, {1, 3}, 4)) == std::vector<double>{5, 8, 6, 9});
  CHECK(testing::flat(narrow(m, 0, 1, 2)) == std::vector<double>{4, 5, 6, 7, 8, 9});
  CHECK_THROWS_AS(narrow(m, 0, 2, 2), IndexError);
}

TEST_CASE("mm reads transposed and sliced views in place, with BLAS's flags and strides") {
  Generator gen(12);
  const Tensor a = randn({6, 5}, {.dtype = kFloat64}, gen), b = randn({6, 4}, {.dtype = kFloat64}, gen);
  const auto same = [](const Tensor& x, const Tensor& y) {
    const std::vector<double> u = testing::flat(x), v = testing::flat(y);
    REQUIRE(u.size() == v.size());
    for (std::size_t i = 0; i < u.size(); ++i) CHECK(u[i] == doctest::Approx(v[i]).epsilon(1e-12));
  };
  // A transposed view (its columns contiguous), with and without the flag: read in place (no
  // contiguous copy is made and cached in the view).
  const Tensor at = a.t(), rows = slice(a, 1, 1, 4);
  const Tensor product = mm(at, b);
  (void)mm(rows, slice(b, 0, 0, 3));
  CHECK(at.impl()->view->copy == nullptr);
  CHECK(rows.impl()->view->copy == nullptr);
  same(product, mm(at.contiguous(), b));
  same(mm(a, b.t(), true, true), mm(a.contiguous(), b.t().contiguous(), true, true));
  // Rows of a slice (leading dimension 5 for 3 columns), a stepped slice (copied), a single row.
  same(mm(slice(a, 1, 1, 4), slice(b, 0, 0, 3)),
       mm(slice(a, 1, 1, 4).contiguous(), slice(b, 0, 0, 3).contiguous()));
  same(mm(slice(a, 0, 0, 6, 2), slice(b, 0, 0, 5)),
       mm(slice(a, 0, 0, 6, 2).contiguous(), slice(b, 0, 0, 5).contiguous()));
  same(mm(narrow(a, 0, 2, 1), slice(b, 0, 1, 6)),
       mm(narrow(a, 0, 2, 1).contiguous(), slice(b, 0, 1, 6).contiguous()));
  // Batches: a permuted (B, T, D) -> (B, D, T) view, and one matrix expanded over the batch.
  const Tensor q = randn({3, 4, 2}, {.dtype = kFloat64}, gen);
  same(mm(q, transpose(q)), mm(q, transpose(q).contiguous()));
  const Tensor w = randn({1, 2, 5}, {.dtype = kFloat64}, gen);
  same(mm(q, expand(w, {3, 2, 5})), mm(q, expand(w, {3, 2, 5}).contiguous()));
}
