// The gradient-check table: one line per op and shape, each checked against finite differences
// (gradcheck) and, for second derivatives, through create_graph (gradgradcheck), in double.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "autograd/detail/kernels.hpp"
#include "autograd/engine.hpp"
#include "autograd/functional.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "tests/helpers.hpp"

using namespace xgrad;

namespace {

enum class Domain {
  any,       // uniform in [-2, 2]
  positive,  // uniform in [0.5, 2]: log, sqrt, the base of pow
  away,      // |x| in [0.25, 2], either sign: keeps clear of kinks at 0 (relu, abs) and of 1/0
};

struct OpCase {
  std::string op;             // the name declared in autograd/ops.hpp
  std::vector<Shape> shapes;  // one per input; every input requires grad
  TensorFn f;
  Domain domain = Domain::any;
  bool constant = false;  // piecewise constant: checks that nothing requires grad instead
};

Tensor mask_3x4() {
  return tensor({{1, 0, 0, 1}, {0, 1, 1, 0}, {1, 1, 0, 0}}, {.dtype = kBool});
}

const Tensor gather_index = testing::i64({{0, 3}, {1, 1}, {2, 0}});

std::vector<OpCase> table() {
  using V = const std::vector<Tensor>&;
  return {
      {"add", {{3, 4}, {3, 4}}, [](V x) { return add(x[0], x[1]); }},
      {"add", {{3, 4}, {4}}, [](V x) { return add(x[0], x[1]); }},
      {"add", {{3, 1}, {1, 4}}, [](V x) { return x[0] + x[1]; }},
      {"add", {{2, 3, 4}, {}}, [](V x) { return x[0] + x[1]; }},
      {"add", {{3, 4}}, [](V x) { return add(x[0], 0.5) - 1.5; }},
      {"sub", {{3, 4}, {4}}, [](V x) { return sub(x[0], x[1]); }},
      {"sub", {{2, 1, 3}, {4, 1}}, [](V x) { return x[0] - x[1]; }},
      {"mul", {{3, 4}, {3, 4}}, [](V x) { return mul(x[0], x[1]); }},
      {"mul", {{3, 1}, {4}}, [](V x) { return x[0] * x[1]; }},
      {"mul", {{3, 4}}, [](V x) { return mul(x[0], -1.5) * x[0] + 2.0 * x[0]; }},
      {"div", {{3, 4}, {3, 4}}, [](V x) { return div(x[0], x[1]); }, Domain::away},
      {"div", {{3, 4}, {3, 1}}, [](V x) { return x[0] / x[1]; }, Domain::away},
      {"neg", {{3, 4}}, [](V x) { return neg(x[0]); }},
      // A number on either side: its own nodes, no tensor made for it.
      {"sub", {{3, 4}}, [](V x) { return 2.0 - x[0] - 1; }},
      {"div", {{3, 4}}, [](V x) { return div(x[0], 2.5) + x[0] / 4; }},
      {"div", {{3, 4}}, [](V x) { return div(3.0, x[0]); }, Domain::away},
      {"mul", {{3, 4}}, [](V x) { return 2 * x[0] + x[0] * 3; }},
      // An integer or bool operand promotes to the float (and gets no gradient).
      {"mul", {{3, 4}}, [](V x) { return x[0] * mask_3x4() + x[0] * (x[0] > 0.0).to(kInt64); }},
      {"add",
       {{3, 4}},
       [](V x) {
         return x[0] + testing::i64({1, -2, 3, 0});
       }},
      {"div",
       {{3, 4}},
       [](V x) {
         return x[0] / testing::i64({1, -2, 3, 4});
       }},
      {"pow", {{3, 4}, {3, 4}}, [](V x) { return pow(x[0], x[1]); }, Domain::positive},
      {"pow", {{3, 4}, {}}, [](V x) { return pow(x[0], x[1]); }, Domain::positive},
      {"pow", {{3, 4}}, [](V x) { return pow(x[0], 3.0); }},
      {"pow", {{3, 4}}, [](V x) { return pow(x[0], -1.5); }, Domain::positive},
      {"exp", {{3, 4}}, [](V x) { return exp(x[0]); }},
      {"log", {{3, 4}}, [](V x) { return log(x[0]); }, Domain::positive},
      {"sqrt", {{3, 4}}, [](V x) { return sqrt(x[0]); }, Domain::positive},
      {"abs", {{3, 4}}, [](V x) { return abs(x[0]); }, Domain::away},
      {"erf", {{3, 4}}, [](V x) { return erf(x[0]); }},
      {"erfc", {{3, 4}}, [](V x) { return erfc(x[0]); }},
      // From here on, many are composites (autograd/ops/composite.cpp): maximum, minimum, clamp,
      // elu, silu, matmul, flatten, transpose, squeeze, unsqueeze, slice, select, stack,
      // sum, mean, min, logsumexp, var. Their gradients come from the primitives they use.
      {"maximum", {{3, 4}, {3, 4}}, [](V x) { return maximum(x[0], x[1]); }},
      {"maximum", {{3, 4}, {4}}, [](V x) { return maximum(x[0], x[1]); }},
      {"minimum", {{3, 4}, {3, 1}}, [](V x) { return minimum(x[0], x[1]); }},
      {"clamp", {{3, 4}}, [](V x) { return clamp(x[0], -0.7, 0.9); }},
      {"where", {{3, 4}, {3, 4}}, [](V x) { return where(mask_3x4(), x[0], x[1]); }},
      {"where", {{3, 4}, {4}}, [](V x) { return where(mask_3x4(), x[0], x[1]); }},
      {"cast", {{3, 4}}, [](V x) { return cast(x[0], kFloat64) * x[0]; }},
      {"gt", {{3, 4}, {3, 4}}, [](V x) { return gt(x[0], x[1]); }, Domain::any, true},
      {"ge", {{3, 4}, {4}}, [](V x) { return ge(x[0], x[1]); }, Domain::any, true},
      {"lt", {{3, 4}, {3, 4}}, [](V x) { return lt(x[0], x[1]); }, Domain::any, true},
      {"le", {{3, 4}, {}}, [](V x) { return le(x[0], x[1]); }, Domain::any, true},
      {"eq", {{3, 4}, {3, 4}}, [](V x) { return eq(x[0], x[1]); }, Domain::any, true},
      {"sign", {{3, 4}}, [](V x) { return sign(x[0]); }, Domain::any, true},
      {"ne", {{3, 4}, {4}}, [](V x) { return ne(x[0], x[1]); }, Domain::any, true},
      {"gt", {{3, 4}}, [](V x) { return x[0] > 0.5; }, Domain::any, true},
      {"logical_and",
       {{3, 4}, {3, 4}},
       [](V x) { return logical_and(x[0], x[1]); },
       Domain::away,
       true},
      {"logical_or",
       {{3, 4}, {4}},
       [](V x) { return logical_or(x[0] > 0, x[1]); },
       Domain::any,
       true},
      {"logical_xor",
       {{3, 4}, {3, 4}},
       [](V x) { return logical_xor(x[0] > 0, x[1] > 0); },
       Domain::any,
       true},
      {"logical_not", {{3, 4}}, [](V x) { return logical_not(x[0] > 0); }, Domain::any, true},
      {"bitwise_and",
       {{3, 4}, {3, 4}},
       [](V x) { return (x[0] > 0) & (x[1] > 0); },
       Domain::any,
       true},
      {"bitwise_or",
       {{3, 4}, {3, 4}},
       [](V x) { return (x[0] > 0) | (x[1] > 0); },
       Domain::any,
       true},
      {"bitwise_xor",
       {{3, 4}, {3, 4}},
       [](V x) { return (x[0] > 0) ^ (x[1] > 0); },
       Domain::any,
       true},
      {"bitwise_not", {{3, 4}}, [](V x) { return ~(x[0] > 0); }, Domain::any, true},
      {"any", {{3, 4}}, [](V x) { return any(x[0] > 0, 1); }, Domain::any, true},
      {"all", {{3, 4}}, [](V x) { return all(x[0] > -3); }, Domain::any, true},
      {"count_nonzero", {{3, 4}}, [](V x) { return count_nonzero(x[0] > 0); }, Domain::any, true},
      {"nonzero", {{3, 4}}, [](V x) { return nonzero(x[0] > 0); }, Domain::any, true},
      {"argmax", {{3, 4}}, [](V x) { return argmax(x[0], 1); }, Domain::any, true},
      {"argmin", {{3, 4}}, [](V x) { return argmin(x[0], 0); }, Domain::any, true},
      {"multinomial", {{3, 4}}, [](V x) { return multinomial(abs(x[0]), 2); }, Domain::away, true},
      {"div", {{3, 4}, {3, 4}}, [](V x) { return div(x[0], x[1], "floor"); }, Domain::away, true},
      {"floor_divide",
       {{3, 4}, {4}},
       [](V x) { return floor_divide(x[0], x[1]); },
       Domain::away,
       true},
      {"relu", {{3, 4}}, [](V x) { return relu(x[0]); }, Domain::away},
      {"leaky_relu", {{3, 4}}, [](V x) { return leaky_relu(x[0], 0.1); }, Domain::away},
      {"sigmoid", {{3, 4}}, [](V x) { return sigmoid(x[0]); }},
      {"tanh", {{3, 4}}, [](V x) { return tanh(x[0]); }},
      {"gelu", {{3, 4}}, [](V x) { return gelu(x[0]); }},
      {"softplus", {{3, 4}}, [](V x) { return softplus(x[0]); }},
      {"elu", {{3, 4}}, [](V x) { return elu(x[0], 0.7); }, Domain::away},
      {"silu", {{3, 4}}, [](V x) { return silu(x[0]); }},
      {"mish", {{3, 4}}, [](V x) { return mish(x[0]); }},
      {"prelu", {{2, 3, 4}, {3}}, [](V x) { return prelu(x[0], x[1]); }, Domain::away},
      {"prelu", {{3, 4}, {1}}, [](V x) { return prelu(x[0], x[1]); }, Domain::away},
      {"matmul", {{3, 4}, {4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{4}, {4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{3, 4}, {4}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{4}, {4}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{2, 3, 4}, {2, 4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{2, 3, 4}, {4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{2, 1, 3, 4}, {3, 4, 2}}, [](V x) { return matmul(x[0], x[1]); }},  // broadcast
      {"matmul", {{3, 4}, {2, 4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{4}, {2, 4, 3}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul", {{2, 2, 3, 4}, {4}}, [](V x) { return matmul(x[0], x[1]); }},
      {"mm", {{3, 4}, {5, 4}}, [](V x) { return mm(x[0], x[1], false, true); }},
      {"mm", {{4, 3}, {4, 5}}, [](V x) { return mm(x[0], x[1], true, false); }},
      {"mm", {{4, 3}, {5, 4}}, [](V x) { return mm(x[0], x[1], true, true); }},
      {"mm", {{2, 4, 3}, {2, 5, 4}}, [](V x) { return mm(x[0], x[1], true, true); }},
      {"linear", {{3, 4}, {5, 4}, {5}}, [](V x) { return linear(x[0], x[1], x[2]); }},
      {"linear", {{4}, {5, 4}, {5}}, [](V x) { return linear(x[0], x[1], x[2]); }},
      {"linear", {{3, 4}, {5, 4}}, [](V x) { return linear(x[0], x[1]); }},
      {"linear", {{2, 3, 4}, {5, 4}, {5}}, [](V x) { return linear(x[0], x[1], x[2]); }},
      {"linear",
       {{3, 4}, {5, 4}, {5}},
       [](V x) { return linear(x[0], x[1], x[2], Epilogue::relu); }},
      {"linear",
       {{3, 4}, {5, 4}, {5}},
       [](V x) { return linear(x[0], x[1], x[2], Epilogue::tanh); }},
      {"linear",
       {{4}, {5, 4}, {5}},
       [](V x) { return linear(x[0], x[1], x[2], Epilogue::sigmoid); }},
      {"linear", {{3, 4}, {5, 4}}, [](V x) { return linear(x[0], x[1], {}, Epilogue::sigmoid); }},
      {"reshape",
       {{3, 4}},
       [](V x) {
         return reshape(x[0], {2, -1}) * 2.0;
       }},
      {"flatten", {{2, 3, 4}}, [](V x) { return flatten(x[0], 1); }},
      {"permute",
       {{2, 3, 4}},
       [](V x) {
         return permute(x[0], {2, 0, 1});
       }},
      {"transpose", {{3, 4}}, [](V x) { return transpose(x[0]); }},
      {"squeeze", {{3, 1, 4}}, [](V x) { return squeeze(x[0]); }},
      {"squeeze", {{3, 1, 4}}, [](V x) { return squeeze(x[0], 1); }},
      {"unsqueeze", {{3, 4}}, [](V x) { return unsqueeze(x[0], -1); }},
      {"broadcast_to",
       {{3, 1}},
       [](V x) {
         return broadcast_to(x[0], {2, 3, 4});
       }},
      {"sum_to",
       {{2, 3, 4}},
       [](V x) {
         return sum_to(x[0], {3, 1});
       }},
      {"slice", {{5, 4}}, [](V x) { return slice(x[0], 0, 1, 5, 2); }},
      // Views over views, and strided views into the other ops (every kernel reads them).
      {"view",
       {{3, 4}},
       [](V x) {
         return view(x[0], {2, 6}) * view(x[0], {2, 6});
       }},
      {"view", {{3, 4}}, [](V x) { return view(slice(x[0], 0, 1, 3), {8}); }},
      {"reshape", {{3, 4}}, [](V x) { return reshape(transpose(x[0]), {12}) * 2.0; }},
      {"expand",
       {{3, 1}},
       [](V x) {
         return expand(x[0], {2, 3, 4}) * expand(x[0], {-1, 4});
       }},
      {"narrow", {{3, 4}}, [](V x) { return narrow(x[0], 1, 1, 2) * narrow(x[0], 1, -2, 2); }},
      {"diagonal",
       {{3, 4}},
       [](V x) { return diagonal(x[0], 1) * diagonal(x[0]) + sum(diagonal(x[0], -1)); }},
      {"diagonal", {{2, 3, 3}}, [](V x) { return diagonal(transpose(x[0], 0, 2), 0, 1, 2); }},
      {"as_strided",  // overlapping windows: an entry read twice gets both gradients
       {{3, 4}},
       [](V x) {
         return as_strided(x[0], {2, 3}, {4, 1}, 1) * as_strided(x[0], {2, 3}, {1, 1});
       }},
      {"clone", {{3, 4}}, [](V x) { return clone(transpose(x[0])) * x[0].t(); }},
      {"mul", {{3, 4}, {4, 3}}, [](V x) { return mul(transpose(x[0]), slice(x[1], 0, 0, 4)); }},
      {"matmul",
       {{3, 4}, {4, 5}},
       [](V x) { return matmul(x[0].t().t(), slice(x[1], 1, 0, 5, 2)); }},
      {"slice", {{3, 5}}, [](V x) { return slice(x[0], -1, -3, 100); }},
      {"select", {{3, 4}}, [](V x) { return select(x[0], 1, 2); }},
      {"index_select",
       {{4, 3}},
       [](V x) {
         return index_select(x[0], 0, {3, 0, 3});
       }},
      {"index_add",
       {{4, 3}, {2, 3}},
       [](V x) {
         return index_add(x[0], 0, {1, 1}, x[1]);
       }},
      {"gather", {{3, 4}}, [](V x) { return gather(x[0], 1, gather_index); }},
      {"scatter_add",
       {{3, 4}, {3, 2}},
       [](V x) { return scatter_add(x[0], 1, gather_index, x[1]); }},
      {"concat",
       {{2, 3}, {4, 3}},
       [](V x) {
         return concat({x[0], x[1]}, 0);
       }},
      {"concat",
       {{2, 3}, {2, 1}, {2, 2}},
       [](V x) {
         return concat({x[0], x[1], x[2]}, -1);
       }},
      {"stack",
       {{2, 3}, {2, 3}},
       [](V x) {
         return stack({x[0], x[1]}, 1);
       }},
      {"sum", {{3, 4}}, [](V x) { return sum(x[0]); }},
      {"sum", {{2, 3, 4}}, [](V x) { return sum(x[0], {0}, true); }},
      {"sum",
       {{2, 3, 4}},
       [](V x) {
         return sum(x[0], {1, -1});
       }},
      {"mean", {{3, 4}}, [](V x) { return mean(x[0]); }},
      {"mean", {{2, 3, 4}}, [](V x) { return mean(x[0], {1}); }},
      {"max", {{3, 4}}, [](V x) { return max(x[0]); }},
      {"max", {{3, 4}}, [](V x) { return max(x[0], {1}); }},
      {"max",
       {{2, 3, 4}},
       [](V x) {
         return max(x[0], {0, 2}, true);
       }},
      {"min", {{3, 4}}, [](V x) { return min(x[0]); }},
      {"min", {{3, 4}}, [](V x) { return min(x[0], {0}); }},
      {"logsumexp", {{3, 4}}, [](V x) { return logsumexp(x[0], {1}); }},
      {"logsumexp", {{2, 3}}, [](V x) { return logsumexp(x[0]); }},
      {"logsumexp",
       {{2, 3, 4}},
       [](V x) {
         return logsumexp(x[0], {0, 1}, true);
       }},
      {"var", {{3, 4}}, [](V x) { return var(x[0], {1}); }},
      {"var", {{2, 3}}, [](V x) { return var(x[0]); }},
      {"var", {{3, 4}}, [](V x) { return var(x[0], {0}, true, 0.0); }},
      {"unfold",
       {{2, 2, 4, 5}},
       [](V x) {
         return unfold(x[0], {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0}});
       }},
      {"unfold",
       {{1, 1, 5, 5}},
       [](V x) {
         return unfold(x[0], {.kernel = {2, 2}, .dilation = {2, 1}});
       }},
      {"fold",
       {{2, 6, 4}},
       [](V x) {
         return fold(x[0], {2, 2}, {.kernel = {1, 3}, .stride = {1, 1}, .padding = {0, 1}});
       }},
      {"fold",
       {{1, 4, 4}},
       [](V x) {
         return fold(x[0], {3, 3}, {.kernel = {2, 2}});
       }},
      {"conv2d",
       {{2, 3, 5, 4}, {4, 3, 3, 2}, {4}},
       [](V x) {
         return conv2d(x[0], x[1], x[2], Conv2dFuncOptions().padding({1, 0}));
       }},
      {"conv2d",
       {{1, 4, 6, 6}, {2, 2, 3, 3}},
       [](V x) {
         return conv2d(x[0], x[1], {},
                       Conv2dFuncOptions().stride({2, 1}).dilation({1, 2}).groups(2));
       }},
      {"conv2d",
       {{3, 2, 3, 3}, {6, 1, 2, 2}, {6}},
       [](V x) {
         return conv2d(x[0], x[1], x[2],
                       Conv2dFuncOptions().stride({1, 2}).padding(1).groups(2));
       }},
      {"conv2d",  // stride 1: shifted products, with dilation and groups
       {{2, 4, 5, 5}, {4, 2, 2, 3}, {4}},
       [](V x) {
         return conv2d(x[0], x[1], x[2],
                       Conv2dFuncOptions().padding({1, 2}).dilation({2, 1}).groups(2));
       }},
      {"conv2d",  // 1x1, stride 1, no padding: the image is its own columns
       {{2, 3, 3, 2}, {4, 3, 1, 1}, {4}},
       [](V x) { return conv2d(x[0], x[1], x[2]); }},
      {"conv1d",
       {{2, 4, 7}, {6, 2, 3}, {6}},
       [](V x) {
         return conv1d(x[0], x[1], x[2],
                       Conv1dFuncOptions().stride(2).padding(1).dilation(1).groups(2));
       }},
      {"max_pool2d",
       {{2, 2, 4, 5}},
       [](V x) {
         return max_pool2d(x[0], {2, 2});
       }},
      {"max_pool2d",
       {{1, 2, 5, 5}},
       [](V x) {
         return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1});
       }},
      {"avg_pool2d",
       {{2, 2, 4, 4}},
       [](V x) {
         return avg_pool2d(x[0], {2, 2});
       }},
      {"avg_pool2d",
       {{1, 2, 5, 4}},
       [](V x) {
         return avg_pool2d(x[0], {3, 2}, {1, 1}, {1, 1});
       }},
      {"pad",
       {{2, 3, 4}},
       [](V x) {
         return pad(x[0], {1, 2, 0, 1}, 0.5);
       }},
      {"conv_transpose2d",
       {{2, 3, 3, 4}, {3, 2, 3, 2}, {2}},
       [](V x) {
         return conv_transpose2d(
             x[0], x[1], x[2], ConvTranspose2dFuncOptions().stride(2).padding(1).output_padding(1));
       }},
      {"conv_transpose2d",
       {{1, 4, 3, 3}, {4, 1, 2, 2}},
       [](V x) {
         return conv_transpose2d(x[0], x[1], Tensor(),
                                 ConvTranspose2dFuncOptions().groups(2).dilation(2));
       }},
      {"interpolate",
       {{1, 2, 3, 4}},
       [](V x) {
         return interpolate(x[0],
                            InterpolateFuncOptions().size({5, 7}).mode(InterpolateMode::bilinear));
       }},
      {"interpolate",
       {{1, 2, 3, 3}},
       [](V x) {
         return interpolate(x[0], InterpolateFuncOptions()
                                      .scale_factor({2.0})
                                      .mode(InterpolateMode::bilinear)
                                      .align_corners(true));
       }},
      {"interpolate",
       {{2, 1, 3, 2}},
       [](V x) {
         return interpolate(x[0], InterpolateFuncOptions().scale_factor({2.0, 1.5}));
       }},
      {"max_pool1d", {{2, 2, 7}}, [](V x) { return max_pool1d(x[0], 3, 2, 1); }},
      {"avg_pool1d", {{2, 2, 7}}, [](V x) { return avg_pool1d(x[0], 3, 2, 1); }},
      {"avg_pool1d", {{2, 6}}, [](V x) { return avg_pool1d(x[0], 2); }},
      {"adaptive_avg_pool1d", {{2, 3, 7}}, [](V x) { return adaptive_avg_pool1d(x[0], 3); }},
      {"group_norm", {{2, 4, 3}, {4}, {4}}, [](V x) { return group_norm(x[0], 2, x[1], x[2]); }},
      {"group_norm", {{2, 3, 2, 2}}, [](V x) { return group_norm(x[0], 3); }},
      {"adaptive_avg_pool2d",
       {{2, 2, 5, 7}},
       [](V x) {
         return adaptive_avg_pool2d(x[0], {3, 2});
       }},
      {"adaptive_avg_pool2d",
       {{1, 3, 4, 4}},
       [](V x) {
         return adaptive_avg_pool2d(x[0], {1, 1});
       }},
      {"batch_norm",
       {{4, 3, 2, 2}, {3}, {3}},
       [](V x) { return batch_norm(x[0], {}, {}, x[1], x[2], true); }},
      {"batch_norm",  // rows of 12: the eight-wide sums of the backward and their tail
       {{3, 2, 3, 4}, {2}, {2}},
       [](V x) { return batch_norm(x[0], {}, {}, x[1], x[2], true); }},
      {"batch_norm",  // with relu: rows of 12, the vectors' tail
       {{3, 2, 3, 4}, {2}, {2}},
       [](V x) { return batch_norm(x[0], {}, {}, x[1], x[2], true, 0.1, 1e-5, Epilogue::relu); }},
      {"batch_norm",
       {{4, 3, 5}, {3}},
       [](V x) { return batch_norm(x[0], {}, {}, x[1], {}, true, 0.1, 1e-5, Epilogue::tanh); }},
      {"batch_norm",
       {{3, 2, 4}, {2}, {2}},
       [](V x) {
         const Tensor rm = tensor({0.5, -0.25}, {.dtype = kFloat64});
         const Tensor rv = tensor({1.5, 0.75}, {.dtype = kFloat64});
         return batch_norm(x[0], rm, rv, x[1], x[2], false, 0.1, 1e-5, Epilogue::sigmoid);
       }},
      {"batch_norm",
       {{5, 3}},
       [](V x) { return batch_norm(x[0], {}, {}, {}, {}, true, 0.1, 1e-3); }},
      {"batch_norm",
       {{3, 2, 4}, {2}, {2}},
       [](V x) {
         const Tensor rm = tensor({0.5, -0.25}, {.dtype = kFloat64});
         const Tensor rv = tensor({1.5, 0.75}, {.dtype = kFloat64});
         return batch_norm(x[0], rm, rv, x[1], x[2], false);
       }},
      {"dropout",
       {{3, 4}},
       [](V x) {
         Generator gen(5);  // the same mask at every call
         return dropout(x[0], 0.4, true, gen);
       }},
      {"embedding",
       {{5, 3}},
       [](V x) {
         return embedding(x[0], testing::i64({{1, 4, 1}, {0, 2, 4}}));
       }},
      {"embedding",  // row 2 is padding, sends no gradient: its positions are zeroed after, so
       {{5, 3}},     // that finite differences agree (the convention has its own test)
       [](V x) {
         const Tensor keep = from_vector(std::vector<double>{0, 1, 0, 1}, {4, 1}, {.dtype = kFloat64});
         return embedding(x[0], testing::i64({2, 3, 2, 0}), 2) * keep * sum(x[0]);
       }},
      {"layer_norm", {{3, 5}, {5}, {5}}, [](V x) { return layer_norm(x[0], {5}, x[1], x[2]); }},
      {"layer_norm",
       {{2, 3, 2, 2}},
       [](V x) {
         return layer_norm(x[0], {2, 2}, {}, {}, 1e-3);
       }},
      {"layer_norm",
       {{2, 2, 3}, {2, 3}},
       [](V x) {
         return layer_norm(x[0], {2, 3}, x[1]);
       }},
      {"masked_fill", {{3, 4}}, [](V x) { return masked_fill(x[0], mask_3x4(), 0.5); }},
      {"tril", {{2, 3, 4}}, [](V x) { return tril(x[0]); }},
      {"triu", {{4, 3}}, [](V x) { return triu(x[0], 1); }},
      {"cumsum", {{3, 4}}, [](V x) { return cumsum(x[0], 1); }},
      {"cumsum", {{3, 2, 2}}, [](V x) { return cumsum(x[0], 0) * x[0]; }},
      {"one_hot",
       {{3}},
       [](V x) {
         return one_hot(testing::i64({2, 0, 1}), 4, kFloat64) + sum(x[0].detach());
       },
       Domain::any,
       true},
      {"scaled_dot_product_attention",
       {{2, 3, 4}, {2, 3, 4}, {2, 3, 2}},
       [](V x) { return scaled_dot_product_attention(x[0], x[1], x[2], {.is_causal = true}); }},
      {"scaled_dot_product_attention",  // a mask broadcast over the batch, 2 queries, 3 keys
       {{2, 2, 4}, {2, 3, 4}, {2, 3, 3}},
       [](V x) {
         const Tensor mask = tensor({{1, 0, 1}, {1, 1, 0}}, {.dtype = kFloat64});
         return scaled_dot_product_attention(x[0], x[1], x[2], {.mask = mask, .scale = 0.7});
       }},
      {"scaled_dot_product_attention",  // leading axes that broadcast: (B, H, T, D) @ (1, H, S, D)
       {{2, 2, 3, 2}, {1, 2, 3, 2}, {1, 2, 3, 2}},
       [](V x) { return scaled_dot_product_attention(x[0], x[1], x[2], {.is_causal = true}); }},
      {"multi_head_attention",  // 2 heads of 2, causal
       {{2, 3, 12}},
       [](V x) { return multi_head_attention(x[0], 2, {.is_causal = true}); }},
      {"multi_head_attention",  // 1 head, dropout (the same mask at every call), a scale
       {{1, 4, 6}},
       [](V x) {
         Generator gen(3);
         return multi_head_attention(x[0], 1, {.dropout_p = 0.3, .generator = &gen, .scale = 0.8});
       }},
      {"gru_cell", {{2, 9}, {2, 9}, {2, 3}}, [](V x) { return gru_cell(x[0], x[1], x[2]); }},
      {"gru_sequence",
       {{3, 2, 6}, {2, 2}, {6, 2}, {6}},
       [](V x) { return gru_sequence(x[0], x[1], x[2], x[3]); }},
      {"gru_sequence",
       {{2, 3, 9}, {3, 3}, {9, 3}},
       [](V x) { return gru_sequence(x[0], x[1], x[2]); }},
      {"lstm_cell", {{2, 12}, {2, 12}, {2, 3}}, [](V x) { return lstm_cell(x[0], x[1], x[2]); }},
      {"lstm_sequence",
       {{3, 2, 8}, {2, 2}, {2, 2}, {8, 2}, {8}},
       [](V x) { return lstm_sequence(x[0], x[1], x[2], x[3], x[4]); }},
      {"lstm_sequence",
       {{2, 3, 12}, {3, 3}, {3, 3}, {12, 3}},
       [](V x) { return lstm_sequence(x[0], x[1], x[2], x[3]); }},
      {"sort", {{3, 4}}, [](V x) { return sort(x[0]).values; }},
      {"sort", {{3, 4, 2}}, [](V x) { return sort(x[0], 1, true).values; }},
      {"topk", {{3, 5}}, [](V x) { return topk(x[0], 2).values; }},
      {"topk", {{4, 3}}, [](V x) { return topk(x[0], 3, 0, false).values; }},
      {"flip", {{3, 4}}, [](V x) { return flip(x[0], {0}); }},
      {"flip",
       {{2, 3, 4}},
       [](V x) {
         return flip(x[0], {-1, 0});
       }},
      {"softmax", {{3, 4}}, [](V x) { return softmax(x[0]); }},
      {"softmax", {{3, 4}}, [](V x) { return softmax(x[0], 0); }},
      {"softmax", {{2, 3, 4}}, [](V x) { return softmax(x[0], 1); }},
      {"log_softmax", {{3, 4}}, [](V x) { return log_softmax(x[0]); }},
      {"log_softmax", {{2, 3, 4}}, [](V x) { return log_softmax(x[0], 1); }},
      {"softmax_cross_entropy",
       {{3, 4}},
       [](V x) {
         return softmax_cross_entropy(x[0], testing::i64({2, 0, 3}));
       }},
      {"softmax_cross_entropy",
       {{3, 4}},
       [](V x) {
         return softmax_cross_entropy(x[0], testing::i64({1, 1, 0}),
                                      {.reduction = Reduction::sum, .label_smoothing = 0.2});
       }},
      {"softmax_cross_entropy",
       {{3, 4}},
       [](V x) {
         const Tensor w = tensor({0.5, 2.0, 1.0, 0.25}, {.dtype = kFloat64});
         return softmax_cross_entropy(x[0], testing::i64({3, 0, 1}),
                                      {.reduction = Reduction::none, .weight = w});
       }},
      {"softmax_cross_entropy",  // sample 1 is padding: no loss, no gradient, not in the mean
       {{3, 4}},
       [](V x) {
         return softmax_cross_entropy(x[0], testing::i64({2, -1, 3}), {.ignore_index = -1});
       }},
  };
}

Tensor draw(const Shape& shape, Domain domain, Generator& gen) {
  Tensor t = uniform(shape, 0.25, 2.0, {.dtype = kFloat64}, gen);
  auto& a = t.mutable_value<double>();
  Tensor coin = rand(shape, {.dtype = kFloat64}, gen);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double u = coin.value<double>().data()[i];
    if (domain == Domain::any) a.data()[i] = 4 * u - 2;
    if (domain == Domain::positive) a.data()[i] = 0.5 + 1.5 * u;
    if (domain == Domain::away && u < 0.5) a.data()[i] = -a.data()[i];
  }
  return t.requires_grad_(true);
}

std::string describe(const OpCase& c) {
  std::ostringstream os;
  os << c.op << " on";
  for (const Shape& s : c.shapes) os << " " << shape_str(s);
  return os.str();
}

}  // namespace

TEST_CASE("every op's gradient and second derivative match finite differences") {
  const std::vector<OpCase> cases = table();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    Generator gen(1000 + i);
    std::vector<Tensor> inputs;
    for (const Shape& s : c.shapes) inputs.push_back(draw(s, c.domain, gen));
    INFO(describe(c));
    if (c.constant) {
      CHECK_FALSE(c.f(inputs).requires_grad());
      continue;
    }
    CHECK_GRADCHECK(gradcheck(c.f, inputs));
    CHECK_GRADCHECK(gradgradcheck(c.f, inputs));
    CHECK_GRADCHECK(jvpcheck(c.f, inputs));
  }
}

// A rule must also hold when only some inputs carry tangents (the others count as zeros): for every
// op of several inputs, one input at a time has a tangent.
TEST_CASE("every op's tangent from one input's tangent alone") {
  const std::vector<OpCase> cases = table();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    if (c.constant || c.shapes.size() < 2) continue;
    for (std::size_t k = 0; k < c.shapes.size(); ++k) {
      Generator gen(5000 + i);
      std::vector<Tensor> inputs;
      for (const Shape& s : c.shapes)
        inputs.push_back(draw(s, c.domain, gen).requires_grad_(false));
      inputs[k].requires_grad_(true);
      INFO(describe(c) << ", the tangent of input " << k);
      CHECK_GRADCHECK(jvpcheck(c.f, inputs));
    }
  }
}

// Forward mode: every op of the table gives its tangent by a rule of its own (Node::jvp), except
// the ops listed here (none), whose JVP would be their backward transposed (forward_ad.hpp). A
// new primitive without a rule lands in the log and fails this test until it has one.
TEST_CASE("forward mode: every op has a JVP rule of its own but the listed ones") {
  const std::set<std::string> transposed = {};
  std::set<std::string> log;
  const detail::TransposedJvpLog logged(log);
  const std::vector<OpCase> cases = table();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    if (c.constant) continue;
    Generator gen(3000 + i);
    std::vector<Tensor> inputs, directions;
    for (const Shape& s : c.shapes) {
      inputs.push_back(draw(s, c.domain, gen));
      directions.push_back(randn(s, {.dtype = kFloat64}, gen));
    }
    jvp([&](const std::vector<Tensor>& x) { return std::vector<Tensor>{c.f(x)}; }, inputs,
        directions);
  }
  std::string names;
  for (const std::string& n : log) names += n + " ";
  INFO("transposed: " << names);
  CHECK(log == transposed);
}

