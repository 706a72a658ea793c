#include "autograd/detail/anomaly.hpp"

#include <cxxabi.h>
#include <execinfo.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "autograd/node.hpp"

namespace xgrad::detail {

namespace {
// "binary(_ZN5xgrad3logERKNS_6TensorE+0x3a) [0x...]" -> "xgrad::log(xgrad::Tensor const&)".
std::string frame_name(const char* symbol) {
  const std::string s = symbol;
  const std::size_t open = s.find('('), plus = s.find('+', open);
  if (open == std::string::npos || plus == std::string::npos || plus == open + 1) return s;
  const std::string mangled = s.substr(open + 1, plus - open - 1);
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 ? name.get() : mangled;
}
}  // namespace

std::string capture_stack() {
  void* frames[24];
  const int n = backtrace(frames, 24);
  std::unique_ptr<char*, void (*)(void*)> symbols(backtrace_symbols(frames, n), std::free);
  std::string out;
  for (int i = 2; i < n && symbols; ++i) {  // skip this function and attach()
    const std::string name = frame_name(symbols.get()[i]);
    if (name.rfind("xgrad::record", 0) == 0) continue;
    out += "    " + name + "\n";
    if (name.rfind("main", 0) == 0) break;
  }
  return out;
}

std::ptrdiff_t first_non_finite(const Tensor& t) {
  return std::visit(
      [](const auto& a) -> std::ptrdiff_t {
        for (std::size_t i = 0; i < a.size(); ++i)
          if (!std::isfinite(a.data()[i])) return static_cast<std::ptrdiff_t>(i);
        return -1;
      },
      t.storage());
}

void check_output(const Node& node, const Tensor& out, std::span<const Tensor* const> inputs) {
  const std::ptrdiff_t at = first_non_finite(out);
  if (at < 0) return;
  bool inputs_finite = true;
  for (const Tensor* t : inputs) inputs_finite = inputs_finite && first_non_finite(*t) < 0;
  const double value =
      std::visit([&](const auto& a) { return static_cast<double>(a.data()[at]); }, out.storage());
  throw AnomalyError("anomaly: " + std::string(node.name()) + " produced " + std::to_string(value) +
                     " at " + index_str(static_cast<std::size_t>(at), out.shape()) +
                     " of its output of shape " + shape_str(out.shape()) +
                     (inputs_finite ? " from finite inputs" : " (an input was not finite)") +
                     "; the op was created at:\n" + node.created_at());
}

void check_gradient(const Node& node, std::size_t input, const Tensor& grad) {
  const std::ptrdiff_t at = first_non_finite(grad);
  if (at < 0) return;
  const double value =
      std::visit([&](const auto& a) { return static_cast<double>(a.data()[at]); }, grad.storage());
  throw AnomalyError("anomaly: the backward of " + std::string(node.name()) + " produced " +
                     std::to_string(value) + " at " +
                     index_str(static_cast<std::size_t>(at), grad.shape()) +
                     " of the gradient of input " + std::to_string(input) +
                     "; the op was created at:\n" + node.created_at());
}

}  // namespace xgrad::detail
