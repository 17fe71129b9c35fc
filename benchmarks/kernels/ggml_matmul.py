"""llama.cpp's ggml matmul as a comparator of bench_quant_gemm: a long-lived process
(ggml_matmul.cpp, built once against benchmarks/.cache's llama.cpp build) that loads a
GGUF-quantised weight and times y = x W^T when asked, so its rounds alternate with ours in
the same run while it waits idle on its pipe between them."""

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.e2e.bench_llamacpp import linked_tool

HERE = Path(__file__).resolve().parent
# Our formats as GGUF types (the same float weights, quantised by gguf's own Q4_0 / Q4_1 /
# Q8_0): Q4_1's scales and mins are fp16, where our int4_min_g32_f32 stores fp32 (Q4_K's
# repack), so ggml reads 5 bits per weight there and ours 6.
GGUF_TYPES = {"int4_sym_g32": "Q4_0", "int4_min_g32_f32": "Q4_1", "int8_g32": "Q8_0"}


def built_driver() -> Path:
    """benchmarks/.cache/ggml_matmul, linked against the cached llama.cpp build."""
    return linked_tool(HERE / "ggml_matmul.cpp", with_llama=False)


class GgmlMatmul:
    """One ggml_matmul process with `threads` threads: set_weight, load an M, time."""

    def __init__(self, threads: int):
        self.proc = subprocess.Popen(
            [str(built_driver()), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.folder = tempfile.TemporaryDirectory(prefix="ggml_matmul")
        self.path = Path(self.folder.name) / "w.bin"  # the weight of the last set_weight

    def _ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not reply or reply.startswith("error"):
            raise RuntimeError(f"ggml_matmul: {line!r} -> {reply or 'no reply'}")
        return reply

    def set_weight(self, w: np.ndarray, fmt: str) -> int:
        """Quantise the fp32 weight [N, K] to `fmt`'s GGUF type for the next loads;
        returns the quantised weight's bytes."""
        from gguf import GGMLQuantizationType as T
        from gguf.quants import quantize

        self.qtype = GGUF_TYPES[fmt]
        blocks = quantize(np.ascontiguousarray(w, dtype=np.float32), T[self.qtype])
        blocks.tofile(self.path)
        self.shape = w.shape
        return blocks.nbytes

    def load(self, m: int) -> None:
        """The weight of the last set_weight with an x of M rows."""
        n, k = self.shape
        self._ask(f"load {self.qtype.lower()} {n} {k} {m} {self.path}")

    def time(self, min_time: float, max_iters: int) -> float:
        """Median seconds per call of the loaded matmul."""
        return float(self._ask(f"time {min_time} {max_iters}"))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.folder.cleanup()
