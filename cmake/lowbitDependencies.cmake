# Finds lowbit's dependencies; shared by the build and the installed package config.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.4 NO_MODULE)
find_dependency(Threads)
# Debian's xsimd 8 package names a link dependency on the header-only xtl library
# without depending on its package; lowbit does not use xtl, so drop the dangling
# name when no xtl target exists instead of passing -lxtl to the linker.
find_package(xtl QUIET)
find_dependency(xsimd 8)
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_lowbit_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
  if(_lowbit_xsimd_libs)
    list(REMOVE_ITEM _lowbit_xsimd_libs xtl)
    set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "${_lowbit_xsimd_libs}")
  endif()
endif()

# LOWBIT_BLAS_USED (openblas or none) is the resolved choice: set by the build's
# LOWBIT_BLAS option, or by lowbitConfig.cmake for an installed package. OpenBLAS's
# CMake package (as Debian ships it) only sets variables; lowbit::openblas wraps them.
if(LOWBIT_BLAS_USED STREQUAL "openblas" AND NOT TARGET lowbit::openblas)
  find_dependency(OpenBLAS CONFIG)
  add_library(lowbit::openblas INTERFACE IMPORTED)
  set_target_properties(lowbit::openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}"
    INTERFACE_COMPILE_DEFINITIONS LOWBIT_HAS_BLAS=1)
endif()
