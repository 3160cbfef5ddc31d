# net/client.cmake - the client side, included by the top-level CMakeLists.txt:
#   ringmq        C client library on hiredis (net/client.c, public header
#                 net/ringmq.h), installed with ringmq.pc
#   ringmq-pub    create/delete topics, publish (cli/ringmq_pub.c)
#   ringmq-sub    live and durable subscriber (cli/ringmq_sub.c)
#   tests/client  Criterion tests of the library and end-to-end CLI tests
include(GNUInstallDirs)
if(NOT TARGET PkgConfig::HIREDIS)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
endif()

add_library(ringmq STATIC net/client.c)
set_target_properties(ringmq PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(ringmq PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/net>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_definitions(ringmq PRIVATE RINGMQ_VERSION="${PROJECT_VERSION}")
target_link_libraries(ringmq PRIVATE PkgConfig::HIREDIS Threads::Threads)

foreach(tool ringmq_pub ringmq_sub)
  string(REPLACE "_" "-" exe ${tool})
  add_executable(${exe} cli/${tool}.c cli/client_common.c)
  target_link_libraries(${exe} PRIVATE ringmq)
endforeach()

# pkg-config: a static libringmq needs hiredis at link time, so it is a
# public requirement then; a shared one keeps it private.
get_target_property(_ringmq_type ringmq TYPE)
if(_ringmq_type STREQUAL "STATIC_LIBRARY")
  set(RINGMQ_PC_REQUIRES "Requires")
else()
  set(RINGMQ_PC_REQUIRES "Requires.private")
endif()
# Paths relative to the .pc file itself, so that `cmake --install --prefix
# DIR` yields a working ringmq.pc wherever DIR is.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(RINGMQ_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(RINGMQ_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  string(REGEX REPLACE "[^/]+" ".." _ringmq_up "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(RINGMQ_PC_PREFIX "\${pcfiledir}/${_ringmq_up}")
  set(RINGMQ_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(RINGMQ_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(RINGMQ_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/net/ringmq.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ringmq.pc @ONLY)

install(TARGETS ringmq ringmq-pub ringmq-sub
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/net/ringmq.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ringmq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

if(RINGMQ_TESTS)
  add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/tests/client ${CMAKE_BINARY_DIR}/tests/client)
endif()
