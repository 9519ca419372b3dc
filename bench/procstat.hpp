#pragma once
// CPU time and memory of the processes under test, from /proc (Linux): each orderpipe daemon
// and the Kafka broker, found by their command lines.

#include <map>
#include <string>
#include <vector>

namespace orderpipe::bench {

struct ProcessUsage {
    double cpu_seconds = 0;  ///< user + system, since the process started
    long rss_kib = 0;        ///< resident now
    long peak_rss_kib = 0;   ///< VmHWM: the most it was resident
};

struct WatchedProcess {
    std::string name;  ///< "order-service", ..., "kafka broker"
    int pid = 0;
};

/// The running orderpipe daemons, the fake email provider, the Kafka broker (a java process
/// running kafka.Kafka) and PostgreSQL's processes ("postgresql": the server and each backend),
/// by scanning /proc. The bench itself is added as "orderpipe-bench".
std::vector<WatchedProcess> find_processes();

/// The usage of `pid` now; all zero when it is gone.
ProcessUsage usage_of(int pid);

/// The HTTP_PORT a daemon was started with (its environment: every instance has its own, also
/// behind HAProxy), or 0 when it has none or the environment cannot be read.
int http_port_of(int pid);

}  // namespace orderpipe::bench
