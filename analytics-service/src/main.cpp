// analytics-service: see analytics_service.hpp.
#include "analytics_service.hpp"

#include "orderpipe/runtime/main.hpp"

int main() { return orderpipe::runtime::run_service<orderpipe::analytics::AnalyticsService>(); }
