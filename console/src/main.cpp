// orderpipe-console: see console_service.hpp.
#include "console_service.hpp"

#include "orderpipe/runtime/main.hpp"

int main() { return orderpipe::runtime::run_service<orderpipe::console::ConsoleService>(); }
