# C++ CPU kernels. OpenMP comes from torch's own libgomp.so.1 at run time (same
# soname, already loaded by torch), so our threads and torch's share one runtime and
# obey torch.set_num_threads, which vLLM's CPU worker uses to bind threads.

# Launchers: the CPU half of the torch glue, one csrc/cpu/<op>.cpp per op family (checks
# and Args: csrc/launch/), compiled once for the baseline target; and the shared-memory
# collectives and the ISA choice.
forge_glob_sources(FORGE_CPU_SOURCES csrc/cpu cpp)
list(APPEND FORGE_CPU_SOURCES csrc/cpu/shm/shm_group.cpp csrc/cpu/kernels/isa_select.cpp)

# -Wno-psabi: 64-byte vector arguments of inline kernel helpers never cross a TU boundary.
# Sanitized builds (CMakeLists.txt) at -O1: a fraction of the compile time of the four
# kernel-table variants, and the same checks.
if(FORGE_SANITIZE)
  set(FORGE_CPU_OPT_LEVEL -O1)
else()
  set(FORGE_CPU_OPT_LEVEL -O3)
endif()
set(FORGE_CPU_COMPILE_OPTIONS ${FORGE_CPU_OPT_LEVEL} -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-psabi)
set(FORGE_CPU_LINK_OPTIONS -fopenmp)

# The torch-free kernels, once per instruction set (kernel_table.h says how one is
# picked at run time). Each variant lives in its own namespace, forge::cpu::<isa>.
set(FORGE_CPU_ISAS baseline)
set(FORGE_CPU_ISA_FLAGS_baseline "")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  list(APPEND FORGE_CPU_ISAS avx2 avx512 avx512bf16)
  set(FORGE_CPU_ISA_FLAGS_avx2 -mavx2 -mfma -mf16c)
  set(FORGE_CPU_ISA_FLAGS_avx512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c
      -mprefer-vector-width=512)
  # Every CPU with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4) has AVX512-VNNI too:
  # quant_gemm's int8 path (quantize_x) uses it.
  set(FORGE_CPU_ISA_FLAGS_avx512bf16 ${FORGE_CPU_ISA_FLAGS_avx512} -mavx512bf16 -mavx512vnni)
endif()

set(FORGE_CPU_KERNEL_OBJECTS)
foreach(isa IN LISTS FORGE_CPU_ISAS)
  add_library(forge_cpu_kernels_${isa} OBJECT csrc/cpu/kernels/kernel_table.cpp)
  target_include_directories(forge_cpu_kernels_${isa} PRIVATE "${PROJECT_SOURCE_DIR}/csrc")
  target_compile_definitions(forge_cpu_kernels_${isa} PRIVATE FORGE_ISA=${isa})
  target_compile_options(forge_cpu_kernels_${isa} PRIVATE ${FORGE_CPU_COMPILE_OPTIONS}
                         ${FORGE_CPU_ISA_FLAGS_${isa}} -Werror=missing-field-initializers)
  set_target_properties(forge_cpu_kernels_${isa} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  list(APPEND FORGE_CPU_KERNEL_OBJECTS $<TARGET_OBJECTS:forge_cpu_kernels_${isa}>)
  if(NOT isa STREQUAL "baseline")
    string(TOUPPER ${isa} ISA_UPPER)
    list(APPEND FORGE_CPU_DEFINITIONS FORGE_HAVE_${ISA_UPPER})
  endif()
endforeach()
list(APPEND FORGE_CPU_SOURCES ${FORGE_CPU_KERNEL_OBJECTS})