// Forward over reverse: hvp (the tangent of the gradient) against vhp (reverse over reverse) for
// every op of the table, on <op(x), w> for a fixed random w: the backward of each op must carry
// the tangents of what it saved.
TEST_CASE("forward over reverse: hvp equals vhp through every op") {
  const std::vector<OpCase> cases = table();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    if (c.constant || c.op == "dropout" || c.op == "multinomial") continue;
    Generator gen(7000 + i);
    std::vector<Tensor> inputs, directions;
    for (const Shape& s : c.shapes) {
      inputs.push_back(draw(s, c.domain, gen));
      directions.push_back(randn(s, {.dtype = kFloat64}, gen));
    }
    Tensor w;
    {
      const NoGradGuard no_grad;
      w = randn(c.f(inputs).shape(), {.dtype = kFloat64}, gen);
    }
    const TensorsFunction f = [&](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{sum(mul(c.f(x), w))};
    };
    INFO(describe(c));
    const std::vector<Tensor> hv = hvp(f, inputs, directions).second;
    const std::vector<Tensor> vh = vhp(f, inputs, directions).second;
    for (std::size_t k = 0; k < hv.size(); ++k)
      CHECK(testing::max_difference(hv[k], vh[k]) < 1e-10);
  }
}

namespace {
// Inputs as views of other tensors, as PyTorch's OpInfo samples: each kind says the shape of the
// base tensor drawn for an input of `shape`, and the view of it that the op is given.
struct ViewKind {
  const char* name;
  std::function<Shape(const Shape&)> base_shape;
  std::function<Tensor(const Tensor& base, const Shape& shape)> view;
  // Whether the view of an input of this shape differs from a plain tensor's layout.
  std::function<bool(const Shape&)> differs;
  // Whether values equal the contiguous inputs' exactly, or to rounding (a sum may add in
  // another order when it walks a stride-0 axis).
  bool exact = true;
};

// Strided: rank >= 2, the transpose of a tensor with the last two axes swapped; rank 1, every
// other entry of a tensor twice as long; rank 0 (or empty), the base.
const ViewKind kStrided{
    "strided views (transposed, stepped)",
    [](const Shape& shape) {
      Shape base = shape;
      if (shape.size() >= 2)
        std::swap(base[shape.size() - 2], base[shape.size() - 1]);
      else if (shape.size() == 1)
        base[0] *= 2;
      return base;
    },
    [](const Tensor& base, const Shape& shape) {
      if (shape.size() >= 2) return transpose(base);
      if (shape.size() == 1)
        return slice(base, 0, 0, static_cast<std::ptrdiff_t>(base.size(0)), 2);
      return base;
    },
    [](const Shape& s) {
      return s.size() >= 2 ? s[s.size() - 1] > 1 && s[s.size() - 2] > 1 : s.size() == 1 && s[0] > 1;
    }};

// The first axis longer than 1, or none.
std::optional<std::size_t> first_long_axis(const Shape& shape) {
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (shape[d] > 1) return d;
  return std::nullopt;
}

// Expanded: the first axis longer than 1 drawn with length 1 and expanded (stride 0), so every
// entry along it is one element of the base (ties among them are one entry: any convention
// gives the base the same gradient).
const ViewKind kExpanded{
    "expanded views (stride 0)",
    [](const Shape& shape) {
      Shape base = shape;
      if (const auto d = first_long_axis(shape)) base[*d] = 1;
      return base;
    },
    [](const Tensor& base, const Shape& shape) {
      return first_long_axis(shape) ? expand(base, detail::spec(shape)) : base;
    },
    [](const Shape& s) { return first_long_axis(s).has_value(); },
    false};

// Every op of the table on inputs of one kind of view: the values the contiguous inputs give,
// and gradcheck and gradgradcheck through the views to their bases.
void check_table_on(const ViewKind& kind, std::uint64_t seed) {
  const std::vector<OpCase> cases = table();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    Generator gen(seed + i);
    std::vector<Tensor> bases;
    for (const Shape& s : c.shapes) bases.push_back(draw(kind.base_shape(s), c.domain, gen));
    const std::vector<Shape> shapes = c.shapes;
    const TensorFn f = c.f;
    const auto view = kind.view;
    const TensorFn on_views = [f, shapes, view](const std::vector<Tensor>& in) {
      std::vector<Tensor> views;
      for (std::size_t k = 0; k < in.size(); ++k) views.push_back(view(in[k], shapes[k]));
      return f(views);
    };
    INFO(std::string(kind.name) << ": " << describe(c));
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      const Tensor v = view(bases[k], shapes[k]);
      REQUIRE(v.shape() == shapes[k]);
      if (kind.differs(shapes[k])) CHECK_FALSE(v.is_contiguous());
    }
    if (c.op == "view") {  // never a copy: a transposed or expanded input is refused
      CHECK_THROWS_AS(on_views(bases), ShapeError);
      continue;
    }
    if (c.op == "as_strided" && &kind == &kExpanded) {  // positions shared: refused, by design
      CHECK_THROWS_AS(on_views(bases), ValueError);
      continue;
    }
    // The same values as the contiguous inputs would give (comparisons, casts and the other
    // ops without a gradient included).
    std::vector<Tensor> copies;
    for (std::size_t k = 0; k < shapes.size(); ++k)
      copies.push_back(view(bases[k], shapes[k]).contiguous().detach());
    // (as_strided reads the storage, whose layout is what differs; dropout and multinomial
    // draw anew.)
    if (c.op != "dropout" && c.op != "multinomial" && c.op != "as_strided") {
      const std::vector<double> got = testing::flat(on_views(bases).to(kFloat64));
      const std::vector<double> want = testing::flat(f(copies).to(kFloat64));
      if (kind.exact) {
        CHECK(got == want);
      } else {
        REQUIRE(got.size() == want.size());
        for (std::size_t e = 0; e < got.size(); ++e)  // float64 inputs: a few ulps
          CHECK(std::abs(got[e] - want[e]) <= 1e-12 * std::max(1.0, std::abs(want[e])));
      }
    }
    if (c.constant) {
      CHECK_FALSE(on_views(bases).requires_grad());
      continue;
    }
    CHECK_GRADCHECK(gradcheck(on_views, bases));
    CHECK_GRADCHECK(gradgradcheck(on_views, bases));
    CHECK_GRADCHECK(jvpcheck(on_views, bases));
  }
}
}  // namespace

