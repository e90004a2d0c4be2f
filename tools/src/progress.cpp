#include "snn/tool/progress.h"

#include <fmt/core.h>

#include <unistd.h>
#include <algorithm>
#include <cstdio>

namespace snn::tool {

using Clock = std::chrono::steady_clock;

bool Progress::interactive() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, std::size_t total, bool quiet)
    : label_(std::move(label)),
      total_(std::max<std::size_t>(total, 1)),
      quiet_(quiet),
      tty_(interactive()),
      start_(Clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(std::size_t done, const std::string& detail) {
  if (quiet_ || finished_) return;
  const auto now = Clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  // Terminals get a lively bar; logs get a line every 10 s so they stay short.
  if (since_draw < (tty_ ? 0.1 : 10.0) && done < total_) return;
  if (!tty_ && done >= total_) return;  // the caller prints the closing line itself
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
  if (tty_) {
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width);
    fmt::print(stderr, "\r{} [{:=<{}}{: <{}}] {:3.0f}% {:.1f}s eta {:.0f}s {}\x1b[K", label_, "", filled, "", width - filled,
               frac * 100, elapsed, eta, detail);
  } else {
    fmt::print(stderr, "{}: {}/{} ({:.0f}%), {:.1f}s, eta {:.0f}s {}\n", label_, done, total_, frac * 100, elapsed, eta, detail);
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!quiet_ && tty_) {
    fmt::print(stderr, "\r\x1b[K");
    std::fflush(stderr);
  }
}

}  // namespace snn::tool
