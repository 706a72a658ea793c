#include "nn/init.hpp"

#include <cmath>

namespace xgrad::nn::init {

namespace {
// Overwrites t's elements with draw(), keeping its dtype.
template <class F>
Tensor fill(const Tensor& t, F&& draw) {
  if (t.dtype() == Dtype::float32)
    for (float& v : t.mutable_value<float>()) v = static_cast<float>(draw());
  else
    for (double& v : t.mutable_value<double>()) v = draw();
  return t;
}

std::pair<double, double> fans(const Tensor& t, const char* op) {
  if (t.dim() < 2)
    throw ShapeError(std::string(op) +
                     ": needs a weight of rank >= 2 to know its fans, got shape " +
                     shape_str(t.shape()));
  double receptive = 1;
  for (std::size_t d = 2; d < t.dim(); ++d) receptive *= static_cast<double>(t.size(d));
  return {static_cast<double>(t.size(1)) * receptive, static_cast<double>(t.size(0)) * receptive};
}
}  // namespace

Tensor uniform_(const Tensor& t, double low, double high, Generator& gen) {
  std::uniform_real_distribution<double> dist(low, high);
  return fill(t, [&] { return dist(gen.engine()); });
}

Tensor normal_(const Tensor& t, double mean, double std, Generator& gen) {
  std::normal_distribution<double> dist(mean, std);
  return fill(t, [&] { return dist(gen.engine()); });
}

Tensor constant_(const Tensor& t, double value) {
  return fill(t, [&] { return value; });
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }

Tensor xavier_uniform_(const Tensor& t, double gain, Generator& gen) {
  const auto [in, out] = fans(t, "xavier_uniform_");
  const double bound = gain * std::sqrt(6.0 / (in + out));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator& gen) {
  const auto [in, out] = fans(t, "xavier_normal_");
  return normal_(t, 0.0, gain * std::sqrt(2.0 / (in + out)), gen);
}

Tensor kaiming_uniform_(const Tensor& t, Generator& gen) {
  const double bound = std::sqrt(6.0 / fans(t, "kaiming_uniform_").first);
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, Generator& gen) {
  return normal_(t, 0.0, std::sqrt(2.0 / fans(t, "kaiming_normal_").first), gen);
}

}  // namespace xgrad::nn::init
