#pragma once
/// The `main` of every service: read the environment into `Config` (exit 2 with every problem
/// named), set up JSON-line logging, start `Service`, wait for SIGTERM/SIGINT, stop gracefully.
///
/// `Config` needs `static Config from_env(EnvReader&)` and a `common` member (CommonConfig);
/// `Service` needs a constructor from Config, `start()` and `stop()`.

#include "orderpipe/common/config.hpp"
#include "orderpipe/common/logging.hpp"

#include <pthread.h>

#include <csignal>
#include <exception>
#include <iostream>
#include <thread>

namespace orderpipe {

template <typename Config, typename Service>
int run_daemon(const char* name) {
    Config config;
    try {
        EnvReader env;
        config = Config::from_env(env);
        env.finish();
    } catch (const ConfigError& e) {
        std::cerr << name << ": " << e.what() << '\n';
        return 2;
    }
    log::init(config.common.service, config.common.log_level);

    // Block the signals in every thread (threads inherit the mask), then wait for them here:
    // no signal handler ever runs concurrently with the service's code.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        Service service(config);
        service.start();
        int sig = 0;
        sigwait(&signals, &sig);
        log::info("signal received, draining", {{"signal", sig}});
        // SPEC §10: exit within SHUTDOWN_TIMEOUT. Past it, leave at once: like a SIGKILL, that
        // loses nothing (open transactions are aborted by the broker or the next instance).
        std::thread([timeout = config.common.shutdown_timeout] {
            std::this_thread::sleep_for(timeout);
            log::error("graceful stop exceeded SHUTDOWN_TIMEOUT; exiting now",
                       {{"shutdown_timeout_ms", timeout.count()}});
            std::_Exit(1);
        }).detach();
        service.stop();
    } catch (const std::exception& e) {
        log::error(std::string(name) + " failed", {{"error", e.what()}});
        return 1;
    }
    return 0;
}

}  // namespace orderpipe
