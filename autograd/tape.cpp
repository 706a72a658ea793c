#include "autograd/tape.hpp"

#include "autograd/node.hpp"

namespace xgrad {

// ---- Tape -------------------------------------------------------------------------------------

Tape& Tape::current() {
  thread_local Tape tape;
  return tape;
}

Tape::~Tape() {
  // Graphs that outlive their thread stay usable as values; they just leave no trace here.
  for (Node* n : entries_)
    if (n) n->tape_ = nullptr;
}

std::size_t Tape::saved_bytes() const {
  std::size_t bytes = 0;
  for (const Node* n : entries_)
    if (n) bytes += n->saved_bytes();
  return bytes;
}

void Tape::add(Node* node) {
  node->tape_ = this;
  node->index_ = entries_.size();
  entries_.push_back(node);
}

void Tape::remove(Node* node) {
  entries_[node->index_] = nullptr;
  ++dead_;
  if (sweeps_ == 0) tidy();
}

void Tape::tidy() {
  while (!entries_.empty() && entries_.back() == nullptr) {
    entries_.pop_back();
    --dead_;
  }
  if (dead_ < 256 || dead_ * 2 < entries_.size()) return;
  std::size_t live = 0;
  for (Node* n : entries_) {
    if (!n) continue;
    n->index_ = live;
    entries_[live++] = n;
  }
  entries_.resize(live);
  dead_ = 0;
}

}  // namespace xgrad
