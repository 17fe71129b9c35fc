"""What /proc and /dev/shm say about a process tree: its members, their resident memory,
the shared-memory segments they hold, and which segments nobody holds any more.

A process is named by (pid, start time): a pid alone may be reused by an unrelated
process after ours exits."""

import os
from pathlib import Path

SHM = Path("/dev/shm")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat: starttime


def is_running(pid: int, started: int) -> bool:
    """The process (pid, started) still exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and int(fields[19]) == started and fields[0] != "Z"


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def tree(root: int) -> dict[tuple[int, int], str]:
    """{(pid, start time): command name} of root and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        started = start_time(pid)
        if started is None:
            continue
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        out[(pid, started)] = name
        todo += children.get(pid, [])
    return out


def rss_mib(pid: int) -> float:
    """VmRSS of one process in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def shm_names() -> set[str]:
    return {p.name for p in SHM.iterdir()} if SHM.is_dir() else set()


def shm_held_by(pid: int) -> set[str]:
    """/dev/shm entries that pid has mapped or open."""
    held = set()
    prefix = str(SHM) + "/"
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)  # address perms offset dev inode [path]
            path = parts[5] if len(parts) == 6 else ""
            if path.startswith(prefix):
                held.add(path[len(prefix) :].removesuffix(" (deleted)"))
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(prefix):
                held.add(target[len(prefix) :].removesuffix(" (deleted)"))
    except OSError:
        pass
    return held


def shm_held_by_anyone() -> set[str]:
    """/dev/shm entries some live process holds: on a shared machine, new entries that
    belong to other people's programs, not leaks of ours."""
    held = set()
    for pid in _pids():
        held |= shm_held_by(pid)
    return held
