# forge_add_extension(<name> SOURCES ... [COMPILE_OPTIONS ...] [LINK_OPTIONS ...])
# One abi3 Python module (no pybind) linked against torch, installed at the root of
# the install prefix, which setup.py points at the vllm_forge package folder.
function(forge_add_extension name)
  cmake_parse_arguments(ARG "" "" "SOURCES;COMPILE_OPTIONS;LINK_OPTIONS" ${ARGN})
  Python_add_library(${name} MODULE USE_SABI 3.9 WITH_SOABI ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/csrc")
  target_compile_options(${name} PRIVATE ${ARG_COMPILE_OPTIONS})
  target_link_options(${name} PRIVATE ${ARG_LINK_OPTIONS})
  # torch's CMake target brings its include paths and ABI flags; not torch_python:
  # the module talks to Python only through the limited API.
  target_link_libraries(${name} PRIVATE torch)
  install(TARGETS ${name} LIBRARY DESTINATION .)
endfunction()

# forge_glob_sources(<var> <folder> <extension>): every <folder>/*.<extension> of the
# source tree, sorted. Found at configure time and re-checked at each build
# (CONFIGURE_DEPENDS), so a new op's launcher and kernel files are built by being there:
# adding an op touches no CMake list.
function(forge_glob_sources var folder ext)
  file(GLOB found CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${folder}/*.${ext}")
  list(SORT found)
  set(${var} ${found} PARENT_SCOPE)
endfunction()
