#include "orderpipe/runtime/main.hpp"

namespace orderpipe::runtime::detail {

void watch_signals(Runtime& runtime, const sigset_t& signals) {
    std::thread([&runtime, signals] {
        int received = 0;
        for (;;) {
            int sig = 0;
            if (sigwait(&signals, &sig) != 0) return;
            if (++received == 1) {
                runtime.request_exit(kExitOk, std::string("signal ") + std::to_string(sig));
                continue;
            }
            log::error("second signal while draining; exiting now", {{"signal", sig}});
            std::_Exit(kExitFailure);
        }
    }).detach();
}

void arm_shutdown_watchdog(std::chrono::milliseconds timeout) {
    std::thread([timeout] {
        std::this_thread::sleep_for(timeout);
        log::error("graceful stop exceeded SHUTDOWN_TIMEOUT; exiting now",
                   {{"shutdown_timeout_ms", timeout.count()}});
        std::_Exit(kExitFailure);
    }).detach();
}

}  // namespace orderpipe::runtime::detail
