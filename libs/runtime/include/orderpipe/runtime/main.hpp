#pragma once
/// The `main` of every service:
///
///   int main() { return orderpipe::runtime::run_service<orderpipe::order::OrderService>(); }
///
/// Reads the environment into `Service::Config` (exit 2 naming every bad variable), sets up
/// JSON-line logging and fault injection, starts the service (exit 2 on a setting an operator
/// must fix: port in use, unwritable DATA_DIR, refused KAFKA_* property), then waits for
/// SIGTERM/SIGINT or for the service to ask to exit (e.g. fenced: 1), and stops gracefully
/// within SHUTDOWN_TIMEOUT; a second signal, or the timeout, exits at once with code 1. A fatal
/// signal logs a crash report with the stack first (crash.hpp).
///
/// `Service` needs: `using Config = ...` with `static Config from_env(EnvReader&)` and a
/// `settings` member (ServiceSettings); a constructor from Config; `start()`, `stop()` and
/// `Runtime& runtime()`.

#include "orderpipe/common/config.hpp"
#include "orderpipe/common/crash.hpp"
#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/tracing.hpp"
#include "orderpipe/kafka/error.hpp"
#include "orderpipe/runtime/runtime.hpp"

#include <malloc.h>
#include <pthread.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <thread>

namespace orderpipe::runtime {

namespace detail {
/// Waits for signals on its own thread: the first asks `runtime` to stop; a second exits now.
void watch_signals(Runtime& runtime, const sigset_t& signals);
/// Exits with code 1 if the process is still running `timeout` from now.
void arm_shutdown_watchdog(std::chrono::milliseconds timeout);
}  // namespace detail

template <typename Service>
int run_service() {
    typename Service::Config config;
    try {
        EnvReader env;
        config = Service::Config::from_env(env);
        env.finish();
    } catch (const ConfigError& e) {
        std::cerr << Service::kName << ": " << e.what() << '\n';
        return kExitConfiguration;
    }
    log::init(config.settings.service, config.settings.log_level);
    install_crash_report(config.settings.service);
    // glibc's malloc (a build with -DORDERPIPE_JEMALLOC=OFF) gives each thread that allocates
    // its own arena, up to 8 per core, each keeping its high-water mark resident: two, as with
    // jemalloc (libs/runtime/src/jemalloc_conf.cpp). MALLOC_ARENA_MAX, when set, still decides.
    if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
    faults::configure(config.settings.fault_inject);
    tracing::configure(config.settings.traces_url, config.settings.trace_service);

    // Block the signals in every thread (threads inherit the mask); one thread waits for them,
    // so no signal handler ever runs concurrently with the service's code.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<Service> service;
    try {
        service = std::make_unique<Service>(config);
        service->start();
    } catch (const StartupError& e) {
        log::error("cannot start", {{"error", e.what()}});
        std::cerr << Service::kName << ": " << e.what() << '\n';
        return kExitConfiguration;
    } catch (const kafka::ConfigurationError& e) {
        log::error("cannot start", {{"error", e.what()}});
        std::cerr << Service::kName << ": " << e.what() << '\n';
        return kExitConfiguration;
    } catch (const std::exception& e) {
        log::error("cannot start", {{"error", e.what()}});
        std::cerr << Service::kName << ": " << e.what() << '\n';
        return kExitFailure;
    }
    detail::watch_signals(service->runtime(), signals);
    const int code = service->runtime().wait_for_exit();
    // Exit within SHUTDOWN_TIMEOUT (docs/CONTRACT.md "Operations"). Past it, leave at once: like a
    // SIGKILL, that loses nothing (open transactions are aborted by the broker or the next
    // instance).
    detail::arm_shutdown_watchdog(config.settings.shutdown_timeout);
    try {
        service->stop();
    } catch (const std::exception& e) {
        log::error("stop failed", {{"error", e.what()}});
        return kExitFailure;
    }
    tracing::flush();
    if (code == kExitConfiguration) {
        std::cerr << Service::kName << ": stopped; see the log for why (exit code 2)\n";
    }
    return code;
}

}  // namespace orderpipe::runtime
