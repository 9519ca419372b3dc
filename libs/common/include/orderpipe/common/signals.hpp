#pragma once
/// Threads that must never take a process signal. A daemon blocks SIGTERM/SIGINT in every thread
/// and waits for them on one (libs/runtime main.hpp); a thread started before that, or by a
/// library that starts its own, must be started with the signals already blocked, or a SIGTERM
/// may land on it and kill the process instead of draining it.

#include <pthread.h>
#include <csignal>

namespace orderpipe {

/// Runs `start` with every signal blocked in the calling thread (threads it starts inherit
/// that mask), then restores the caller's mask. The signals of a fault (SIGSEGV, SIGBUS, SIGFPE,
/// SIGILL, SIGABRT) stay open, so a crash on such a thread still reaches the crash report
/// (crash.hpp) instead of the kernel's silent default.
template <typename Start>
void with_signals_blocked(Start&& start) {
    sigset_t all;
    sigset_t before;
    sigfillset(&all);
    for (const int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigdelset(&all, fault);
    pthread_sigmask(SIG_BLOCK, &all, &before);
    start();
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

}  // namespace orderpipe