TEST_CASE("every op of the table, again on strided views of its inputs (transposed, stepped)") {
  check_table_on(kStrided, 5000);
}

TEST_CASE("every op of the table, again on expanded views of its inputs (stride 0)") {
  check_table_on(kExpanded, 9000);
}

TEST_CASE("the table names every op declared in autograd/ops.hpp") {
  std::ifstream header(XGRAD_SOURCE_DIR "/autograd/ops.hpp");
  REQUIRE(header.good());
  std::stringstream text;
  text << header.rdbuf();
  const std::string source = text.str();
  std::set<std::string> declared;
  const std::regex declaration(R"(\n(?:Tensor|ValuesIndices) (\w+)\()");
  for (std::sregex_iterator it(source.begin(), source.end(), declaration), end; it != end; ++it)
    declared.insert((*it)[1]);
  CHECK(declared.size() > 50);
  std::set<std::string> tested;
  for (const OpCase& c : table()) tested.insert(c.op);
  for (const std::string& op : declared) {
    INFO("op declared in autograd/ops.hpp but missing from the gradient-check table: " << op);
    CHECK(tested.count(op) == 1);
  }
  for (const std::string& op : tested) {
    INFO("the table names an op that autograd/ops.hpp does not declare: " << op);
    CHECK(declared.count(op) == 1);
  }
}

