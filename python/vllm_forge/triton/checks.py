"""Argument checks of the Triton launchers: the same conditions as the native TORCH_CHECKs
that guard memory safety (dtype, shape, device, layout), with messages naming the argument
and the value. They raise ValueError."""

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check(ok: bool, op: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{op}: {message}")


def check_float(op: str, name: str, x: torch.Tensor) -> None:
    check(x.dtype in FLOAT_DTYPES, op, f"{name} must be float32, bfloat16 or float16, got {x.dtype}")


def check_same(op: str, name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """x matches ref in device and dtype."""
    check(x.device == ref.device, op, f"{name} is on {x.device} but {ref_name} is on {ref.device}")
    check(x.dtype == ref.dtype, op, f"{name} has dtype {x.dtype} but {ref_name} has {ref.dtype}")


def check_index(op: str, name: str, x: torch.Tensor, device: torch.device,
                dtypes=(torch.int32, torch.int64)) -> None:
    check(x.device == device, op, f"{name} is on {x.device}, expected {device}")
    check(x.dtype in dtypes, op, f"{name} must have dtype in {[str(d) for d in dtypes]}, got {x.dtype}")
