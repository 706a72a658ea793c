#include "autograd/graph.hpp"

#include <fstream>
#include <map>
#include <set>
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

// A node id, "n7": written so because g++ 12 warns (-Wrestrict, wrongly) on "n" + to_string(7).
std::string label(char prefix, std::size_t number) {
  std::string out = std::to_string(number);
  out.insert(out.begin(), prefix);
  return out;
}

// Text inside a DOT label: quotes and backslashes escaped.
std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

class Drawing {
 public:
  Drawing(const DotOptions& options) : options_(options) {
    for (const auto& [name, t] : options.names)
      if (t.defined()) names_.emplace(t.impl(), name);
  }

  std::string id(const void* p) {
    auto [it, fresh] = ids_.emplace(p, "");
    if (fresh) it->second = label('n', ids_.size());
    return it->second;
  }

  // The box a node is drawn in: its own, or its composite call's when folding.
  std::string box(const Node* node) {
    if (options_.fold_composites && node->composite()) {
      const std::string group = label('c', node->composite_call());
      if (groups_.insert(group).second)
        dot_ << "  " << group << " [shape=box, style=\"rounded,bold\", label=\""
             << node->composite() << "\"];\n";
      return group;
    }
    const std::string own = id(node);
    if (drawn_.insert(own).second) {
      dot_ << "  " << own << " [shape=box, style=rounded, label=\"" << node->name();
      if (const std::string a = node->annotation(); !a.empty()) dot_ << " " << escaped(a);
      if (node->released())
        dot_ << "\\nsaved: released";
      else if (const std::size_t bytes = node->saved_bytes())
        dot_ << "\\nsaved: " << bytes_str(bytes);
      dot_ << "\"];\n";
    }
    return own;
  }

  std::string leaf(const TensorImpl* impl, const Shape& shape, bool requires_grad) {
    const std::string own = id(impl);
    if (drawn_.insert(own).second) {
      const auto name = names_.find(impl);
      dot_ << "  " << own << " [shape=box, style=filled, fillcolor=\"#dde8f5\", label=\""
           << (name != names_.end() ? escaped(name->second) + " " : std::string("leaf "))
           << shape_str(shape) << (requires_grad ? "\\nrequires grad" : "") << "\"];\n";
    }
    return own;
  }

  std::string constant(const void* edge, const Shape& shape) {
    const std::string own = id(edge);
    if (drawn_.insert(own).second)
      dot_ << "  " << own << " [shape=box, color=gray, fontcolor=gray, label=\"constant "
           << shape_str(shape) << "\"];\n";
    return own;
  }

  void arrow(const std::string& from, const std::string& to, const Shape& shape) {
    if (from == to) return;  // inside one folded composite
    if (!arrows_.insert(from + ">" + to + shape_str(shape)).second) return;  // drawn already
    dot_ << "  " << from << " -> " << to << " [label=\"" << shape_str(shape) << "\"];\n";
  }

  std::ostringstream dot_;

 private:
  const DotOptions& options_;
  std::map<const TensorImpl*, std::string> names_;
  std::map<const void*, std::string> ids_;
  std::set<std::string> drawn_, groups_, arrows_;
};
}  // namespace

std::string to_dot(const Tensor& output, const DotOptions& options) {
  Drawing d(options);
  std::ostringstream& dot = d.dot_;
  dot << "digraph xgrad {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  dot << "  out [shape=ellipse, label=\"output " << shape_str(output.shape()) << "\"];\n";
  std::vector<const Node*> todo;
  if (const Node* root = output.grad_fn()) {
    d.arrow(d.box(root), "out", output.shape());
    todo.push_back(root);
  } else {
    d.arrow(d.leaf(output.impl(), output.shape(), output.requires_grad()), "out", output.shape());
  }
  std::set<const Node*> seen;
  while (!todo.empty()) {  // each node once, iteratively: graphs can be deep
    const Node* node = todo.back();
    todo.pop_back();
    if (!seen.insert(node).second) continue;
    const std::string to = d.box(node);
    for (std::size_t i = 0; i < node->num_inputs(); ++i) {
      const Edge& e = node->edge(i);
      std::string from;
      if (e.fn) {
        from = d.box(e.fn.get());
        todo.push_back(e.fn.get());
      } else if (e.leaf) {
        from = d.leaf(e.leaf.get(), e.shape, true);
      } else {
        from = d.constant(&e, e.shape);
      }
      d.arrow(from, to, e.shape);
    }
  }
  dot << "}\n";
  return dot.str();
}

void write_dot(const Tensor& output, const std::string& path, const DotOptions& options) {
  std::ofstream out(path);
  out << to_dot(output, options);
  if (!out) throw ValueError("write_dot: cannot write " + path);
}

}  // namespace xgrad
