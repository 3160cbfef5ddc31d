# packaging/packaging.cmake - man pages, and with -DRINGMQ_PACKAGE=ON the
# service files and the Debian package (cpack -G DEB).
#
# The man pages (packaging/man/*.1, generated from --help by
# scripts/gen-man.py and committed) are gzipped at build time and installed
# with every install. The systemd unit and /etc/ringmq/ringmq.conf have
# absolute destinations: only a packaging build (RINGMQ_PACKAGE=ON, with
# CMAKE_INSTALL_PREFIX=/usr) installs them, so `cmake --install --prefix
# DIR` never writes to /etc.

set(_man_pages ringmq-server ringmq-pub ringmq-sub ringmq-bench)
set(_man_gz)
foreach(p ${_man_pages})
  add_custom_command(
    OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/man/${p}.1.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
    COMMAND gzip -9n -c ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man/${p}.1
            > ${CMAKE_CURRENT_BINARY_DIR}/man/${p}.1.gz
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man/${p}.1
    VERBATIM)
  list(APPEND _man_gz ${CMAKE_CURRENT_BINARY_DIR}/man/${p}.1.gz)
endforeach()
add_custom_target(ringmq-man ALL DEPENDS ${_man_gz})
install(FILES ${_man_gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

option(RINGMQ_PACKAGE "Install the systemd unit and /etc/ringmq/ringmq.conf (for cpack -G DEB)" OFF)
if(RINGMQ_PACKAGE)
  install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/packaging/ringmq.service
          DESTINATION /lib/systemd/system)
  install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/packaging/ringmq.conf DESTINATION /etc/ringmq)

  set(CPACK_GENERATOR DEB)
  set(CPACK_PACKAGE_NAME ringmq)
  set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
  set(CPACK_PACKAGE_CONTACT "ringmq maintainers <ringmq@localhost>")
  set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "publish/subscribe message broker speaking RESP")
  set(CPACK_PACKAGE_DESCRIPTION
    "ringmq is a high-throughput publish/subscribe broker speaking the Redis protocol, with\n"
    "durable subscribers and disk topics. The package has the server (a systemd service),\n"
    "ringmq-pub, ringmq-sub, ringmq-bench, and the C client library with its header and\n"
    "ringmq.pc.")
  set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
  set(CPACK_DEBIAN_PACKAGE_SECTION net)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_SOURCE_DIR}/packaging/postinst
    ${CMAKE_CURRENT_SOURCE_DIR}/packaging/conffiles)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
  set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
  include(CPack)
endif()
