# Stub for _build_info.py, which CMake generates at build time (cmake/_build_info.py.in),
# so that mypy can check the package on a checkout that has not been built (make lint).
TORCH_VERSION: str
TARGETS: tuple[str, ...]
BUILD_TYPE: str
CXX_COMPILER: str
CPU_ISAS: tuple[str, ...]
