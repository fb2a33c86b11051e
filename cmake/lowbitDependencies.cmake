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
