// SIGINT handling: the first Ctrl-C sets a flag that long loops poll (through
// their progress callbacks) and turn into an snn::Error, so the run unwinds
// normally, temporaries are removed, and nothing half-written stays behind.
// A second Ctrl-C ends the process at once. SIGTERM is handled the same way.
#pragma once

namespace snn::tool {

void install_interrupt_handler();
bool interrupted();
/// The signal that interrupted (SIGINT or SIGTERM), 0 if none: the process
/// then exits with 128 + it, as a shell reports a process a signal ended.
int interrupt_signal();
/// Sets the flag as the handler does (async-signal-safe): for embedders with
/// their own signal handling, e.g. the Python module.
void request_interrupt(int signal);
/// Clears the flag, so a later run is not taken as interrupted.
void clear_interrupt();
/// Throws snn::Error("interrupted") once SIGINT was received.
void throw_if_interrupted();

}  // namespace snn::tool
