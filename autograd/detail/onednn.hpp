#pragma once
// What every oneDNN call of xgrad (the matmul primitives of blas.cpp, the convolutions of
// conv_onednn.cpp) shares: the engine and the stream of the calling thread (one of each per
// thread, not one per file), the cache of a thread's primitives (cached_plan), and the turning of
// a oneDNN failure into xgrad's error (onednn_guarded). Only for files compiled with XGRAD_ONEDNN.

#include <cstddef>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>

#include "autograd/blas.hpp"
#include "autograd/error.hpp"

namespace xgrad::detail {

// A thread's plans of one kind (blas.cpp's matmuls, conv_onednn.cpp's convolutions), by key and
// thread count: oneDNN plans a primitive for the threads there are when it is made. At most
// kOnednnPlans of them: past that the map starts over, so that a program whose shapes never repeat
// does not grow it without end.
constexpr std::size_t kOnednnPlans = 64;
template <class Key, class Plan>
using OnednnPlans = std::map<std::tuple<Key, int>, Plan>;

// The plan of `key` under the current thread count, made by make() the first time.
template <class Key, class Plan, class Make>
const Plan& cached_plan(OnednnPlans<Key, Plan>& plans, const Key& key, Make make) {
  const std::tuple<Key, int> at{key, num_threads()};
  auto found = plans.find(at);
  if (found == plans.end()) {
    if (plans.size() >= kOnednnPlans) plans.clear();
    found = plans.emplace(at, make()).first;
  }
  return found->second;
}

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // the calling thread's

// Runs f; a oneDNN failure inside it comes out as xgrad's error, `context` (the operation, what
// failed, the shape) before oneDNN's own message.
template <class F>
void onednn_guarded(const std::string& context, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace xgrad::detail
