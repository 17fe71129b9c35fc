"""The one Python entry for every op.

Each op is served by the first available provider of an order, per device type:
  native: torch.ops.vllm_forge.<op>, the compiled kernels (csrc/)
  triton: vllm_forge.triton.<family>.<op>, on GPUs (on CPU only under TRITON_INTERPRET=1)
  torch:  vllm_forge.ops.reference.<op>, pure torch, always available
The order is native, triton, torch unless FORGE_KERNELS (for every op) or
FORGE_KERNELS_<OP> (one op) say otherwise, e.g. FORGE_KERNELS=triton,torch. The choice
is made once per (op, device type) and reported, with why each earlier provider was
skipped, by `providers()`, `summary()` (a startup log line) and `python -m vllm_forge.info`.
"""

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vllm_forge import envs, extension
from vllm_forge import triton as forge_triton
from vllm_forge.ops import python_ops, reference, spec

OPS = spec.OPS
# The module of vllm_forge.triton that holds each op's launcher.
TRITON_MODULES = {op.name: op.triton_module for op in spec.SPECS}


@dataclass(frozen=True)
class Choice:
    provider: str
    fn: Callable
    skipped: tuple[str, ...]  # "provider: why" for each provider passed over
    source: str = "default"  # the variable that set the order, or "default"


def _native(op: str, device_type: str) -> tuple[Callable | None, str]:
    status = extension.load()
    if not status.loaded:
        return None, status.reason
    dispatch_key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if dispatch_key is None or not torch._C._dispatch_has_kernel_for_dispatch_key(
        f"vllm_forge::{op}", dispatch_key
    ):
        return None, f"no compiled {device_type} kernel"
    return getattr(torch.ops.vllm_forge, op).default, ""


def _triton(op: str, device_type: str) -> tuple[Callable | None, str]:
    why = forge_triton.unavailable_reason(device_type)
    if why:
        return None, why
    try:
        module = importlib.import_module(f"vllm_forge.triton.{TRITON_MODULES[op]}")
    except Exception as e:  # a broken Triton install must not take the plugin down
        return None, f"importing the Triton kernels failed: {type(e).__name__}: {e}"
    return python_ops.register("triton", op, getattr(module, op)), ""


def _torch(op: str, device_type: str) -> tuple[Callable | None, str]:
    return python_ops.register("torch", op, getattr(reference, op)), ""


_PROVIDERS = {"native": _native, "triton": _triton, "torch": _torch}


# (op, device type) -> the chosen callable: a plain dict, so torch.compile can trace a
# public op below once its choice has been made (it cannot trace choose() itself).
_KERNELS: dict[tuple[str, str], Callable] = {}


def _kernel(op: str, device_type: str) -> Callable:
    fn = _KERNELS.get((op, device_type))
    return fn if fn is not None else choose(op, device_type).fn


@functools.cache
def choose(op: str, device_type: str) -> Choice:
    """The provider serving `op` on `device_type`. Raises ValueError for an unknown op, a
    bad FORGE_KERNELS* value, or when no provider of the order is available."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; known ops: {', '.join(OPS)}")
    order, source = envs.kernel_order(op, OPS)
    skipped: list[str] = []
    for provider in order:
        fn, why = _PROVIDERS[provider](op, device_type)
        if fn is not None:
            _KERNELS[(op, device_type)] = fn
            return Choice(provider, fn, tuple(skipped), source)
        skipped.append(f"{provider}: {why}")
    raise ValueError(
        f"no provider can serve {op} on {device_type} with the order "
        f"{','.join(order)} ({source}): {'; '.join(skipped)}"
    )


def reset_choices() -> None:
    """Forget every choice (tests that change FORGE_KERNELS* or TRITON_INTERPRET)."""
    choose.cache_clear()
    _KERNELS.clear()


def providers(device_type: str = "cpu") -> dict[str, Choice]:
    return {op: choose(op, device_type) for op in OPS}


def summary(device_type: str = "cpu") -> str:
    """One line: the provider of every op, and why earlier ones were skipped."""
    parts = []
    for op, c in providers(device_type).items():
        why = f" (skipped {'; '.join(c.skipped)})" if c.skipped else ""
        parts.append(f"{op}={c.provider}{why}")
    return f"vllm-forge kernels on {device_type}: " + ", ".join(parts)


def _public_op(op: spec.OpSpec) -> Callable:
    """vllm_forge.ops.<op>: the reference's signature (with the table's defaults), calling
    the provider chosen for the device of the op's main tensor. Written out as source, as
    dataclasses does, so that help() shows the real signature and torch.compile traces a
    plain call."""
    names = spec.arg_names(op.name)
    params = [f"{name}={op.defaults[name]!r}" if name in op.defaults else name for name in names]
    args = ", ".join(names)
    source = (
        f"def {op.name}({', '.join(params)}) -> None:\n"
        f"    _kernel({op.name!r}, {op.device_arg}.device.type)({args})\n"
    )
    namespace = {"_kernel": _kernel}
    exec(source, namespace)
    fn = namespace[op.name]
    fn.__module__, fn.__qualname__ = __name__, op.name
    fn.__doc__ = spec.reference_of(op.name).__doc__
    return fn


for _op in spec.SPECS:
    globals()[_op.name] = _public_op(_op)
del _op


def __getattr__(name: str) -> Callable[..., None]:
    """Only reached for a name that is not an op (every op is defined above): say which
    ones exist. Also tells type checkers that the ops made from the table are callables."""
    raise AttributeError(f"vllm_forge.ops has no attribute {name!r}; its ops: {', '.join(OPS)}")
