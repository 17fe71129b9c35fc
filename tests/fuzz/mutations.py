"""Ways to break a valid case, each naming the argument it breaks and the text the error
must then contain (the offending value, as the native op prints it). An op's test file
lists the ones that apply to it, generic ones made here plus its own."""

from collections.abc import Callable

import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz.agreement import Broken, Case

# As c10 prints them (the native messages' words); the tests' own table, not the one
# under test in vllm_forge.ops.checks.
C10_NAMES = {
    torch.float32: "Float",
    torch.bfloat16: "BFloat16",
    torch.float16: "Half",
    torch.float64: "Double",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.int16: "Short",
    torch.int32: "Int",
    torch.int64: "Long",
    torch.bool: "Bool",
    torch.complex64: "ComplexFloat",
}
ANY_DTYPES = tuple(C10_NAMES)
NON_FLOAT_DTYPES = (
    torch.float64,
    torch.int8,
    torch.uint8,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
)

Mutation = Callable  # (draw, Case) -> Broken


def shape_text(t: torch.Tensor) -> str:
    return str(list(t.shape))


def strides_text(t: torch.Tensor) -> str:
    return str(list(t.stride()))


def broken_cases(valid: st.SearchStrategy, mutation: Mutation) -> st.SearchStrategy:
    """A valid case broken by `mutation`."""

    @st.composite
    def draw_broken(draw):
        return mutation(draw, draw(valid))

    return draw_broken()


def _tensor(case: Case, i: int) -> torch.Tensor:
    t = case.args[i]
    assume(isinstance(t, torch.Tensor))
    return t


def wrong_dtype(i: int, name: str, dtypes=ANY_DTYPES) -> Mutation:
    def mutate(draw, case):
        t = _tensor(case, i)
        dtype = draw(st.sampled_from([d for d in dtypes if d != t.dtype]))
        case.args[i] = t.to(dtype)
        return Broken(case, name, C10_NAMES[dtype], f"{name} to {dtype}")

    return mutate


def _every_other(t: torch.Tensor) -> torch.Tensor:
    """t's values with every stride doubled (the last one 2)."""
    return torch.stack([t, t], dim=-1)[..., 0]


def strided_last_dim(i: int, name: str) -> Mutation:
    def mutate(draw, case):
        t = _tensor(case, i)
        assume(t.dim() >= 1 and t.shape[-1] > 1)
        case.args[i] = t = _every_other(t)
        return Broken(case, name, strides_text(t), f"{name} with last stride 2")

    return mutate


def non_contiguous(i: int, name: str) -> Mutation:
    """For tensors that must be contiguous, not only in their last dimension."""

    def mutate(draw, case):
        t = _tensor(case, i)
        assume(t.numel() > 1)
        case.args[i] = t = _every_other(t)
        return Broken(case, name, strides_text(t), f"{name} not contiguous")

    return mutate


def on_meta(i: int, name: str) -> Mutation:
    def mutate(draw, case):
        case.args[i] = _tensor(case, i).to("meta")
        return Broken(case, name, "meta", f"{name} on meta")

    return mutate


def extra_leading_dim(i: int, name: str, value: Callable = shape_text) -> Mutation:
    """One more dimension, of size 2 (a size 1 might leave the call valid)."""

    def mutate(draw, case):
        t = _tensor(case, i)
        case.args[i] = t = torch.stack([t, t])
        return Broken(case, name, value(t), f"{name} with a leading dimension")

    return mutate


def resized(i: int, name: str, dim: int, value: Callable = shape_text) -> Mutation:
    """Dimension `dim` one longer or (when it has one) one shorter."""

    def mutate(draw, case):
        t = _tensor(case, i)
        assume(-t.dim() <= dim < t.dim())
        if t.shape[dim] == 0 or draw(st.booleans()):
            extra = list(t.shape)
            extra[dim] = 1
            t = torch.cat([t, torch.zeros(extra, dtype=t.dtype, device=t.device)], dim)
        else:  # as contiguous as it was: only the size may be wrong
            t = t.narrow(dim, 0, t.shape[dim] - 1)
            t = t.contiguous() if case.args[i].is_contiguous() else t
        case.args[i] = t
        return Broken(case, name, value(t), f"{name} size({dim}) changed")

    return mutate


def bad_scalar(i: int, name: str, values) -> Mutation:
    """values: (value, how the native op prints it)."""

    def mutate(draw, case):
        value, text = draw(st.sampled_from(values))
        case.args[i] = value
        return Broken(case, name, text, f"{name} = {value!r}")

    return mutate


def set_element(case: Case, i: int, index, value) -> torch.Tensor:
    """case.args[i] with one element replaced (a copy: the case's tensors may be shared)."""
    t = case.args[i].clone()
    t[index] = value
    case.args[i] = t
    return t


NEGATIVE_OR_NAN = [
    (-1.0, "-1"),
    (float("nan"), "nan"),
    (-1e-3, "-0.001"),
    (float("inf"), "inf"),
    (float("-inf"), "-inf"),
]
