# orderpipe_target_defaults(<target>): warnings and sanitizers, per target (no global flags).
function(orderpipe_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wpedantic)
  if(ORDERPIPE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(ORDERPIPE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  elseif(ORDERPIPE_TSAN)
    # -Wno-tsan: GCC 12 warns on atomic_thread_fence inside Asio, which TSan does not model.
    target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  endif()
endfunction()

# orderpipe_service(<name> SOURCES <src...> [PRIVATE_LIBS <lib...>]): a service daemon. Its code
# is one library, <name>_lib with `_` for `-` (e.g. order_service_lib), linked into both the
# daemon (<name>, from src/main.cpp) and the tests.
function(orderpipe_service name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PRIVATE_LIBS" ${ARGN})
  string(REPLACE "-" "_" lib "${name}_lib")
  add_library(${lib} STATIC ${ARG_SOURCES})
  target_include_directories(${lib} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${lib}
    PUBLIC orderpipe::runtime orderpipe::contract prometheus-cpp::core
    PRIVATE ${ARG_PRIVATE_LIBS})
  orderpipe_target_defaults(${lib})
  add_executable(${name} src/main.cpp ${PROJECT_SOURCE_DIR}/libs/runtime/src/jemalloc_conf.cpp)
  target_link_libraries(${name} PRIVATE ${lib} orderpipe_allocator)
  orderpipe_target_defaults(${name})
  install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()
