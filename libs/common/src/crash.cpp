#include "orderpipe/common/crash.hpp"

#include <execinfo.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace orderpipe {
namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
char g_service[64] = "orderpipe";
std::atomic<bool> g_installed{false};
// The handler's own stack, so a stack overflow can still be reported (main thread only:
// sigaltstack is per thread).
alignas(16) char g_alt_stack[64 * 1024];

/// Appends to a fixed buffer without allocating; silently truncates.
struct Line {
    char buf[512];
    std::size_t n = 0;
    void add(std::string_view s) {
        const std::size_t k = std::min(s.size(), sizeof(buf) - n);
        std::memcpy(buf + n, s.data(), k);
        n += k;
    }
    void add_json_text(const char* s) {  // a string's content, escaped enough for JSON
        for (; *s != '\0'; ++s) {
            const char c = *s;
            if (c == '"' || c == '\\') {
                add("\\");
                add(std::string_view(&c, 1));
            } else if (static_cast<unsigned char>(c) >= 0x20) {
                add(std::string_view(&c, 1));
            }
        }
    }
    void add_unsigned(unsigned long long v, int width = 0, int base = 10) {
        char digits[32];
        int k = 0;
        do {
            digits[k++] = "0123456789abcdef"[v % static_cast<unsigned>(base)];
            v /= static_cast<unsigned>(base);
        } while (v != 0 && k < 32);
        while (k < width && k < 32) digits[k++] = '0';
        while (k > 0) add(std::string_view(&digits[--k], 1));
    }
    void flush(int fd) const {
        std::size_t done = 0;
        while (done < n) {
            const ssize_t w = ::write(fd, buf + done, n - done);
            if (w <= 0) return;
            done += static_cast<std::size_t>(w);
        }
    }
};

const char* signal_name(int sig) {
    switch (sig) {
        case SIGSEGV:
            return "SIGSEGV";
        case SIGBUS:
            return "SIGBUS";
        case SIGFPE:
            return "SIGFPE";
        case SIGILL:
            return "SIGILL";
        case SIGABRT:
            return "SIGABRT";
        default:
            return "signal";
    }
}

/// UTC, RFC 3339 with milliseconds, from the civil-from-days algorithm (no gmtime: not
/// async-signal-safe).
void add_now(Line& line) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    const long long secs = ts.tv_sec;
    long long days = secs / 86400;
    const long long rem = secs % 86400;
    days += 719468;
    const long long era = days / 146097;
    const long long doe = days - era * 146097;
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long long mp = (5 * doy + 2) / 153;
    const long long day = doy - (153 * mp + 2) / 5 + 1;
    const long long month = mp < 10 ? mp + 3 : mp - 9;
    const long long year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    line.add_unsigned(static_cast<unsigned long long>(year), 4);
    line.add("-");
    line.add_unsigned(static_cast<unsigned long long>(month), 2);
    line.add("-");
    line.add_unsigned(static_cast<unsigned long long>(day), 2);
    line.add("T");
    line.add_unsigned(static_cast<unsigned long long>(rem / 3600), 2);
    line.add(":");
    line.add_unsigned(static_cast<unsigned long long>(rem / 60 % 60), 2);
    line.add(":");
    line.add_unsigned(static_cast<unsigned long long>(rem % 60), 2);
    line.add(".");
    line.add_unsigned(static_cast<unsigned long long>(ts.tv_nsec / 1000000), 3);
    line.add("Z");
}

void on_fatal_signal(int sig, siginfo_t* info, void* /*context*/) {
    const int saved_errno = errno;
    // The lines logged just before, if no thread is in the middle of writing them.
    if (ftrylockfile(stdout) == 0) {
        fflush_unlocked(stdout);
        funlockfile(stdout);
    }
    void* frames[64];
    const int depth = backtrace(frames, 64);
    char thread_name[17] = {};
    prctl(PR_GET_NAME, thread_name, 0, 0, 0);
    Line line;
    line.add("{\"ts\":\"");
    add_now(line);
    line.add("\",\"level\":\"critical\",\"service\":\"");
    line.add_json_text(g_service);
    line.add("\",\"msg\":\"fatal signal\",\"signal\":\"");
    line.add(signal_name(sig));
    line.add("\",\"fault_address\":\"0x");
    line.add_unsigned(reinterpret_cast<std::uintptr_t>(info != nullptr ? info->si_addr : nullptr),
                      0, 16);
    line.add("\",\"thread_id\":");
    line.add_unsigned(static_cast<unsigned long long>(syscall(SYS_gettid)));
    line.add(",\"thread\":\"");
    line.add_json_text(thread_name);
    line.add("\",\"frames\":");
    line.add_unsigned(static_cast<unsigned long long>(depth));
    line.add(",\"note\":\"the stack follows, one frame per line\"}\n");
    line.flush(STDERR_FILENO);
    backtrace_symbols_fd(frames, depth, STDERR_FILENO);
    // Die of it as without this handler (SA_RESETHAND put the default back): a fault
    // re-executes the faulting instruction on return, a raised signal is raised again.
    errno = saved_errno;
    if (info == nullptr || info->si_code <= 0) raise(sig);
}

}  // namespace

void install_crash_report(std::string_view service) {
    const std::size_t n = std::min(service.size(), sizeof(g_service) - 1);
    std::memcpy(g_service, service.data(), n);
    g_service[n] = '\0';
    if (g_installed.exchange(true)) return;
    void* warm[1];
    backtrace(warm, 1);  // loads libgcc's unwinder now, not inside the handler
    stack_t alt{};
    alt.ss_sp = g_alt_stack;
    alt.ss_size = sizeof(g_alt_stack);
    sigaltstack(&alt, nullptr);
    struct sigaction action {};
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (const int sig : kSignals) sigaction(sig, &action, nullptr);
}

}  // namespace orderpipe
