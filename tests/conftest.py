import pytest

from vllm_forge import extension


def pytest_configure(config):
    # Every kernel test needs the compiled ops: fail the run at once, with the reason,
    # instead of a wall of AttributeErrors.
    status = extension.load()
    if not status.loaded:
        raise pytest.UsageError(f"vllm_forge._C is not usable: {status.reason}")
