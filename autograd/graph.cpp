#include "autograd/graph.hpp"

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "autograd/node.hpp"

namespace xgrad {

namespace {
std::string bytes_str(std::size_t bytes) {
  std::ostringstream os;
  if (bytes < 1024)
    os << bytes << " B";
  else if (bytes < (1 << 20))
    os << bytes / 1024.0 << " KiB";
  else
    os << bytes / double(1 << 20) << " MiB";
  return os.str();
}
}  // namespace

std::string to_dot(const Tensor& output) {
  std::ostringstream dot;
  dot << "digraph xgrad {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  dot << "  out [shape=ellipse, label=\"output " << shape_str(output.shape()) << "\"];\n";
  std::map<const void*, std::string> ids;
  auto id = [&](const void* p) {
    auto [it, fresh] = ids.emplace(p, "");
    if (fresh) it->second = "n" + std::to_string(ids.size());
    return it->second;
  };
  std::vector<const Node*> todo;
  if (const Node* root = output.grad_fn()) {
    dot << "  " << id(root) << " -> out [label=\"" << shape_str(output.shape()) << "\"];\n";
    todo.push_back(root);
  } else {
    dot << "  " << id(output.impl())
        << " [shape=box, style=filled, fillcolor=\"#dde8f5\", label=\"leaf "
        << shape_str(output.shape()) << "\"];\n  " << id(output.impl()) << " -> out;\n";
  }
  std::map<const Node*, bool> seen;
  while (!todo.empty()) {  // each node once, iteratively: graphs can be deep
    const Node* node = todo.back();
    todo.pop_back();
    if (seen[node]) continue;
    seen[node] = true;
    dot << "  " << id(node) << " [shape=box, style=rounded, label=\"" << node->name();
    if (node->released())
      dot << "\\nsaved: released";
    else if (const std::size_t bytes = node->saved_bytes())
      dot << "\\nsaved: " << bytes_str(bytes);
    dot << "\"];\n";
    for (std::size_t i = 0; i < node->num_inputs(); ++i) {
      const Edge& e = node->edge(i);
      std::string from;
      if (e.fn) {
        from = id(e.fn.get());
        todo.push_back(e.fn.get());
      } else if (e.leaf) {
        from = id(e.leaf.get());
        dot << "  " << from << " [shape=box, style=filled, fillcolor=\"#dde8f5\", label=\"leaf "
            << shape_str(e.shape) << "\\nrequires grad\"];\n";
      } else {
        from = id(&e);
        dot << "  " << from << " [shape=box, color=gray, fontcolor=gray, label=\"constant "
            << shape_str(e.shape) << "\"];\n";
      }
      dot << "  " << from << " -> " << id(node) << " [label=\"" << shape_str(e.shape) << "\"];\n";
    }
  }
  dot << "}\n";
  return dot.str();
}

void write_dot(const Tensor& output, const std::string& path) {
  std::ofstream out(path);
  out << to_dot(output);
  if (!out) throw ValueError("write_dot: cannot write " + path);
}

}  // namespace xgrad
