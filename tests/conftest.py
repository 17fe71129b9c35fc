import os

import pytest
import torch

from vllm_forge import extension

# Without a GPU, Triton kernels run only in Triton's interpreter, which is chosen when a
# kernel is decorated: set it before any test imports vllm_forge.triton. vLLM ignores it
# (it disables Triton on CPU), and the default provider order never reaches Triton here.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_configure(config):
    # Every kernel test needs the compiled ops: fail the run at once, with the reason,
    # instead of a wall of AttributeErrors.
    status = extension.load()
    if not status.loaded:
        raise pytest.UsageError(f"vllm_forge._C is not usable: {status.reason}")


@pytest.fixture
def fresh_choice(monkeypatch):
    """No FORGE_KERNELS* variables and no remembered provider choices, before and after;
    yields monkeypatch to set variables with. Modules that change providers use it."""
    from vllm_forge import ops

    for var in list(os.environ):
        if var.startswith("FORGE_KERNELS"):
            monkeypatch.delenv(var)
    ops.reset_choices()
    yield monkeypatch
    ops.reset_choices()
