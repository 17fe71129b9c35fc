"""`make wheel` builds an abi3 wheel that works on its own: installed into a scratch
virtual environment, its entry point is found, its ops run, and vLLM picks it up.

The scratch environment borrows torch and vLLM read-only from the running one (a .pth
line; .pth files of that folder, such as our editable install's finder, are not
processed from there), so the only vllm-forge it can import is the wheel's.
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel

CHECK = r"""
import sys
from importlib import metadata
import torch
import vllm_forge
assert vllm_forge.__file__.startswith(sys.prefix), vllm_forge.__file__
(ep,) = [e for e in metadata.entry_points(group="vllm.platform_plugins") if e.name == "forge"]
assert ep.load() is vllm_forge.register
from vllm_forge import extension, ops
from vllm_forge.ops import reference
assert extension.load().loaded, extension.load().reason
assert {c.provider for c in ops.providers().values()} == {"native"}
key = torch.randn(5, 2, 32)
cache = torch.zeros(2, 2, 16, 32)
ops.reshape_and_cache(cache, cache.clone(), key, key, torch.tensor([0, 1, 2, 3, 20]))
assert torch.equal(cache[0, :, :4], key[:4].transpose(0, 1))
assert torch.equal(cache[1, :, 4], key[4])
from vllm.platforms import current_platform
print("PLATFORM", type(current_platform).__name__, type(current_platform).__module__)
"""


def test_wheel_in_scratch_env(tmp_path):
    subprocess.run(
        ["make", "-C", str(ROOT), "wheel", f"VENV={sys.prefix}"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    wheels = sorted((ROOT / "dist").glob("vllm_forge-*.whl"), key=os.path.getmtime)
    assert wheels, "make wheel produced no wheel"
    wheel = wheels[-1]
    assert "-abi3-" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "vllm_forge/_C.abi3.so" in names and "vllm_forge/_build_info.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[vllm.platform_plugins]" in text and "forge = vllm_forge:register" in text

    scratch = tmp_path / "scratch"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(scratch)], check=True)
    scratch_py = scratch / "bin" / "python"
    site = subprocess.run(
        [scratch_py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            site,
            str(wheel),
        ],
        check=True,
    )

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VLLM_PLUGINS", "FORGE_DISABLE", "PYTHONPATH")
    }
    proc = subprocess.run(
        [scratch_py, "-c", CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "PLATFORM ForgeCpuPlatform vllm_forge.platform.cpu" in proc.stdout