// ---- edge values ------------------------------------------------------------------------------

namespace {
Tensor grad_of(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  const Tensor leaf = x.detach().requires_grad_(true);
  sum(f(leaf)).backward();
  return leaf.grad();
}
}  // namespace

TEST_CASE("kinks: relu and abs have gradient 0 at 0, sqrt has +inf") {
  const Tensor zero = testing::f64({0.0, 1.0, -1.0});
  CHECK(testing::flat(grad_of([](const Tensor& x) { return relu(x); }, zero)) ==
        std::vector<double>{0.0, 1.0, 0.0});
  CHECK(testing::flat(grad_of([](const Tensor& x) { return abs(x); }, zero)) ==
        std::vector<double>{0.0, 1.0, -1.0});
  const auto g =
      testing::flat(grad_of([](const Tensor& x) { return sqrt(x); }, testing::f64({0.0})));
  CHECK(g[0] == std::numeric_limits<double>::infinity());
}

TEST_CASE("max and min send the gradient to the first of tied entries") {
  const Tensor x = testing::f64({{1.0, 3.0, 3.0}, {2.0, 2.0, 0.0}});
  CHECK(testing::flat(grad_of([](const Tensor& t) { return max(t, {1}); }, x)) ==
        std::vector<double>{0, 1, 0, 1, 0, 0});
  CHECK(testing::flat(grad_of([](const Tensor& t) { return max(t); }, x)) ==
        std::vector<double>{0, 1, 0, 0, 0, 0});
  CHECK(testing::flat(grad_of([](const Tensor& t) { return min(t, {0}); }, x)) ==
        std::vector<double>{1, 0, 0, 0, 1, 1});
  CHECK(testing::ints(argmax(x, 1)) == testing::I64s{1, 0});
  CHECK(testing::ints(argmax(x, 0)) == testing::I64s{1, 0, 0});
}

