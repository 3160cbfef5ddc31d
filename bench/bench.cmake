# bench/bench.cmake - ringmq-bench, the perf/ micro-benchmarks, and their
# tests. Included by the top-level CMakeLists.txt.
#
#   build/ringmq-bench --help        the load generator / harness
#   build/ringmq-micro all           ns/op of topic lookup, log append, RESP parse
#   ctest -L bench                   histogram/statistics unit tests + end-to-end
#
# ringmq-bench needs only libc, pthreads and (for --tls) OpenSSL: raw RESP
# and NATS clients, so the harness is the same binary against every broker.

set(RB_DIR ${CMAKE_CURRENT_LIST_DIR})
set(RB_PERF_DIR ${CMAKE_CURRENT_LIST_DIR}/../perf)

add_library(ringmq_bench STATIC
  ${RB_DIR}/hist.c ${RB_DIR}/stats.c ${RB_DIR}/wire.c ${RB_DIR}/net.c
  ${RB_DIR}/proc.c ${RB_DIR}/run.c ${RB_DIR}/report.c ${RB_DIR}/conns.c)
target_include_directories(ringmq_bench PUBLIC ${RB_DIR})
# ringmq_common: the number parsing the other tools use (common/).
# OpenSSL: --tls (net.c's transport, certificates for the servers it starts).
target_link_libraries(ringmq_bench PUBLIC ringmq_common Threads::Threads m PRIVATE
  PkgConfig::OPENSSL)
ringmq_warnings(ringmq_bench)

# --cluster (cluster.c) drives the nodes through the C client library's
# cluster mode (and hiredis for CLUSTER SLOTS): only that part needs them.
if(NOT TARGET PkgConfig::HIREDIS)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
endif()
add_executable(ringmq-bench ${RB_DIR}/main.c ${RB_DIR}/cluster.c)
target_link_libraries(ringmq-bench PRIVATE ringmq_bench ringmq PkgConfig::HIREDIS)
ringmq_warnings(ringmq-bench)
install(TARGETS ringmq-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# perf/: micro-benchmarks of the hot pieces, linked against the real code.
add_executable(ringmq-micro
  ${RB_PERF_DIR}/micro.c ${RB_PERF_DIR}/micro_topic.c ${RB_PERF_DIR}/micro_log.c
  ${RB_PERF_DIR}/micro_resp.c ${RB_PERF_DIR}/micro_disk.c)
target_include_directories(ringmq-micro PRIVATE ${RB_PERF_DIR})
target_link_libraries(ringmq-micro PRIVATE ringmq_net ringmq_core)
ringmq_warnings(ringmq-micro)

if(RINGMQ_BUILD_TESTS)
  set(RB_TEST_TIMEOUT 120)
  if(NOT RINGMQ_SANITIZE STREQUAL "thread")
    if(NOT TARGET PkgConfig::CRITERION)
      pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
    endif()
    foreach(t hist stats wire)
      add_executable(test_bench_${t} ${RB_DIR}/test_${t}.c)
      target_link_libraries(test_bench_${t} PRIVATE ringmq_bench PkgConfig::CRITERION)
      ringmq_warnings(test_bench_${t})
      add_test(NAME bench.${t} COMMAND test_bench_${t} -j1 --ascii)
      set_tests_properties(bench.${t} PROPERTIES
        TIMEOUT ${RB_TEST_TIMEOUT}
        LABELS "bench;unit"
        FAIL_REGULAR_EXPRESSION "Tested: 0 ")
    endforeach()
  endif()

  # Every scenario, briefly, against a live ringmq-server it starts itself
  # (--port 0), checking the counts in the --json report. Redis and NATS
  # are not needed (nor used): the peer checks are documented in
  # bench/README.md and run by hand.
  find_program(RB_PYTHON3 python3 REQUIRED)
  add_test(NAME bench.e2e
    COMMAND ${CMAKE_COMMAND} -E env PYTHON3=${RB_PYTHON3}
            bash ${RB_DIR}/e2e_test.sh $<TARGET_FILE:ringmq-server> $<TARGET_FILE:ringmq-bench>
            ${CMAKE_CURRENT_BINARY_DIR}/bench-e2e)
  math(EXPR rb_e2e_timeout "240 * ${RINGMQ_TEST_TIME_SCALE}")
  set_tests_properties(bench.e2e PROPERTIES
    TIMEOUT ${rb_e2e_timeout}
    LABELS "bench;e2e"
    RUN_SERIAL TRUE)
endif()
