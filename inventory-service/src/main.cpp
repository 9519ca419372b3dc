// inventory-service: reads the environment, starts the service, waits for SIGTERM/SIGINT.
#include "inventory_service.hpp"

#include "orderpipe/common/daemon.hpp"

int main() {
    return orderpipe::run_daemon<orderpipe::inventory::InventoryServiceConfig,
                                 orderpipe::inventory::InventoryService>("inventory-service");
}
