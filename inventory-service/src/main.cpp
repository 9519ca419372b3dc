// inventory-service: reads the environment, starts the service, waits for SIGTERM/SIGINT.
#include "inventory_service.hpp"

#include "orderpipe/common/logging.hpp"

#include <csignal>
#include <iostream>

int main() {
    using namespace orderpipe;
    inventory::InventoryServiceConfig config;
    try {
        EnvReader env;
        config = inventory::InventoryServiceConfig::from_env(env);
        env.finish();
    } catch (const ConfigError& e) {
        std::cerr << "inventory-service: " << e.what() << '\n';
        return 2;
    }
    log::init(config.common.service, config.common.log_level);

    // Block the signals in every thread, then wait for them here: no handler runs async code.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        inventory::InventoryService service(config);
        service.start();
        int sig = 0;
        sigwait(&signals, &sig);
        log::info("signal received, draining", {{"signal", sig}});
        service.stop();
    } catch (const std::exception& e) {
        log::error("inventory-service failed", {{"error", e.what()}});
        return 1;
    }
    return 0;
}
