# CUDA kernels. The kernels are torch-free .cu files (csrc/cuda/kernels/): nvcc compiles
# each in seconds, once per architecture in FORGE_CUDA_ARCHS. The launchers
# (csrc/cuda/<op>.cpp) own the torch side (checks, device guard, stream) and are compiled
# by the host compiler with the rest of the module.

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# One launcher (csrc/cuda/<op>.cpp) and one kernel file (csrc/cuda/kernels/<op>.cu) per op
# family, found by name (cmake/utils.cmake).
forge_glob_sources(FORGE_CUDA_SOURCES csrc/cuda cpp)
forge_glob_sources(FORGE_CUDA_KERNEL_SOURCES csrc/cuda/kernels cu)
add_library(forge_cuda_kernels OBJECT ${FORGE_CUDA_KERNEL_SOURCES})
target_include_directories(forge_cuda_kernels PRIVATE "${PROJECT_SOURCE_DIR}/csrc")
# Real code for each listed architecture (sm_XX) plus PTX of the newest, so newer GPUs
# can JIT it.
set_target_properties(forge_cuda_kernels PROPERTIES
  CUDA_ARCHITECTURES "${FORGE_CUDA_ARCH_LIST}"
  CUDA_STANDARD 20
  POSITION_INDEPENDENT_CODE ON)
# No --use_fast_math: it turns tanhf into tanh.approx (rel. error ~5e-4), too coarse for
# gelu-tanh and soft-cap; the kernels call __expf explicitly where speed matters.
target_compile_options(forge_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3>)
list(APPEND FORGE_CUDA_SOURCES $<TARGET_OBJECTS:forge_cuda_kernels>)
set(FORGE_CUDA_LIBRARIES CUDA::cudart)
