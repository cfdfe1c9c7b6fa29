# Installing: the libraries, the public header, the mixc binary, a pkg-config
# file and a CMake package (find_package(mixc) gives mixc::mixc, the shared
# library, and mixc::mixc_static). Only include/mixc.h is public.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(mixcshared PROPERTIES EXPORT_NAME mixc)
set_target_properties(mixclib PROPERTIES EXPORT_NAME mixc_static)
set_target_properties(mixcshared mixclib PROPERTIES PUBLIC_HEADER ${CMAKE_SOURCE_DIR}/include/mixc.h)
# The installed targets carry only the public header and the system
# libraries; the build's include folders stay behind.
target_include_directories(mixcshared INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(mixclib INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(mixc PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")

install(TARGETS mixc mixcshared mixclib mixcusage EXPORT mixcTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT mixcTargets NAMESPACE mixc:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mixc)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/mixcConfig.cmake.in
  ${CMAKE_BINARY_DIR}/mixcConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mixc)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/mixcConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/mixcConfig.cmake ${CMAKE_BINARY_DIR}/mixcConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mixc)
# The .pc file finds the prefix from where it lies, so that
# `cmake --install --prefix DIR` gives a working one in any DIR.
file(RELATIVE_PATH MIXC_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
configure_file(${CMAKE_SOURCE_DIR}/cmake/mixc.pc.in ${CMAKE_BINARY_DIR}/mixc.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/mixc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
