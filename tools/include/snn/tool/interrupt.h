// SIGINT handling: the first Ctrl-C sets a flag that long loops poll (through
// their progress callbacks) and turn into an snn::Error, so the run unwinds
// normally, temporaries are removed, and nothing half-written stays behind.
// A second Ctrl-C ends the process at once.
#pragma once

namespace snn::tool {

void install_interrupt_handler();
bool interrupted();
/// Throws snn::Error("interrupted") once SIGINT was received.
void throw_if_interrupted();

}  // namespace snn::tool
