"""Build vllm_forge._C with CMake and Ninja.

Always build with --no-build-isolation (see README): the extension must be compiled
against the torch that will import it. Environment:
  FORGE_TARGET_DEVICE  cpu | cuda | auto (default auto: cuda when torch is a CUDA build
                       and a toolkit is found)
  FORGE_CUDA_ARCHS     compute capabilities for the CUDA kernels (default "8.0;9.0")
  CUDA_HOME            the CUDA toolkit (default /usr/local/cuda); point it at the real
                       folder, not at a wrapper script of nvcc
  MAX_JOBS             parallel compile jobs (default: CPU count, capped by memory)
  FORGE_BUILD_DIR      CMake build folder (default build/cmake-<python tag>-<torch flavour>);
                       reused between builds so that a rebuild only recompiles what changed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()


def default_jobs() -> int:
    """One job per core, but no more than one per 2.5 GB of RAM (torch headers are heavy)."""
    cpus = os.cpu_count() or 1
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return cpus
    return max(1, min(cpus, int(mem_gb / 2.5)))


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[], py_limited_api=True)


def cuda_args(torch) -> list[str]:
    """CMake arguments that find the CUDA toolkit, for a CUDA build of torch."""
    if torch.version.cuda is None or os.environ.get("FORGE_TARGET_DEVICE") == "cpu":
        return []
    args = []
    cuda_home = Path(os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda")
    if (cuda_home / "bin" / "nvcc").exists():
        nvcc = (cuda_home / "bin" / "nvcc").resolve()
        args += [f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DCUDAToolkit_ROOT={cuda_home.resolve()}",
                 f"-DCUDA_TOOLKIT_ROOT_DIR={cuda_home.resolve()}"]
    if os.environ.get("FORGE_CUDA_ARCHS"):
        args.append(f"-DFORGE_CUDA_ARCHS={os.environ['FORGE_CUDA_ARCHS']}")
    return args


def tool(name: str) -> str:
    """Prefer the tool installed beside this Python (pip's cmake and ninja are recent)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import torch  # the torch we build against; must already be installed

        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        flavour = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
        default_dir = ROOT / "build" / f"cmake-py{sys.version_info[0]}{sys.version_info[1]}-{flavour}"
        build_dir = Path(os.environ.get("FORGE_BUILD_DIR", default_dir)).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        jobs = os.environ.get("MAX_JOBS") or str(default_jobs())
        configure = [
            tool("cmake"),
            "-S", str(ROOT),
            "-B", str(build_dir),
            "-G", "Ninja",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
            f"-DCMAKE_INSTALL_PREFIX={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}",
            f"-DFORGE_TARGET_DEVICE={os.environ.get('FORGE_TARGET_DEVICE', 'auto')}",
            *cuda_args(torch),
        ]
        print(f"vllm-forge: building against torch {torch.__version__} with {jobs} jobs in {build_dir}")
        subprocess.run(configure, check=True)
        subprocess.run([tool("cmake"), "--build", str(build_dir), "-j", jobs], check=True)
        subprocess.run([tool("cmake"), "--install", str(build_dir)], check=True)

    def copy_extensions_to_source(self) -> None:
        """In-place and editable builds: setuptools copies the .so; the build info
        that CMake installed beside it must follow."""
        super().copy_extensions_to_source()
        built = Path(self.build_lib) / "vllm_forge" / "_build_info.py"
        shutil.copy2(built, ROOT / "python" / "vllm_forge" / "_build_info.py")


setup(
    ext_modules=[CMakeExtension("vllm_forge._C")],
    cmdclass={"build_ext": CMakeBuild},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
