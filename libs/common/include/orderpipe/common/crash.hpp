#pragma once
/// A crash leaves its story in the log. `install_crash_report()` makes a fatal signal (SIGSEGV,
/// SIGBUS, SIGFPE, SIGILL, SIGABRT — the last also what std::terminate ends in) write, before
/// the process dies of it as it would have:
///   1. whatever log lines were still buffered on stdout (at most a second of info lines),
///   2. one JSON log line on stderr: level "critical", msg "fatal signal", the signal, the
///      faulting address, the thread's id and name (e.g. "rdk:main", "order-http"),
///   3. the thread's stack, one frame per line, as glibc's backtrace_symbols_fd writes it
///      (`binary(+0xOFFSET) [0xADDRESS]`: `addr2line -Cfe binary 0xOFFSET` names the line).
/// Then the signal's default action runs (a core dump where the system keeps them, and the exit
/// status a supervisor expects).
///
/// Only async-signal-safe calls on the way, except two that are safe in practice and bounded:
/// the stdout flush is tried only if its lock is free (never waits), and backtrace() had its
/// library loaded at install time. A fault inside the report itself ends the process at once
/// (the handler is reset before it runs).
///
/// Threads that block every signal (librdkafka's own, see signals.hpp) die without a report:
/// the kernel resets a blocked fault signal to its default action.

#include <string_view>

namespace orderpipe {

/// Installs the handlers (once per process; later calls only update `service`).
void install_crash_report(std::string_view service);

}  // namespace orderpipe
