#pragma once
/// \file
/// The tape: every node of the calling thread, in creation order. Creation order is a topological
/// order (an op's inputs exist before it), so backward is one reverse loop over it, no sort.
///
/// A node leaves the tape when its last reference goes (its output and every later node that used
/// it are gone). Freed slots at the end are popped at once; holes in the middle are squeezed out
/// when they outnumber live entries. So the tape stays as large as the graphs still alive.

#include <cstddef>
#include <span>
#include <vector>

namespace xgrad {

class Node;
class Tensor;

class Tape {
 public:
  /// The calling thread's tape.
  static Tape& current();

  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;
  ~Tape();

  std::size_t size() const { return entries_.size() - dead_; }  ///< live entries
  std::size_t saved_bytes() const;                              ///< bytes saved by live entries

 private:
  friend class Node;
  friend class Engine;
  friend void attach(Tensor&, Node*, std::span<const Tensor* const>);

  void add(Node* node);
  void remove(Node* node);
  void tidy();  ///< pops dead slots at the end; compacts when holes outnumber live entries

  std::vector<Node*> entries_;
  std::size_t dead_ = 0;
  int sweeps_ = 0;  ///< backward sweeps running: slots must keep their positions meanwhile
};

}  // namespace xgrad
