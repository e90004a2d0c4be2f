// The spike event queue: a calendar queue with one bucket per step (Brown
// 1988), i.e. a ring of R = max delay + 1 slots, each holding one list of
// source neuron ids per connection. An event (step t, population p, neuron s)
// sent through connection p with delay d is appended to slot (t + d) mod R,
// list p. At step t the simulator walks the populations in order; before
// updating population p + 1 it takes list p of slot t mod R (all events due
// at t for that connection) and then empties it.
//
// Why it is correct: time is an integer and every delay d satisfies 0 <= d <
// R, so an event pushed at step t lands in a slot that is due at t + d, and
// that slot was last emptied at step t + d - R < t: it holds nothing from an
// earlier time (events never mix across "years"). Events due at t are handed
// out in order of time (slot by slot), then population (walk order); a
// zero-delay event of population p pushed during step t is in slot t mod R
// before population p + 1 takes it later in the same step, which is the
// seed's same-step propagation. Within a list the order of events does not
// matter, because fixed-point currents are integer sums.
//
// In blocks of B steps (RunOptions::step_block) the simulator runs the input
// over steps t0 .. t0 + B - 1, then population 1 over them, then population
// 2, and so on. Connection p is pushed only while population p runs its
// block and popped only while population p + 1 runs it, afterwards; so when
// it is pushed, its events not yet taken are due in [t0, t0 + B - 1 + d], at
// most B + d distinct steps, and a ring of R = max delay + B slots keeps
// them apart.
//
// What it costs: push O(k) for k events (a vector append, amortised, no
// comparisons), pop O(1) per list, no locks (each simulator, i.e. each worker
// thread, owns its queue); memory R x connections lists whose capacity grows
// to the largest burst and is then reused. A binary heap would cost O(log n)
// per event and tbb::concurrent_priority_queue would in addition serialise
// every push and pop of every thread through one aggregated heap.
#pragma once

#include "snn/types.h"

#include <cstddef>
#include <span>
#include <vector>

namespace snn::engine {

class CalendarQueue {
 public:
  CalendarQueue() = default;
  /// A queue for `connections` connections whose delays are all <= max_delay,
  /// used in blocks of `block` steps (>= 1; see above).
  CalendarQueue(std::size_t connections, Step max_delay, Step block = 1) { reset(connections, max_delay, block); }

  void reset(std::size_t connections, Step max_delay, Step block = 1) {
    connections_ = connections;
    ring_ = static_cast<std::size_t>(max_delay) + static_cast<std::size_t>(block);
    slots_.resize(ring_ * connections_);
    clear();
  }
  /// Empties every slot (keeps capacity).
  void clear() {
    for (auto& s : slots_) s.clear();
  }
  /// Events of sources `ids`, emitted into `connection`, due at step `due`.
  void push(Step due, std::size_t connection, std::span<const NeuronId> ids) {
    auto& list = slot(due, connection);
    list.insert(list.end(), ids.begin(), ids.end());
  }
  /// Events due at `step` for `connection`; valid until pop(step, connection).
  std::span<const NeuronId> due(Step step, std::size_t connection) const {
    const auto& list = slots_[index(step, connection)];
    return {list.data(), list.size()};
  }
  /// Removes the events due at `step` for `connection` (after delivery).
  void pop(Step step, std::size_t connection) { slot(step, connection).clear(); }

 private:
  std::size_t index(Step step, std::size_t connection) const {
    return (static_cast<std::size_t>(step) % ring_) * connections_ + connection;
  }
  std::vector<NeuronId>& slot(Step step, std::size_t connection) { return slots_[index(step, connection)]; }

  std::size_t connections_ = 0;
  std::size_t ring_ = 1;
  std::vector<std::vector<NeuronId>> slots_;
};

}  // namespace snn::engine
