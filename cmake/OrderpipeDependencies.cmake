# Every dependency comes from Debian packages installed by scripts/setup.sh; nothing is fetched here.
find_package(PkgConfig REQUIRED)
# librdkafka's header is Debian's (librdkafka-dev). The library linked: ORDERPIPE_LIBRDKAFKA=auto
# (the default: the librdkafka 2.8.0 scripts/setup.sh fetched into the cache from the
# confluent-kafka wheel, same C ABI, when it is there; Debian's 2.0.2 otherwise), bundled (that
# one, required to be there) or debian. Why 2.8.0: docs/BENCHMARKS.md "librdkafka". Every target
# links orderpipe_rdkafka.
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka>=2.0)
set(ORDERPIPE_LIBRDKAFKA "auto" CACHE STRING "librdkafka to link: debian, bundled or auto")
set_property(CACHE ORDERPIPE_LIBRDKAFKA PROPERTY STRINGS debian bundled auto)
if(DEFINED ENV{ORDERPIPE_CACHE_DIR} AND NOT "$ENV{ORDERPIPE_CACHE_DIR}" STREQUAL "")
  set(_orderpipe_cache "$ENV{ORDERPIPE_CACHE_DIR}")
else()
  set(_orderpipe_cache "$ENV{HOME}/.cache/orderpipe")
endif()
set(ORDERPIPE_LIBRDKAFKA_BUNDLED "${_orderpipe_cache}/librdkafka/lib/librdkafka.so"
    CACHE FILEPATH "the librdkafka scripts/setup.sh fetched (a link to its librdkafka-*.so.1)")
add_library(orderpipe_rdkafka INTERFACE)
if(ORDERPIPE_LIBRDKAFKA STREQUAL "bundled"
   OR (ORDERPIPE_LIBRDKAFKA STREQUAL "auto" AND EXISTS "${ORDERPIPE_LIBRDKAFKA_BUNDLED}"))
  if(NOT EXISTS "${ORDERPIPE_LIBRDKAFKA_BUNDLED}")
    message(FATAL_ERROR "ORDERPIPE_LIBRDKAFKA=bundled but ${ORDERPIPE_LIBRDKAFKA_BUNDLED} is "
                        "missing: run scripts/setup.sh (or use -DORDERPIPE_LIBRDKAFKA=debian or auto)")
  endif()
  get_filename_component(_rdkafka_real "${ORDERPIPE_LIBRDKAFKA_BUNDLED}" REALPATH)
  # The full path: its SONAME (librdkafka-<hash>.so.1) is what the binaries will need, found
  # through the build RPATH CMake sets to its directory (and the install RPATH below).
  target_link_libraries(orderpipe_rdkafka INTERFACE "${_rdkafka_real}")
  target_include_directories(orderpipe_rdkafka INTERFACE ${RDKAFKA_INCLUDE_DIRS})
  set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
  set(ORDERPIPE_LIBRDKAFKA_USED "${_rdkafka_real}")
else()
  target_link_libraries(orderpipe_rdkafka INTERFACE PkgConfig::RDKAFKA)
  set(ORDERPIPE_LIBRDKAFKA_USED "Debian's ${RDKAFKA_VERSION} (${RDKAFKA_LINK_LIBRARIES})")
endif()
message(STATUS "librdkafka: ${ORDERPIPE_LIBRDKAFKA_USED}")
# The daemons allocate with jemalloc (Debian's libjemalloc-dev): with glibc's malloc, allocating
# and freeing was 30 % of the order-service's CPU at saturation; jemalloc cut the services' CPU
# per order by a tenth to a half (docs/BENCHMARKS.md "Allocator"). -DORDERPIPE_JEMALLOC=OFF links glibc's.
option(ORDERPIPE_JEMALLOC "link the daemons with jemalloc" ON)
add_library(orderpipe_allocator INTERFACE)
if(ORDERPIPE_JEMALLOC)
  find_library(ORDERPIPE_JEMALLOC_LIBRARY NAMES jemalloc REQUIRED)
  target_link_libraries(orderpipe_allocator INTERFACE ${ORDERPIPE_JEMALLOC_LIBRARY})
  message(STATUS "allocator: jemalloc (${ORDERPIPE_JEMALLOC_LIBRARY})")
else()
  message(STATUS "allocator: glibc's malloc")
endif()
find_package(nlohmann_json 3.11 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(Boost 1.81 REQUIRED)
find_package(prometheus-cpp REQUIRED COMPONENTS core)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL 15 REQUIRED)  # libpq only (Debian libpq-dev)
find_package(CURL REQUIRED)
# The console hashes operator tokens (SHA-256): OpenSSL's libcrypto, which librdkafka and libcurl
# already bring (Debian libssl-dev).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
if(ORDERPIPE_BUILD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
endif()
