"""Every CPU kernel variant this machine can run passes the kernel tests: the default
(best) variant runs in the main test session, the others here, in subprocesses with
FORGE_CPU_ISA set (the variant is chosen once per process)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_forge import extension, info

pytestmark = pytest.mark.cpu_only

HERE = Path(__file__).resolve().parent
DEFAULT, RUNNABLE = extension.cpu_kernel_isa()
OTHERS = [isa for isa in RUNNABLE.split(",") if isa and isa != DEFAULT]


# The CPU flags (as Linux names them in /proc/cpuinfo) each variant needs, best first.
VARIANT_FLAGS = {
    "avx512bf16": {
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "fma",
        "f16c",
        "avx512_bf16",
        "avx512_vnni",
    },
    "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "f16c"},
    "avx2": {"avx2", "fma", "f16c"},
    "baseline": set(),
}


@pytest.mark.skipif(
    not Path("/proc/cpuinfo").exists() or platform.machine() != "x86_64",
    reason="reads the x86 CPU flags from Linux's /proc/cpuinfo",
)
def test_default_is_best_runnable():
    """The library's choice agrees with the CPU's flags read independently of it: every
    compiled variant whose flags the CPU has is runnable, and the default is the best."""
    flags = info.cpu_flag_set()
    from vllm_forge import _build_info

    compiled = _build_info.CPU_ISAS
    expected = [isa for isa in VARIANT_FLAGS if isa in compiled and VARIANT_FLAGS[isa] <= flags]
    assert RUNNABLE.split(",") == expected
    assert DEFAULT == expected[0]


@pytest.mark.parametrize("isa", OTHERS)
def test_kernels_under_variant(isa):
    env = dict(os.environ, FORGE_CPU_ISA=isa)
    files = sorted(str(p) for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=HERE.parents[1],
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vllm_forge import extension; print(extension.cpu_kernel_isa()[0])",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == isa


@pytest.mark.parametrize(
    "value,message",
    [
        ("sse9", "FORGE_CPU_ISA=sse9 is not an instruction set of this build; valid:"),
    ],
)
def test_bad_variant_is_a_clear_error(value, message):
    code = (
        "import torch, pytest\nfrom vllm_forge import extension\nextension.load()\n"
        "x = torch.randn(2, 8)\n"
        f"with pytest.raises(RuntimeError, match={message!r}):\n"
        "    torch.ops.vllm_forge.silu_and_mul(torch.empty(2, 4), x)\nprint('OK')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, FORGE_CPU_ISA=value),
        capture_output=True,
        text=True,
    )
    assert "OK" in proc.stdout, proc.stderr[-3000:]
