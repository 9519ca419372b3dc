// Catch2's main, with the services' JSON-line logging (LOG_LEVEL, default warn) so a failing
// test shows the structured fields of every log line.
#define CATCH_CONFIG_RUNNER
#include "orderpipe/common/logging.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

int main(int argc, char* argv[]) {
    const char* level = std::getenv("LOG_LEVEL");
    orderpipe::log::init("test", level != nullptr ? level : "warn");
    return Catch::Session().run(argc, argv);
}
