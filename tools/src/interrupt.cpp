#include "snn/tool/interrupt.h"

#include "snn/error.h"

#include <unistd.h>
#include <atomic>
#include <csignal>

namespace snn::tool {

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

extern "C" void on_sigint(int sig) {
  if (g_interrupted.exchange(true)) _exit(128 + sig);
  g_signal.store(sig);
  const char msg[] = "\nsnnsim: interrupted, stopping (Ctrl-C again to quit at once)\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
}
}  // namespace

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }

void request_interrupt(int signal) {
  g_signal.store(signal);
  g_interrupted.store(true);
}

void clear_interrupt() {
  g_interrupted.store(false);
  g_signal.store(0);
}

void throw_if_interrupted() {
  if (interrupted()) throw Error("interrupted by signal; no results were written");
}

}  // namespace snn::tool
