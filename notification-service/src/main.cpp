// notification-service: see notification_service.hpp.
#include "notification_service.hpp"

#include "orderpipe/runtime/main.hpp"

int main() {
    return orderpipe::runtime::run_service<orderpipe::notification::NotificationService>();
}
