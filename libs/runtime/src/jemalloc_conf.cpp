// jemalloc's settings, compiled into each daemon (cmake/OrderpipeWarnings.cmake,
// orderpipe_service): jemalloc reads this symbol at its start, then MALLOC_CONF from the
// environment, which still decides (docs/ARCHITECTURE.md "Memory").
//
// Two arenas instead of 4 per core: a daemon has ~20 threads, and each arena keeps what its
// threads freed for reuse. With two, the services peaked at 30-50 MiB at saturation (the
// contract's figure is 64); the default was not measured against it.

extern "C" {
// The name and type are jemalloc's (its documentation, "TUNING"); it must be an exported global.
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
const char* malloc_conf = "narenas:2";
}
