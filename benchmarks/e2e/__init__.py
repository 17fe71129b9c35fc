"""End-to-end benchmarks: each platform in its own vLLM process (the platform is chosen
once per process from VLLM_PLUGINS)."""

import json
import os
import subprocess
import sys


def run_child(
    module: str, cfg: dict, plugin: bool, kv_cache_gib: str, env: dict | None = None
) -> dict:
    """`python -m <module> --child <cfg>` with our plugin on or off (and `env` added to the
    environment); the dict it prints after "RESULT "."""
    env = dict(
        os.environ,
        **(env or {}),
        VLLM_PLUGINS="forge" if plugin else "none",
        VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", kv_cache_gib),
        VLLM_LOGGING_LEVEL="WARNING",
    )
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(cfg)],
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"generation failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])
