// Progress for long work: a redrawn bar on a terminal, plain lines every few
// seconds otherwise (so CI logs stay readable), nothing with --quiet.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace snn::tool {

class Progress {
 public:
  /// `label` names the work ("epoch 3/15", "simulate"); `total` units of it.
  Progress(std::string label, std::size_t total, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Sets the units done so far (monotone); redraws at most ~10 times a second.
  void update(std::size_t done, const std::string& detail = {});
  /// Ends the bar (a terminal line is cleared; the caller prints its summary).
  void finish();

  /// Whether stderr is a terminal (bars) or not (periodic lines).
  static bool interactive();

 private:
  std::string label_;
  std::size_t total_;
  bool quiet_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace snn::tool
