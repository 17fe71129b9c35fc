"""register(): the platform decision, VLLM_PLUGINS filtering, re-entrancy."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import vllm_forge
from vllm_forge.platform.common import CPU_PLATFORM, CUDA_PLATFORM, decide

OK = dict(
    disabled=False,
    vllm_version="0.32.0",
    extension_loaded=True,
    extension_reason="",
    cuda_device=False,
)


@pytest.mark.parametrize(
    "change,platform,reason",
    [
        ({}, CPU_PLATFORM, "CPU kernels loaded"),
        ({"vllm_version": "0.32.3"}, CPU_PLATFORM, "CPU kernels loaded"),
        ({"disabled": True}, None, "disabled by FORGE_DISABLE"),
        ({"vllm_version": None}, None, "vLLM is not installed"),
        ({"vllm_version": "0.31.2"}, None, "supports vLLM 0.32.x, found 0.31.2"),
        ({"vllm_version": "0.320.0"}, None, "supports vLLM 0.32.x, found 0.320.0"),
        (
            {"extension_loaded": False, "extension_reason": "vllm_forge._C failed to load: boom"},
            None,
            "vllm_forge._C failed to load: boom",
        ),
        (
            {"cuda_device": True},
            None,
            "built without CUDA kernels (rebuild with "
            "FORGE_TARGET_DEVICE=cuda); vLLM's own CUDA platform serves",
        ),
        # Unproven CUDA kernels: declined unless FORGE_CUDA=1 (or gpu_suite.sh has passed).
        (
            {"cuda_device": True, "cuda_kernels": True},
            None,
            "have not yet run on a GPU (benchmarks/gpu_suite.sh has not passed on a card); vLLM's "
            "own CUDA platform serves. Set FORGE_CUDA=1 to use them anyway",
        ),
        (
            {"cuda_device": True, "cuda_kernels": True, "cuda_opt_in": True},
            CUDA_PLATFORM,
            "CUDA kernels loaded",
        ),
        (
            {"cuda_device": True, "cuda_kernels": True, "cuda_validated": True},
            CUDA_PLATFORM,
            "CUDA kernels loaded",
        ),
        ({"cuda_kernels": True}, CPU_PLATFORM, "CPU kernels loaded"),  # built for CUDA, no GPU
    ],
)
def test_decide(change, platform, reason):
    choice = decide(**{**OK, **change})
    assert choice.platform == platform
    assert reason in choice.reason


def test_cuda_is_validated_exactly_when_gpu_suite_results_are_committed():
    # CUDA_VALIDATED flips together with committing benchmarks/gpu_suite.sh's results
    # (benchmarks/results/gpu/<card>/): not before, not forgotten after.
    from vllm_forge.platform import common

    results = list((Path(__file__).parents[2] / "benchmarks/results/gpu").glob("*/*.csv"))
    assert common.CUDA_VALIDATED is bool(results)


@pytest.mark.parametrize(
    "value,expected", [("1", True), ("yes", True), ("0", False), ("", False), ("no", False)]
)
def test_forge_cuda_flag(monkeypatch, value, expected):
    from vllm_forge import envs

    monkeypatch.setenv("FORGE_CUDA", value)
    assert envs.cuda_opt_in() is expected


def test_register_here_returns_cpu_platform():
    assert vllm_forge.register() == CPU_PLATFORM


def test_register_is_reentrant():
    assert {vllm_forge.register() for _ in range(100)} == {CPU_PLATFORM}


def test_entry_point_is_declared():
    eps = [ep for ep in metadata.entry_points(group="vllm.platform_plugins") if ep.name == "forge"]
    assert len(eps) == 1 and eps[0].value == "vllm_forge:register"
    assert eps[0].load() is vllm_forge.register


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VLLM_PLUGINS", "FORGE_DISABLE", "VLLM_TARGET_DEVICE")
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=300
    )


CURRENT_PLATFORM = (
    "from vllm.platforms import current_platform; "
    "print('PLATFORM', type(current_platform).__name__)"
)


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, "ForgeCpuPlatform"),
        ({"VLLM_PLUGINS": "forge"}, "ForgeCpuPlatform"),
        ({"VLLM_PLUGINS": "none"}, "CpuPlatform"),
        ({"VLLM_PLUGINS": "some_other_plugin"}, "CpuPlatform"),
        ({"FORGE_DISABLE": "1"}, "CpuPlatform"),
        ({"VLLM_TARGET_DEVICE": "cpu"}, "CpuPlatform"),
    ],
)
def test_vllm_resolves_platform(env, expected):
    proc = run_python(CURRENT_PLATFORM, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"PLATFORM {expected}\n" in proc.stdout


def test_declining_logs_the_reason_once():
    code = "import vllm_forge\nfor _ in range(20): assert vllm_forge.register() is None\n"
    proc = run_python("import vllm.logger\n" + code, FORGE_DISABLE="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("vllm-forge declines the platform: disabled by FORGE_DISABLE") == 1


def test_broken_extension_declines_with_reason(tmp_path):
    # A copy of the package whose build info names another torch: register() must
    # decline with a warning that says so, not crash.
    import shutil

    pkg = tmp_path / "vllm_forge"
    shutil.copytree(
        os.path.dirname(vllm_forge.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__")
    )
    info = pkg / "_build_info.py"
    info.write_text(info.read_text().replace('TORCH_VERSION = "', 'TORCH_VERSION = "1.0.0+'))
    code = (
        "import vllm.logger, vllm_forge\n"
        f"assert vllm_forge.__file__.startswith({str(tmp_path)!r})\n"
        "print('RESULT', vllm_forge.register())"
    )
    proc = run_python(code, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT None" in proc.stdout
    assert "was built against torch 1.0.0" in proc.stderr