TEST_CASE("large magnitudes: exp, sigmoid, softplus, tanh stay finite where the math is") {
  const auto gexp =
      testing::flat(grad_of([](const Tensor& x) { return exp(x); }, testing::f64({700.0})));
  CHECK(gexp[0] == doctest::Approx(std::exp(700.0)).epsilon(1e-14));
  for (double v : {-1000.0, -50.0, 50.0, 1000.0}) {
    const Tensor x = testing::f64({v});
    const double s = sigmoid(x).item();
    CHECK(s == doctest::Approx(v > 0 ? 1.0 : 0.0).epsilon(1e-15));
    CHECK(std::isfinite(testing::flat(grad_of([](const Tensor& t) { return sigmoid(t); }, x))[0]));
    CHECK(softplus(x).item() == doctest::Approx(v > 0 ? v : 0.0));
    CHECK(std::isfinite(testing::flat(grad_of([](const Tensor& t) { return softplus(t); }, x))[0]));
    CHECK(std::isfinite(testing::flat(grad_of([](const Tensor& t) { return tanh(t); }, x))[0]));
    CHECK(std::isfinite(testing::flat(grad_of([](const Tensor& t) { return elu(t); }, x))[0]));
  }
  // float32 too: exp(-v) would overflow for v = -1000 if sigmoid were computed naively.
  CHECK(sigmoid(tensor({-1000.0f})).item() == 0.0);
}

