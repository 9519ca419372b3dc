// inventory-service: see inventory_service.hpp.
#include "inventory_service.hpp"

#include "orderpipe/runtime/main.hpp"

int main() { return orderpipe::runtime::run_service<orderpipe::inventory::InventoryService>(); }
