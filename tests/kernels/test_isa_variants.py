"""Every CPU kernel variant this machine can run passes the kernel tests: the default
(best) variant runs in the main test session, the others here, in subprocesses with
FORGE_CPU_ISA set (the variant is chosen once per process)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_forge import extension

pytestmark = pytest.mark.cpu_only

HERE = Path(__file__).resolve().parent
DEFAULT, RUNNABLE = extension.cpu_kernel_isa()
OTHERS = [isa for isa in RUNNABLE.split(",") if isa and isa != DEFAULT]


def test_default_is_best_runnable():
    assert DEFAULT == RUNNABLE.split(",")[0]


@pytest.mark.parametrize("isa", OTHERS)
def test_kernels_under_variant(isa):
    env = dict(os.environ, FORGE_CPU_ISA=isa)
    files = sorted(str(p) for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           *files], env=env, capture_output=True, text=True, timeout=900,
                          cwd=HERE.parents[1])
    assert proc.returncode == 0, proc.stdout[-5000:]
    check = subprocess.run([sys.executable, "-c", "from vllm_forge import extension; "
                            "print(extension.cpu_kernel_isa()[0])"], env=env,
                           capture_output=True, text=True)
    assert check.stdout.strip() == isa


@pytest.mark.parametrize("value,message", [
    ("sse9", "FORGE_CPU_ISA=sse9 is not an instruction set of this build; valid:"),
])
def test_bad_variant_is_a_clear_error(value, message):
    code = ("import torch, pytest\nfrom vllm_forge import extension\nextension.load()\n"
            "x = torch.randn(2, 8)\n"
            "with pytest.raises(RuntimeError, match=%r):\n"
            "    torch.ops.vllm_forge.silu_and_mul(torch.empty(2, 4), x)\nprint('OK')" % message)
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FORGE_CPU_ISA=value),
                          capture_output=True, text=True)
    assert "OK" in proc.stdout, proc.stderr[-3000:]
