"""What the fuzz tests assert: a provider's outputs agree with the reference's (values
within the tolerances of tests/utils.py, non-finite values at the same positions, no
write outside an output's view), and a bad call is refused by every provider with the
native op's RuntimeError, naming the argument and the value."""

from dataclasses import dataclass, field

import torch

from tests.fuzz.providers import PROVIDERS, call, call_checked
from tests.fuzz.tensors import NAN_PADDING, describe, same_layout_copy
from tests.utils import TOLERANCES


@dataclass
class Case:
    op: str
    args: list
    outputs: tuple  # positions of the arguments the op writes
    tolerance: dict = field(default_factory=dict)  # dtype -> assert_close kwargs, overrides

    def __repr__(self):
        return f"{self.op}({', '.join(describe(a) for a in self.args)})"

    def _repr_pretty_(self, printer, cycle):  # Hypothesis prints failing cases with this
        printer.text(repr(self))


@dataclass
class Broken:
    """A case made invalid in one way: the argument broken and text that the error must
    contain (the offending value, as the native op prints it)."""

    case: Case
    arg: str
    value: str
    how: str

    def __repr__(self):
        return f"{self.how} -> {self.case!r}; expect '{self.arg}' and '{self.value}'"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


def assert_same_nonfinite(got: torch.Tensor, ref: torch.Tensor, what: str) -> torch.Tensor:
    """got is NaN/inf exactly where ref is; returns where both are finite."""
    got, ref = got.float(), ref.float()
    bad_got, bad_ref = ~torch.isfinite(got), ~torch.isfinite(ref)
    if not torch.equal(bad_got, bad_ref):
        diff = (bad_got != bad_ref).nonzero()[:5].tolist()
        raise AssertionError(
            f"{what}: non-finite at other positions than the reference's, "
            f"e.g. at {diff}: got {[got[tuple(i)].item() for i in diff]}, "
            f"reference {[ref[tuple(i)].item() for i in diff]}"
        )
    return ~bad_ref


def assert_same_nonfinite_and_close(
    got: torch.Tensor, ref: torch.Tensor, what: str, tolerance: dict
) -> None:
    finite = assert_same_nonfinite(got, ref, what)
    torch.testing.assert_close(
        got.float().masked_fill(~finite, 0),
        ref.float().masked_fill(~finite, 0),
        msg=lambda m: f"{what}: {m}",
        **tolerance,
    )


def assert_untouched_outside(view: torch.Tensor, what: str) -> None:
    """For a view into a NaN-filled padded buffer (tensors.Maker.padded): the padding is
    still NaN after the op ran."""
    if not getattr(view, NAN_PADDING, False):
        return
    base = view._base
    outside = torch.ones(base.shape, dtype=torch.bool)
    outside.as_strided(
        view.shape, view.stride(), view.storage_offset() - base.storage_offset()
    ).fill_(False)
    assert base[outside].isnan().all(), f"{what}: written outside its view"


def run_with_reference(provider: str, case: Case) -> list:
    """Run the reference on copies of the case's arguments, then the provider on the
    arguments themselves; return the reference's copies."""
    ref_args = [same_layout_copy(a) for a in case.args]
    call("torch", case.op, ref_args)
    call(provider, case.op, case.args)
    return ref_args


def assert_untouched_padding(provider: str, case: Case) -> None:
    for i, a in enumerate(case.args):
        if isinstance(a, torch.Tensor):
            assert_untouched_outside(a, f"{provider} {case.op}, argument {i}")


def assert_agrees_with_reference(provider: str, case: Case) -> None:
    ref_args = run_with_reference(provider, case)
    for i in case.outputs:
        got, ref = case.args[i], ref_args[i]
        what = f"{provider} {case.op}, output argument {i}"
        if got.is_floating_point():
            tol = case.tolerance.get(ref.dtype, TOLERANCES[ref.dtype])
            assert_same_nonfinite_and_close(got, ref, what, tol)
        else:
            assert torch.equal(got, ref), f"{what}: {got} != reference {ref}"
    assert_untouched_padding(provider, case)


def _outcome(provider: str, broken: Broken):
    try:
        call_checked(provider, broken.case.op, broken.case.args)
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e), str(e)
    return None


def assert_rejected_alike(broken: Broken) -> None:
    """Every provider refuses, with the native op's exception type and message."""
    outcomes = {p: _outcome(p, broken) for p in PROVIDERS}
    native = outcomes["native"]
    assert native is not None, f"the native op accepted {broken!r}"
    kind, message = native
    assert kind is RuntimeError, f"native raised {kind.__name__}: {message}"
    for provider, got in outcomes.items():
        assert got == native, f"{provider} answered {got}, native {native}, for {broken!r}"
    assert message.startswith(f"{broken.case.op}: "), message
    assert broken.arg in message and broken.value in message, (
        f"the message does not name {broken.arg!r} and {broken.value!r}: {message}"
    )
