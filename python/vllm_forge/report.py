"""Per-op call counters shared across processes, for the kernel report.

vLLM runs the model in engine and worker processes, so the process that asks "which
kernels ran?" is not the one that ran them. When FORGE_KERNEL_REPORT_DIR is set, each
process keeps its counters in a small file there, mapped into memory: the native ops
count in C++ (csrc/common/call_counter.cpp, file native-<pid>.counts, one relaxed
atomic add per call, so it works inside compiled graphs too), the Python providers in
python-<pid>.counts. Both files have the same layout: 64 slots of 64 bytes, each a
NUL-padded op name (48 bytes) and a little-endian int64 count.
"""

import mmap
import os
import struct
from collections import Counter
from pathlib import Path

from vllm_forge import envs

SLOTS = 64
NAME_BYTES = 48
SLOT_BYTES = 64


def _parse(data: bytes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(min(SLOTS, len(data) // SLOT_BYTES)):
        slot = data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]
        name = slot[:NAME_BYTES].split(b"\0", 1)[0].decode(errors="replace")
        if name:
            counts[name] = counts.get(name, 0) + struct.unpack_from("<q", slot, NAME_BYTES)[0]
    return counts


class _PythonCounters:
    """Counters of the Python providers of this process (torch reference, Triton)."""

    def __init__(self) -> None:
        self._pid = -1
        self._buf: mmap.mmap | bytearray | None = None
        self._slots: dict[str, int] = {}

    def _open(self) -> None:
        self._pid, self._slots = os.getpid(), {}
        folder = envs.kernel_report_dir()
        if folder is None:
            self._buf = bytearray(SLOTS * SLOT_BYTES)
            return
        path = Path(folder) / f"python-{self._pid}.counts"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SLOTS * SLOT_BYTES)
            self._buf = mmap.mmap(fd, SLOTS * SLOT_BYTES)
        finally:
            os.close(fd)

    def add(self, key: str) -> None:
        if self._pid != os.getpid():  # first use, or a forked child: own file
            self._open()
        buf = self._buf
        assert buf is not None  # _open set it in this process
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) == SLOTS:
                return
            slot = self._slots[key] = len(self._slots)
            name = key.encode()[: NAME_BYTES - 1]
            buf[slot * SLOT_BYTES : slot * SLOT_BYTES + len(name)] = name
        offset = slot * SLOT_BYTES + NAME_BYTES
        (count,) = struct.unpack_from("<q", buf, offset)
        struct.pack_into("<q", buf, offset, count + 1)


python_counters = _PythonCounters()


def collect(folder: str | os.PathLike) -> dict[str, Counter]:
    """Sum every process's counters in `folder`: {"native": {op: n}, "torch": {...}}."""
    totals: dict[str, Counter] = {}
    for path in sorted(Path(folder).glob("*.counts")):
        kind = path.name.split("-", 1)[0]
        for key, n in _parse(path.read_bytes()).items():
            provider, op = ("native", key) if kind == "native" else key.split(":", 1)
            totals.setdefault(provider, Counter())[op] += n
    return totals


def format_report(totals: dict[str, Counter], ops: tuple[str, ...]) -> str:
    """A table of calls per op and provider, every known op listed (0 = never ran)."""
    providers = sorted(totals)
    lines = [f"  {'op':<20} " + " ".join(f"{p:>10}" for p in providers or ["calls"])]
    for op in ops:
        counts = [totals[p].get(op, 0) for p in providers] or [0]
        lines.append(f"  {op:<20} " + " ".join(f"{n:>10}" for n in counts))
    return "\n".join(lines)
