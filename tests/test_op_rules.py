"""The rules of csrc/README.md as code: every op schema has a Python entry, a pure-torch
reference, a fake implementation, a kernel test that runs opcheck, and a benchmark."""

import ast
import re
from pathlib import Path

import pytest
import torch
from torch._library.simple_registry import singleton as op_registry

from vllm_forge import ops
from vllm_forge.ops import reference

ROOT = Path(__file__).resolve().parents[1]
ALL_SCHEMAS = re.findall(r'm\.def\(\s*"(\w+)\(', (ROOT / "csrc" / "torch_bindings.cpp").read_text())
# The collectives (shm_*) follow their own rules below: their reference is the sum over
# ranks that the distributed tests compute.
COLLECTIVES = [op for op in ALL_SCHEMAS if op.startswith(("shm_", "ipc_"))]
COLLECTIVE_TESTS = {"shm_": "test_shm_collectives.py", "ipc_": "test_ipc_all_reduce.py"}
SCHEMA_OPS = [op for op in ALL_SCHEMAS if op not in COLLECTIVES]


def test_schemas_found():
    assert SCHEMA_OPS, "no m.def(...) found in csrc/torch_bindings.cpp"
    assert sorted(SCHEMA_OPS) == sorted(ops.OPS), "vllm_forge.ops.OPS must list every schema"


@pytest.mark.parametrize("op", COLLECTIVES)
def test_collective_has_everything(op):
    schema = getattr(torch.ops.vllm_forge, op).default._schema
    if any(a.type.kind() == "TensorType" for a in schema.arguments):
        entry = op_registry.find(f"vllm_forge::{op}")
        assert entry.fake_impl.kernel is not None, f"no register_fake for vllm_forge::{op}"
    test_file = ROOT / "tests" / "distributed" / COLLECTIVE_TESTS[op[:4]]
    assert op in test_file.read_text(), f"{test_file} must exercise {op}"
    assert (ROOT / "benchmarks" / "kernels" / "bench_all_reduce.py").exists()


@pytest.mark.parametrize("op", SCHEMA_OPS)
def test_op_has_everything(op):
    assert callable(getattr(ops, op, None)), f"vllm_forge.ops.{op} missing"
    assert callable(getattr(reference, op, None)), f"vllm_forge.ops.reference.{op} missing"
    entry = op_registry.find(f"vllm_forge::{op}")
    assert entry.fake_impl.kernel is not None, f"no register_fake for vllm_forge::{op}"
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"vllm_forge::{op}", "CPU")
    test_file = ROOT / "tests" / "kernels" / f"test_{op}.py"
    assert test_file.exists() and calls_opcheck(test_file.read_text()), (
        f"{test_file} must call opcheck"
    )
    assert (ROOT / "benchmarks" / "kernels" / f"bench_{op}.py").exists(), f"bench_{op}.py missing"


def calls_opcheck(source: str) -> bool:
    """Whether the code (not a comment or a string) calls opcheck(...) or
    torch.library.opcheck(...)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "opcheck") or (
                isinstance(f, ast.Attribute) and f.attr == "opcheck"
            ):
                return True
    return False


@pytest.mark.parametrize(
    "source,calls",
    [
        ("from torch.library import opcheck\nopcheck(op, args)\n", True),
        ("torch.library.opcheck(op, args)\n", True),
        ("# opcheck(op, args) is run elsewhere\n", False),
        ("doc = 'opcheck(op, args)'\n", False),
        ("opcheck = None\n", False),
    ],
)
def test_opcheck_rule_reads_code_not_text(source, calls):
    assert calls_opcheck(source) is calls
