"""Fuzz tests: hypothesis-drawn valid, non-finite and invalid inputs for every op and
every provider (native, triton, torch). Prints how many cases ran at the end of the
session, and checks that no test leaves a provider choice or FORGE_KERNELS* changed."""

import os

import pytest

from tests.fuzz.budget import CASES
from vllm_forge import ops
from vllm_forge import triton as forge_triton


def _kernel_state():
    env = {k: v for k, v in os.environ.items() if k.startswith("FORGE_KERNELS")}
    return env, dict(ops._KERNELS), ops.choose.cache_info().currsize


@pytest.fixture(autouse=True)
def provider_choices_untouched():
    """The fuzz tests call each provider directly; vllm_forge.ops must not notice."""
    before = _kernel_state()
    yield
    assert _kernel_state() == before, "a fuzz test changed FORGE_KERNELS* or a provider choice"


@pytest.fixture(autouse=True)
def triton_runs_cpu_tensors(request):
    """The cases are CPU tensors: Triton runs them only in its interpreter (set by
    tests/conftest.py when there is no GPU). Bad calls never reach a kernel, so the
    rejection tests run everywhere."""
    callspec = getattr(request.node, "callspec", None)
    why = forge_triton.unavailable_reason("cpu")
    if callspec is not None and callspec.params.get("provider") == "triton" and why:
        pytest.skip(why)


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    write = terminalreporter.write_line
    write(f"fuzz: {sum(CASES.values())} cases over {len(CASES)} tests")
    if terminalreporter.config.getoption("verbose") > 0:  # every test
        for test_id, n in sorted(CASES.items()):
            write(f"  {n:5d}  {test_id}")
        return
    per_file = {}
    for test_id, n in CASES.items():
        path = test_id.split("::")[0]
        cases, tests = per_file.get(path, (0, 0))
        per_file[path] = (cases + n, tests + 1)
    for path, (cases, tests) in sorted(per_file.items()):
        write(f"  {cases:5d} cases over {tests:2d} tests in {path} (-v: per test)")
