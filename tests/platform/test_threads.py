"""The platform's choice of vLLM's CPU scheduler reserve (platform/threads.py)."""

import os

import pytest

from vllm_forge.platform import threads


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv(threads.RESERVED, raising=False)
    return monkeypatch


@pytest.mark.parametrize("cpus,expected", [(1, "0"), (2, "0"), (3, None), (64, None)])
def test_small_machines_get_no_reserve(env, cpus, expected):
    env.setattr(threads, "usable_cpus", lambda: cpus)
    threads.apply()
    assert os.environ.get(threads.RESERVED) == expected
    described = threads.describe()
    assert (threads.RESERVED + "=0" in described) == (expected == "0"), described


def test_the_users_choice_stands(env):
    env.setattr(threads, "usable_cpus", lambda: 2)
    env.setenv(threads.RESERVED, "1")
    threads.apply()
    assert os.environ[threads.RESERVED] == "1"
    assert "(set;" in threads.describe()


def test_the_platform_applies_it_before_vllms_config(monkeypatch):
    """Before CpuPlatform's own hook (and so before the engine's processes start)."""
    from vllm_forge.platform.cpu import ForgeCpuPlatform
    from vllm_forge.platform.hooks import ForgePlatformHooks

    order = []
    monkeypatch.setattr(threads, "apply", lambda: order.append("threads"))
    monkeypatch.setattr(
        ForgePlatformHooks,
        "check_and_update_config",
        classmethod(lambda cls, config: order.append("vllm")),
    )
    ForgeCpuPlatform.check_and_update_config(object())
    assert order == ["threads", "vllm"]