TEST_CASE("erfc keeps its relative digits where 1 - erf(x) is 0, in both dtypes; its ends") {
  // The reference: std::erfc in long double. From x = 3.9 in float and 5.9 in double on,
  // 1 - erf(x) rounds to 0.
  for (Dtype dtype : {kFloat64, kFloat32}) {
    INFO(dtype_name(dtype));
    const Tensor x = dtype == kFloat64 ? testing::f64({-3, 0.5, 4, 6, 12, 26})
                                       : testing::f64({-3, 0.5, 4, 6, 9});
    const std::vector<double> X = testing::flat(x);
    const Tensor leaf = cast(x, dtype).requires_grad_(true);
    const Tensor z = erfc(leaf);
    sum(z).backward();
    const std::vector<double> v = testing::flat(cast(z, kFloat64)),
                              d = testing::flat(cast(leaf.grad(), kFloat64)),
                              e = testing::flat(cast(erf(cast(x, dtype)), kFloat64));
    const double ulp = dtype == kFloat64 ? 0x1p-52 : 0x1p-23;
    for (std::size_t i = 0; i < X.size(); ++i) {
      const long double xl = X[i];
      const double want_v = double(std::erfc(xl));
      const double want_d = double(-2 / std::sqrt(std::acos(-1.0L)) * std::exp(-xl * xl));
      INFO("x = " << X[i] << ": " << v[i] << " against " << want_v);
      // the argument's rounding carried through e^(-x^2): 2 x^2 ulp
      const double tol = (4 + 2 * X[i] * X[i]) * ulp;
      CHECK(std::abs(v[i] - want_v) <= tol * want_v);
      CHECK(std::abs(d[i] - want_d) <= tol * std::abs(want_d));
      if (X[i] >= (dtype == kFloat64 ? 6 : 4)) CHECK(1.0 - e[i] == 0.0);  // what erfc is for
    }
  }
  // The ends: erfc(-inf) = 2, erfc(inf) = 0, the derivative 0 at both; NaN stays NaN.
  const Tensor ends = testing::f64({-INFINITY, INFINITY, NAN}, true);
  const Tensor z = erfc(ends);
  sum(z).backward();
  const std::vector<double> v = testing::flat(z), d = testing::flat(ends.grad());
  CHECK(v[0] == 2.0);
  CHECK(v[1] == 0.0);
  CHECK(std::isnan(v[2]));
  CHECK(d[0] == 0.0);
  CHECK(d[1] == 0.0);
  CHECK(std::isnan(d[2]));
}

