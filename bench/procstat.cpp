#include "procstat.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

namespace orderpipe::bench {

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

/// "order-service" for ".../order-service/order-service"; the broker for java ... kafka.Kafka.
std::string role_of(const std::string& cmdline) {
    std::vector<std::string> args;
    std::string arg;
    for (char c : cmdline) {
        if (c == '\0') {
            args.push_back(arg);
            arg.clear();
        } else {
            arg += c;
        }
    }
    if (args.empty()) return {};
    const std::string exe = std::filesystem::path(args[0]).filename().string();
    for (const char* daemon : {"order-service", "inventory-service", "notification-service",
                               "analytics-service", "fake-email-provider", "haproxy"}) {
        if (exe == daemon) return daemon;
    }
    if (exe == "java" && std::find(args.begin(), args.end(), "kafka.Kafka") != args.end()) {
        return "kafka broker";
    }
    return {};
}

long status_kib(const std::string& status, const std::string& field) {
    const auto at = status.find(field + ":");
    if (at == std::string::npos) return 0;
    return std::stol(status.substr(at + field.size() + 1));
}

}  // namespace

std::vector<WatchedProcess> find_processes() {
    std::vector<WatchedProcess> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        auto role = role_of(read_file(entry.path().string() + "/cmdline"));
        // PostgreSQL (DATABASE_URL): the server and its backends, which rename their command
        // lines ("postgres: orderpipe orders 127.0.0.1(…) idle") but keep their comm.
        if (role.empty() && read_file(entry.path().string() + "/comm") == "postgres\n") {
            role = "postgresql";
        }
        if (!role.empty()) out.push_back({role, std::stoi(name)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.name < b.name || (a.name == b.name && a.pid < b.pid);
    });
    out.push_back({"orderpipe-bench", static_cast<int>(::getpid())});
    return out;
}

ProcessUsage usage_of(int pid) {
    ProcessUsage u;
    const std::string base = "/proc/" + std::to_string(pid);
    const std::string stat = read_file(base + "/stat");
    // Fields after the command name (which may contain spaces) in parentheses.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return u;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
        if (i == 14) utime = std::stod(field);
        if (i == 15) {
            stime = std::stod(field);
            break;
        }
    }
    u.cpu_seconds = (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    const std::string status = read_file(base + "/status");
    u.rss_kib = status_kib(status, "VmRSS");
    u.peak_rss_kib = status_kib(status, "VmHWM");
    return u;
}

int http_port_of(int pid) {
    const std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
    std::size_t at = 0;
    while (at < env.size()) {
        auto end = env.find('\0', at);
        if (end == std::string::npos) end = env.size();
        const std::string_view var(env.data() + at, end - at);
        if (var.starts_with("HTTP_PORT=")) {
            try {
                return std::stoi(std::string(var.substr(10)));
            } catch (const std::exception&) {
                return 0;
            }
        }
        at = end + 1;
    }
    return 0;
}

}  // namespace orderpipe::bench
