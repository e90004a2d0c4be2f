// Runs the built snnsim binary as a child process for end-to-end tests: no
// shell (arguments are passed as they are), stdout and stderr captured
// together, and the child's pid at hand so a test can signal it.
#pragma once

#include <catch2/catch.hpp>

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace snn::test {

inline const std::filesystem::path kSnnsim = std::filesystem::path(SNNSIM_BINARY_DIR) / "snnsim";

class Child {
 public:
  using Clock = std::chrono::steady_clock;

  /// Runs `program` (default: the built snnsim) with `args`.
  explicit Child(const std::vector<std::string>& args, const std::string& program = kSnnsim.string()) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<std::string> argv_strings{program};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    fd_ = fds[0];
    REQUIRE(rc == 0);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Reads output until it contains `text` (true), or the child closes its
  /// output or `timeout` seconds pass (false).
  bool wait_for(const std::string& text, double timeout) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (output_.find(text) == std::string::npos) {
      if (!read_some(end)) return false;
    }
    return true;
  }

  /// Sends `sig` and remembers when, for seconds_since_signal().
  void signal(int sig) {
    signalled_ = Clock::now();
    REQUIRE(::kill(pid_, sig) == 0);
  }

  /// Reads the rest of the output and reaps the child: its exit status, or
  /// -1 if it did not exit by itself within `timeout` seconds (it is then
  /// killed) or was ended by a signal.
  int finish(double timeout) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (read_some(end)) {}
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (Clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      ::usleep(5000);
    }
    exited_ = Clock::now();
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  double seconds_since_signal() const { return std::chrono::duration<double>(exited_ - signalled_).count(); }
  const std::string& output() const { return output_; }

 private:
  // Appends what the child wrote; false at end of output or deadline.
  bool read_some(Clock::time_point end) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    if (left <= 0 || fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) return true;
    if (r <= 0) return false;
    char buf[4096];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string output_;
  Clock::time_point signalled_{};
  Clock::time_point exited_{};
};

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr together
};

/// Runs `command` through the shell (so it may hold quotes, redirections,
/// `cd ... &&`) to the end, its stdout and stderr together.
inline Outcome run_shell(const std::string& command) {
  Outcome o;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) o.output.append(buf, n);
  const int st = ::pclose(pipe);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

/// Runs snnsim with `args` to the end (at most `timeout` seconds).
inline Outcome run_snnsim(const std::vector<std::string>& args, double timeout = 120) {
  Child child(args);
  Outcome o;
  o.status = child.finish(timeout);
  o.output = child.output();
  return o;
}

}  // namespace snn::test
