"""How many cases each fuzz test runs, and the run loop that counts them.

Every test draws from the "forge-fuzz" Hypothesis profile: derandomized (the same cases
on every run and in CI), no deadline (Triton's interpreter is slow and its first call
compiles), no example database (nothing is written into the checkout, and a failure seen
once is not replayed into later runs' counts). FORGE_FUZZ_EXAMPLES=<factor> multiplies
every test's count, for longer local runs; the default counts keep tests/fuzz well under
a minute and a half on a shared 2-core machine (20-45 s measured).
"""

import hashlib
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, seed, settings

PROFILE = "forge-fuzz"
settings.register_profile(
    PROFILE,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    # Tensor cases are few and big by design; the interpreter is slow by nature.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# pytest node id -> cases run, for the session summary (tests/fuzz/conftest.py).
CASES: Counter = Counter()


def scaled(examples: int) -> int:
    factor = float(os.environ.get("FORGE_FUZZ_EXAMPLES", "1"))
    return max(1, round(examples * factor))


def fuzz(strategy, check, examples: int) -> None:
    """Run check(case) on `examples` (scaled) cases drawn from strategy, counting each."""
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]

    # Derandomized runs seed from the test function, which is this same `run` for every
    # test: a fixed seed from the test's id gives each its own (still fixed) cases.
    @seed(int.from_bytes(hashlib.sha256(test_id.encode()).digest()[:8], "big"))
    @settings(settings.get_profile(PROFILE), max_examples=scaled(examples))
    @given(strategy)
    def run(case):
        CASES[test_id] += 1
        check(case)

    run()


# Cases per test (before FORGE_FUZZ_EXAMPLES): the native kernels take microseconds, the
# Triton interpreter tens of milliseconds a call; a bad call never reaches a kernel.
VALID = {"native": 80, "triton": 20}
NONFINITE = {"native": 40, "triton": 10}
INVALID = 10  # per way of breaking a case


def _ignore_numpy_nonfinite(test):
    """NaN and inf make Triton's interpreter (numpy) warn about inf - inf and 0 * inf:
    expected in the non-finite tests."""
    for message in ("invalid value encountered", "overflow encountered", "All-NaN slice"):
        test = pytest.mark.filterwarnings(f"ignore:{message}:RuntimeWarning")(test)
    return test


NUMPY_NONFINITE_WARNINGS = _ignore_numpy_nonfinite
