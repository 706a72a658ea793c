#include "autograd/tape.hpp"

#include <mutex>

#include "autograd/node.hpp"

namespace xgrad {

namespace {
// Guards every tape's foreign_ list and the moment a tape lets go of its nodes (thread exit).
std::mutex& foreign_mutex() {
  static std::mutex m;
  return m;
}
// Trivially destructible: readable while the thread's other thread_locals are destroyed.
thread_local Tape* this_thread_tape = nullptr;
}  // namespace

// ---- Tape -------------------------------------------------------------------------------------

Tape& Tape::current() {
  thread_local Tape tape;
  thread_local const bool registered = (this_thread_tape = &tape, true);  // once per thread
  (void)registered;
  return tape;
}

Tape* Tape::of_this_thread() { return this_thread_tape; }

Tape::~Tape() {
  std::vector<Node*> foreign;
  {
    // Graphs that outlive their thread stay usable as values; they just leave no trace here.
    std::lock_guard<std::mutex> lock(foreign_mutex());
    for (Node* n : entries_)
      if (n) n->tape_.store(nullptr, std::memory_order_relaxed);
    foreign.swap(foreign_);
    this_thread_tape = nullptr;
  }
  for (Node* n : foreign) collect_dead(n);
}

bool Tape::adopt_foreign(Node* node) {
  std::lock_guard<std::mutex> lock(foreign_mutex());
  Tape* owner = node->tape_.load(std::memory_order_relaxed);
  if (!owner) return false;  // its thread ended meanwhile
  owner->foreign_.push_back(node);
  owner->has_foreign_.store(true, std::memory_order_release);
  return true;
}

void Tape::collect_foreign() {
  if (!has_foreign_.load(std::memory_order_acquire) || sweeps_ > 0) return;
  std::vector<Node*> foreign;
  {
    std::lock_guard<std::mutex> lock(foreign_mutex());
    foreign.swap(foreign_);
    has_foreign_.store(false, std::memory_order_relaxed);
  }
  for (Node* n : foreign) collect_dead(n);
}

std::size_t Tape::saved_bytes() const {
  std::size_t bytes = 0;
  for (const Node* n : entries_)
    if (n) bytes += n->saved_bytes();
  return bytes;
}

void Tape::add(Node* node) {
  collect_foreign();
  node->tape_.store(this, std::memory_order_relaxed);
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
