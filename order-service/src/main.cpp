// order-service: reads the environment, starts the service, waits for SIGTERM/SIGINT.
#include "order_service.hpp"

#include "orderpipe/common/daemon.hpp"

int main() {
    return orderpipe::run_daemon<orderpipe::order::OrderServiceConfig,
                                 orderpipe::order::OrderService>("order-service");
}