TEST_CASE("softmax and log_softmax are stable for logits of +-1e4") {
  const Tensor x = testing::f64({{1e4, -1e4, 0.0}, {1e4, 1e4 - 1, -1e4}}, true);
  const auto p = testing::flat(softmax(x));
  CHECK(p[0] == doctest::Approx(1.0));
  CHECK(p[3] + p[4] == doctest::Approx(1.0));
  CHECK(p[4] == doctest::Approx(std::exp(-1.0) / (1 + std::exp(-1.0))));
  const auto lp = testing::flat(log_softmax(x));
  CHECK(lp[1] == doctest::Approx(-2e4));
  const TensorFn f = [](const std::vector<Tensor>& in) { return log_softmax(in[0]); };
  CHECK_GRADCHECK(gradcheck(f, {x}));
  const TensorFn g = [](const std::vector<Tensor>& in) { return softmax(in[0]); };
  CHECK_GRADCHECK(gradcheck(g, {x}));
}

TEST_CASE("softmax rows holding -inf: those entries get 0, the rest is exact and differentiable") {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor masked = full({2, 1}, -inf, {.dtype = kFloat64});
  const Tensor x = testing::f64({{0.5, -1.0}, {2.0, 0.25}}, true);
  const auto p = testing::flat(softmax(concat({x, masked}, 1)));
  CHECK(p[2] == 0.0);
  CHECK(p[0] == doctest::Approx(1 / (1 + std::exp(-1.5))));
  const auto lp = testing::flat(log_softmax(concat({x, masked}, 1)));
  CHECK(lp[2] == -inf);
  CHECK(std::isfinite(lp[0]));
  // The -inf column is a constant: the check differentiates with respect to the finite entries.
  const TensorFn sm = [&](const std::vector<Tensor>& in) {
    return softmax(concat({in[0], masked}, 1));
  };
  const TensorFn lsm = [&](const std::vector<Tensor>& in) {  // the finite outputs
    return slice(log_softmax(concat({in[0], masked}, 1)), 1, 0, 2);
  };
  CHECK_GRADCHECK(gradcheck(sm, {x}));
  CHECK_GRADCHECK(gradcheck(lsm, {x}));
  // logsumexp of a row that is all -inf is -inf, not NaN.
  CHECK(logsumexp(testing::f64({-inf, -inf}), {0}).item() == -inf);
  CHECK(logsumexp(testing::f64({1e4, 1e4}), {0}).item() == doctest::Approx(1e4 + std::log(2.0)));
}

TEST_CASE("cast: float32 forward, gradient converted back to the input's dtype") {
  const Tensor x = testing::f64({1.0, 2.0}, true);
  const Tensor y = cast(x, kFloat32);
  CHECK(y.dtype() == kFloat32);
  sum(y * 3.0).backward();
  CHECK(x.grad().dtype() == kFloat64);
  CHECK(testing::flat(x.grad()) == std::vector<double>{3.0, 3.0});
}

TEST_CASE("reduction values: mean, var (corrected and not), logsumexp, over all axes and some") {
  const Tensor x = testing::f64({{1.0, 2.0}, {3.0, 4.0}});
  CHECK(mean(x).item() == 2.5);
  CHECK(var(x).item() == doctest::Approx(5.0 / 3.0));
  CHECK(var(x, 0.0).item() == doctest::Approx(1.25));
  CHECK(testing::flat(var(x, {0}, false, 0.0)) == std::vector<double>{1.0, 1.0});
  CHECK(logsumexp(x).item() ==
        doctest::Approx(std::log(std::exp(1) + std::exp(2) + std::exp(3) + std::exp(4))));
  CHECK(testing::flat(mean(x, {1}, true)) == std::vector<double>{1.5, 3.5});
  CHECK(mean(x, {1}, true).shape() == Shape{2, 1});
  CHECK_THROWS_AS(var(testing::f64({1.0})), ValueError);
}

