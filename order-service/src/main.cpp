// order-service: see order_service.hpp.
#include "order_service.hpp"

#include "orderpipe/runtime/main.hpp"

int main() { return orderpipe::runtime::run_service<orderpipe::order::OrderService>(); }
