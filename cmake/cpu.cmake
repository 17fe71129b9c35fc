# C++ CPU kernels. OpenMP comes from torch's own libgomp.so.1 at run time (same
# soname, already loaded by torch), so our threads and torch's share one runtime and
# obey torch.set_num_threads, which vLLM's CPU worker uses to bind threads.
set(FORGE_CPU_SOURCES
  csrc/cpu/activation.cpp
  csrc/cpu/paged_attention.cpp
  csrc/cpu/reshape_and_cache.cpp
  csrc/cpu/rms_norm.cpp
  csrc/cpu/rotary_embedding.cpp
  csrc/cpu/softmax.cpp)

# Baseline x86-64 code for now; runtime ISA dispatch (AVX2, AVX-512) is separate work.
set(FORGE_CPU_COMPILE_OPTIONS -O3 -fopenmp -Wall -Wextra -Wno-unused-parameter)
set(FORGE_CPU_LINK_OPTIONS -fopenmp)
