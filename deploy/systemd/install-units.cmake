# Runs at install time (install(SCRIPT) in CMakeLists.txt): writes the units
# with the paths of this install and installs them. CMAKE_INSTALL_PREFIX is
# the prefix in force now (--prefix included); DESTDIR is added by
# file(INSTALL) to where the files go, never to the paths inside them.
foreach(var TAPMESH_UNIT_SOURCE_DIR TAPMESH_UNIT_WORK_DIR TAPMESH_UNIT_BINDIR
            TAPMESH_UNIT_UNITDIR TAPMESH_UNIT_CONFDIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install-units.cmake: ${var} is not set (run through cmake --install)")
  endif()
endforeach()

# the programs' install(TARGETS ... RUNTIME DESTINATION bin) puts them here
if(IS_ABSOLUTE "${TAPMESH_UNIT_BINDIR}")
  set(TAPMESH_BINDIR "${TAPMESH_UNIT_BINDIR}")
else()
  set(TAPMESH_BINDIR "${CMAKE_INSTALL_PREFIX}/${TAPMESH_UNIT_BINDIR}")
endif()
if(IS_ABSOLUTE "${TAPMESH_UNIT_UNITDIR}")
  set(unitdir "${TAPMESH_UNIT_UNITDIR}")
else()
  set(unitdir "${CMAKE_INSTALL_PREFIX}/${TAPMESH_UNIT_UNITDIR}")
endif()
set(TAPMESH_CONFDIR "${TAPMESH_UNIT_CONFDIR}")

set(units)
foreach(unit tapmesh-capture@.service tapmesh-relay.service tapmesh-collect.service)
  configure_file("${TAPMESH_UNIT_SOURCE_DIR}/${unit}.in" "${TAPMESH_UNIT_WORK_DIR}/${unit}" @ONLY)
  list(APPEND units "${TAPMESH_UNIT_WORK_DIR}/${unit}")
endforeach()
file(INSTALL ${units} DESTINATION "${unitdir}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
