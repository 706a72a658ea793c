#pragma once
/// \file
/// The tape: every node of the calling thread, in creation order. Creation order is a topological
/// order (an op's inputs exist before it), so backward is one reverse loop over it, no sort.
///
/// A node leaves the tape when its last reference goes (its output and every later node that used
/// it are gone). Freed slots at the end are popped at once; holes in the middle are squeezed out
/// when they outnumber live entries. So the tape stays as large as the graphs still alive.
///
/// Threads: a tape belongs to its thread, and only that thread edits it. A handle may still be
/// dropped on any thread: a node whose last reference goes on another thread is handed back to its
/// tape (under a lock) and deleted by its own thread at its next recorded op or backward, or when
/// that thread ends. Once the thread has ended, its graphs stay usable as values and are freed
/// wherever their last handle goes.

#include <atomic>
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
  /// Deletes the nodes that other threads handed back (done at each recorded op and backward).
  void collect_foreign();
  std::size_t saved_bytes() const;                              ///< bytes saved by live entries

 private:
  friend class Node;
  friend class NodeRef;
  friend class Engine;
  friend void attach(Tensor&, Node*, std::span<const Tensor* const>);

  /// The calling thread's tape if it has one, without making one (safe during thread exit).
  static Tape* of_this_thread();
  /// Hands a node whose last reference went on another thread to its tape; false when its
  /// thread has ended (then the caller deletes it).
  static bool adopt_foreign(Node* node);

  void add(Node* node);
  void remove(Node* node);
  void tidy();  ///< pops dead slots at the end; compacts when holes outnumber live entries

  std::vector<Node*> entries_;
  std::size_t dead_ = 0;
  int sweeps_ = 0;  ///< backward sweeps running: slots must keep their positions meanwhile
  std::vector<Node*> foreign_;             ///< handed back by other threads; under the lock
  std::atomic<bool> has_foreign_{false};
};

}  // namespace xgrad
