# Installation (cmake --install) and the Debian package (cpack -G DEB).
#   cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build
#   cmake --install build            or   (cd build && cpack -G DEB)
include(GNUInstallDirs)

install(TARGETS kacheryfs kacheryfs-cache RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# mount(8) looks for helpers in /sbin only (which is /usr/sbin on a merged-usr system such
# as Debian 12), whatever the install prefix; the helper runs kacheryfs by absolute path.
set(KACHERYFS_MOUNT_HELPER_DIR "/usr/sbin" CACHE PATH
  "where mount.kacheryfs goes (mount(8) searches /sbin, which is /usr/sbin on merged-usr)")
# The build tree's helper (for the tests) names the configured prefix; the installed one is
# written at install time with the prefix of that install, so that a .deb's helper (cpack
# installs under /usr whatever the build was configured with) runs the package's kacheryfs,
# never one left in /usr/local by an earlier cmake --install.
set(KACHERYFS_INSTALLED_BIN "${CMAKE_INSTALL_FULL_BINDIR}/kacheryfs")
configure_file(${PROJECT_SOURCE_DIR}/packaging/mount.kacheryfs.in
  ${PROJECT_BINARY_DIR}/mount.kacheryfs @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE
  OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
install(CODE "
  set(KACHERYFS_INSTALLED_BIN \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/kacheryfs\")
  configure_file(\"${PROJECT_SOURCE_DIR}/packaging/mount.kacheryfs.in\"
    \"${PROJECT_BINARY_DIR}/installed/mount.kacheryfs\" @ONLY)
")
install(PROGRAMS ${PROJECT_BINARY_DIR}/installed/mount.kacheryfs
  DESTINATION ${KACHERYFS_MOUNT_HELPER_DIR})

# Man pages, compressed as Debian wants them (gzip -9n: reproducible).
set(man_pages kacheryfs.1 kacheryfs-cache.1 mount.kacheryfs.8)
set(compressed_man_pages)
foreach(page ${man_pages})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  set(out ${PROJECT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/man/${page} > ${out}
    DEPENDS ${PROJECT_SOURCE_DIR}/man/${page} VERBATIM)
  list(APPEND compressed_man_pages ${out})
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${compressed_man_pages})

# A native package (no Debian revision): the changelog is changelog.gz.
set(changelog ${PROJECT_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${changelog}
  COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/packaging/changelog > ${changelog}
  DEPENDS ${PROJECT_SOURCE_DIR}/packaging/changelog VERBATIM)
add_custom_target(debian_changelog ALL DEPENDS ${changelog})
set(docdir ${CMAKE_INSTALL_DATAROOTDIR}/doc/kacheryfs)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright ${changelog} ${PROJECT_SOURCE_DIR}/README.md
  DESTINATION ${docdir})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/kacheryfs@.service
  ${PROJECT_SOURCE_DIR}/packaging/systemd/kachery.mount
  ${PROJECT_SOURCE_DIR}/packaging/systemd/kachery.automount
  ${PROJECT_SOURCE_DIR}/packaging/prometheus/kacheryfs-alerts.yml
  ${PROJECT_SOURCE_DIR}/packaging/prometheus/kacheryfs-metrics.service
  ${PROJECT_SOURCE_DIR}/packaging/prometheus/kacheryfs-metrics.timer
  DESTINATION ${docdir}/examples)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kacheryfs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "kacheryfs developers <kacheryfs@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "FUSE filesystem for the content of a kachery node")
set(CPACK_PACKAGE_DESCRIPTION "kacheryfs mounts the content of a kachery daemon read-only,
addressed by SHA-1: MOUNTPOINT/sha1/<hash>. Files are fetched over the
daemon's HTTP API on first use, verified, and kept in a persistent local
cache that keeps working offline. It replaces the NFS export of kachery's
shared-node setup.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# postrm: purge removes root's cache dir (remove keeps it).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/postrm)
include(CPack)
