#include "examples/walkthrough/network_spec.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace walkthrough {

using namespace xgrad;

namespace {

using nlohmann::json;

double number(const json& v, const std::string& where) {
  if (!v.is_number())
    throw ValueError(where + ": expected a number, got " + std::string(v.type_name()));
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw ValueError(where + ": expected a finite number");
  return d;
}

xt::xarray<double> vector_of(const json& v, const std::string& where) {
  if (!v.is_array() || v.empty())
    throw ValueError(where + ": expected a non-empty array of numbers");
  xt::xarray<double> out = xt::xarray<double>::from_shape({v.size()});
  for (std::size_t i = 0; i < v.size(); ++i)
    out(i) = number(v[i], where + "[" + std::to_string(i) + "]");
  return out;
}

xt::xarray<double> matrix_of(const json& v, const std::string& where) {
  if (!v.is_array() || v.empty() || !v[0].is_array())
    throw ValueError(where + ": expected a matrix (a non-empty array of rows)");
  const std::size_t cols = v[0].size();
  xt::xarray<double> out = xt::xarray<double>::from_shape({v.size(), cols});
  for (std::size_t r = 0; r < v.size(); ++r) {
    const std::string row = where + "[" + std::to_string(r) + "]";
    const xt::xarray<double> values = vector_of(v[r], row);
    if (values.size() != cols)
      throw ShapeError(row + ": row " + std::to_string(r) + " has " +
                       std::to_string(values.size()) + " numbers, row 0 has " +
                       std::to_string(cols));
    std::copy(values.begin(), values.end(), out.data() + r * cols);
  }
  return out;
}

std::int64_t label(const json& v, const std::string& where) {
  if (!v.is_number_integer()) throw ValueError(where + ": expected an integer class index");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    throw IndexError(where + ": label " + v.dump() + " is out of range");
  return v.get<std::int64_t>();
}

void only_keys(const json& object, const std::vector<std::string>& allowed,
               const std::string& where) {
  for (const auto& [key, value] : object.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw ValueError(where + ": unknown key \"" + key + "\"");
}

}  // namespace

Network parse_network_spec(const std::string& json_text) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {  // parse errors, and numbers beyond double's range
    throw ValueError(std::string("malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) throw ValueError("spec: expected a JSON object with layers, x, y");
  only_keys(doc, {"layers", "x", "y", "lr", "label_base"}, "spec");
  for (const char* key : {"layers", "x", "y"})
    if (!doc.contains(key)) throw ValueError(std::string("spec: missing \"") + key + "\"");

  std::vector<DenseLayer> dense;
  const json& layers = doc["layers"];
  if (!layers.is_array() || layers.empty())
    throw ValueError("layers: expected a non-empty array of layers");
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string where = "layers[" + std::to_string(l) + "]";
    const json& layer = layers[l];
    if (!layer.is_object()) throw ValueError(where + ": expected an object with W and b");
    only_keys(layer, {"W", "b", "activation"}, where);
    if (!layer.contains("W") || !layer.contains("b"))
      throw ValueError(where + ": needs \"W\" and \"b\"");
    DenseLayer d{matrix_of(layer["W"], where + ".W"), vector_of(layer["b"], where + ".b"),
                 "identity"};
    if (layer.contains("activation")) {
      if (!layer["activation"].is_string())
        throw ValueError(where + ".activation: expected a name");
      d.activation = layer["activation"].get<std::string>();
    }
    dense.push_back(std::move(d));
  }
  const json& x = doc["x"];
  const bool batch = x.is_array() && !x.empty() && x[0].is_array();
  const Matrix inputs = batch ? matrix_of(x, "x") : vector_of(x, "x");
  const json& y = doc["y"];
  std::vector<std::int64_t> labels;
  if (y.is_array()) {
    for (std::size_t i = 0; i < y.size(); ++i)
      labels.push_back(label(y[i], "y[" + std::to_string(i) + "]"));
  } else {
    labels.push_back(label(y, "y"));
  }
  // "label_base": 1 takes the document's numbering of the classes, 1..C.
  int base = 0;
  if (doc.contains("label_base")) {
    const json& b = doc["label_base"];
    if (!b.is_number_integer() || (b.get<std::int64_t>() != 0 && b.get<std::int64_t>() != 1))
      throw ValueError(
          "label_base: expected 0 (classes 0..C-1) or 1 (classes 1..C, as the "
          "document numbers them), got " +
          b.dump());
    base = static_cast<int>(b.get<std::int64_t>());
  }
  const std::size_t classes_count = dense.back().W.dimension() == 2 ? dense.back().W.shape()[0] : 0;
  if (base == 1)
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] < 1 || static_cast<std::size_t>(labels[i]) > classes_count)
        throw IndexError("y" + (y.is_array() ? "[" + std::to_string(i) + "]" : std::string()) +
                         ": label " + std::to_string(labels[i]) + " is out of range 1.." +
                         std::to_string(classes_count) + " (\"label_base\": 1 numbers the " +
                         std::to_string(classes_count) + " classes from 1)");
      labels[i] -= 1;
    }
  const Tensor classes = from_vector(labels, {labels.size()});
  const double lr = doc.contains("lr") ? number(doc["lr"], "lr") : 0.1;
  return Network(std::move(dense), inputs, std::move(classes), lr, base);
}

Network load_network_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ValueError(path + " is a folder; --spec takes a JSON file");
  if (!in) throw ValueError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return parse_network_spec(text.str());
  } catch (const ValueError& e) {
    throw ValueError(path + ": " + e.what());
  } catch (const ShapeError& e) {
    throw ShapeError(path + ": " + e.what());
  } catch (const IndexError& e) {
    throw IndexError(path + ": " + e.what());
  }
}

}  // namespace walkthrough