namespace {
// d f / d x at the entries of x, by the tape (x requires grad; f sums to one number).
std::vector<double> derivative(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  return testing::flat(grad({sum(f(x))}, {x})[0]);
}
}  // namespace

TEST_CASE("conventions: maximum and minimum split the gradient on ties, and propagate NaN") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor a = testing::f64({1.0, 2.0, 3.0}, true), b = testing::f64({1.0, 5.0, 0.0}, true);
  for (const auto& op : {maximum, minimum}) {
    const std::vector<Tensor> g = grad({sum(op(a, b))}, {a, b});
    const bool is_max = op(a, b).value<double>()(1) == 5.0;
    CHECK(testing::flat(g[0]) == std::vector<double>{0.5, is_max ? 0.0 : 1.0, is_max ? 1.0 : 0.0});
    CHECK(testing::flat(g[1]) == std::vector<double>{0.5, is_max ? 1.0 : 0.0, is_max ? 0.0 : 1.0});
    const Tensor with_nan = testing::f64({nan, 1.0}), plain = testing::f64({1.0, nan});
    for (double v : testing::flat(op(with_nan, plain))) CHECK(std::isnan(v));
  }
}

TEST_CASE("conventions: NaN propagates through relu, elu and max, forward and backward") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = testing::f64({nan, -1.0, 2.0}, true);
  CHECK(std::isnan(testing::flat(relu(x))[0]));
  CHECK(std::isnan(testing::flat(elu(x))[0]));
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(derivative([](const Tensor& t) { return elu(t) * elu(t); }, x)[0]));
  // elu'(NaN) itself is NaN (PyTorch's is 1: docs/ops.md, where xgrad differs).
  CHECK(std::isnan(derivative([](const Tensor& t) { return elu(t); }, x)[0]));
  CHECK(testing::flat(relu(x))[1] == 0.0);
}

TEST_CASE("conventions: derivatives at kinks (relu, abs, elu) and of pow with exponent 0") {
  const Tensor zero = testing::f64({0.0}, true);
  CHECK(derivative([](const Tensor& t) { return relu(t); }, zero)[0] == 0.0);
  CHECK(derivative([](const Tensor& t) { return abs(t); }, zero)[0] == 0.0);
  CHECK(derivative([](const Tensor& t) { return elu(t, 0.7); }, zero)[0] == doctest::Approx(0.7));
  // elu''(0) = alpha: the negative branch, as the first derivative takes (PyTorch's double
  // backward gives 0 there: a divergence listed in docs/ops.md).
  const Tensor first = grad({sum(elu(zero, 0.7))}, {zero}, {}, std::nullopt, true)[0];
  CHECK(grad({sum(first)}, {zero})[0].item() == doctest::Approx(0.7));
  CHECK(derivative([](const Tensor& t) { return pow(t, 0.0); }, zero)[0] == 0.0);
  const Tensor b = testing::f64({0.0}, true);
  const std::vector<Tensor> g = grad({sum(pow(zero, b))}, {zero, b});
  CHECK(g[0].item() == 0.0);
  CHECK(g[1].item() == 0.0);
}

TEST_CASE("conventions: pow with a scalar exponent at 0, negative and NaN bases, as PyTorch") {
  // Values, first and second derivatives at x = 0, -1, NaN, 2, recorded from PyTorch 1.13.1
  // (torch.pow(x, e), torch.autograd.grad twice, float64).
  const double nan = std::numeric_limits<double>::quiet_NaN(),
               inf = std::numeric_limits<double>::infinity();
  struct Row {
    double e;
    std::vector<double> y, g, gg;
  };
  const std::vector<Row> rows = {
      {0.0, {1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}},  // PyTorch: no second derivative (0)
      {0.5, {0, nan, nan, std::sqrt(2.0)}, {inf, nan, nan, 0.35355339059327373},
       {-inf, nan, nan, -0.08838834764831845}},
      {1.0, {0, -1, nan, 2}, {1, 1, 1, 1}, {0, 0, 0, 0}},
      {2.0, {0, 1, nan, 4}, {0, -2, nan, 4}, {2, 2, 2, 2}},
      {3.0, {0, -1, nan, 8}, {0, 3, nan, 12}, {0, -6, nan, 12}},
      {-1.0, {inf, -1, nan, 0.5}, {-inf, -1, nan, -0.25}, {inf, -2, nan, 0.25}},
      {2.5, {0, nan, nan, 5.656854249492381}, {0, nan, nan, 7.0710678118654755},
       {0, nan, nan, 5.303300858899107}},
      {-0.5, {inf, nan, nan, 0.7071067811865475}, {-inf, nan, nan, -0.1767766952966369},
       {inf, nan, nan, 0.13258252147247768}},
  };
  const auto same = [](const std::vector<double>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("entry " << i << ": " << got[i] << " against " << want[i]);
      if (std::isnan(want[i]))
        CHECK(std::isnan(got[i]));
      else if (std::isinf(want[i]))
        CHECK(got[i] == want[i]);
      else
        CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
    }
  };
  for (const Row& r : rows) {
    INFO("exponent " << r.e);
    const Tensor x = testing::f64({0.0, -1.0, nan, 2.0}, true);
    const Tensor y = pow(x, r.e);
    const Tensor g = grad({sum(y)}, {x}, {}, std::nullopt, true)[0];
    same(testing::flat(y), r.y);
    same(testing::flat(g), r.g);
    same(testing::flat(grad({sum(g)}, {x})[0]), r.gg);
  }
}

TEST_CASE("conventions: max and min reductions send a tie's gradient to one position") {
  const Tensor x = testing::f64({{1.0, 3.0}, {3.0, 0.0}}, true);
  CHECK(derivative([](const Tensor& t) { return max(t); }, x) ==
        std::vector<double>{0.0, 1.0, 0.0, 0.0});
  CHECK(derivative(
            [](const Tensor& t) {
              return max(t, {0, 1});
            },
            x) == std::vector<double>{0.0, 1.0, 0.0, 0.0});
  CHECK(derivative([](const Tensor& t) { return min(t, {1}); }, x) ==
        std::vector<double>{1.0, 0.0, 0.0, 1.0});
}

TEST_CASE("conventions: an explicit axis on a 0-d tensor is refused, saying what to do") {
  const Tensor s = scalar(2.0, {.dtype = kFloat64});
  CHECK_THROWS_WITH_AS(sum(s, {0}), doctest::Contains("a 0-d tensor has no axis"), IndexError);
  CHECK_THROWS_WITH_AS(softmax(s, -1), doctest::Contains("softmax"), IndexError);
  CHECK(sum(reshape(s, {1}), {0}).item() == 2.0);
}

TEST_CASE("creation refuses shapes whose size overflows") {
  CHECK_THROWS_WITH_AS(zeros({std::size_t{1} << 32, std::size_t{1} << 32}),
                       doctest::Contains("more elements than any tensor can hold"), ValueError);
  CHECK_THROWS_AS(arange(0, 1e30), ValueError);
  CHECK_THROWS_AS(randn({std::size_t{1} << 40, std::size_t{1} << 40}), ValueError);
}
