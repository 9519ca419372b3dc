#include "orderpipe/common/crash.hpp"
#include "orderpipe/common/signals.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <thread>

namespace {

struct Died {
    int signal = 0;  // 0: it did not die of a signal
    std::string stdout_text;
    std::string stderr_text;
};

std::string read_all(int fd) {
    std::string text;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
}

/// Runs `crash` in a child process with the crash report installed; collects how it ended.
template <typename Crash>
Died run_child(Crash crash) {
    int out[2];
    int err[2];
    REQUIRE(pipe(out) == 0);
    REQUIRE(pipe(err) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(err[0]);
        orderpipe::install_crash_report("crash-test");
        std::fputs("a line still in stdout's buffer\n", stdout);  // not flushed: the report must
        crash();
        _exit(0);
    }
    close(out[1]);
    close(err[1]);
    Died died;
    // Read both before waiting: a full pipe must not block the child.
    std::thread reader([&] { died.stdout_text = read_all(out[0]); });
    died.stderr_text = read_all(err[0]);
    reader.join();
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) died.signal = WTERMSIG(status);
    close(out[0]);
    close(err[0]);
    return died;
}

nlohmann::json report_line(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.value("msg", "") == "fatal signal") return j;
    }
    return {};
}

[[gnu::noinline]] void write_through(volatile int* p) { *p = 42; }

}  // namespace

TEST_CASE("a segmentation fault is reported with its thread and stack, then kills as before",
          "[crash]") {
    const Died died = run_child([] {
        // On a thread started with signals blocked, as the service's own threads are: the
        // fault must still reach the report.
        orderpipe::with_signals_blocked([] {
            std::thread([] {
                pthread_setname_np(pthread_self(), "crash-worker");
                write_through(nullptr);
            }).join();
        });
    });
    CHECK(died.signal == SIGSEGV);
    CHECK(died.stdout_text.find("a line still in stdout's buffer") != std::string::npos);
    const auto report = report_line(died.stderr_text);
    INFO(died.stderr_text);
    REQUIRE(report.is_object());
    CHECK(report["level"] == "critical");
    CHECK(report["service"] == "crash-test");
    CHECK(report["signal"] == "SIGSEGV");
    CHECK(report["fault_address"] == "0x0");
    CHECK(report["thread"] == "crash-worker");
    CHECK(report["frames"].get<int>() > 2);
    CHECK(std::string(report["ts"]).size() == 24);  // 2026-12-06T22:42:20.123Z
    // The frames follow, naming the binary they are in.
    CHECK(died.stderr_text.find("unit_tests") != std::string::npos);
}

TEST_CASE("std::terminate is reported as SIGABRT and still ends the process", "[crash]") {
    const Died died = run_child([] { std::terminate(); });
    CHECK(died.signal == SIGABRT);
    const auto report = report_line(died.stderr_text);
    INFO(died.stderr_text);
    REQUIRE(report.is_object());
    CHECK(report["signal"] == "SIGABRT");
}
