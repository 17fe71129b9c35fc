"""all_reduce among 2 local ranks, 1 KB to 64 MB: ours (shared memory,
torch.ops.vllm_forge.shm_all_reduce) vs torch.distributed with gloo vs vLLM's own CPU
shared-memory all-reduce (torch.ops._C.shm_allreduce), same tensors, same processes.

Each rank runs one thread (the 2 ranks share the machine's cores). Reports latency
(median per call over runs of back-to-back calls, rank 0; the median of 5 rounds that
alternate the providers) and algorithm bandwidth (tensor bytes / time); CSV and PNG in
benchmarks/results/all_reduce.*

    python -m benchmarks.kernels.bench_all_reduce [--sizes 65536,1048576 --no-write]
"""

import argparse
import io
import multiprocessing as mp
import os
import statistics
import time

import torch

from benchmarks.common import copy_bandwidth_gbs, load_vllm_cpu_kernels, pyplot, write_csv

SIZES = [1 << k for k in range(10, 27, 2)]  # 1 KB .. 64 MB
WORLD = 2
ROUNDS = 5


def timed(fn, barrier, inner, min_time=0.5, max_iters=2000):
    """Median seconds per call over samples of `inner` back-to-back calls (as a model's
    layers issue them: the ranks stay in step, so one rank's late start is not counted as
    latency). Rank 0 alone decides when to stop and tells the others after every sample,
    so every rank makes the same number of calls."""
    fn()
    barrier()
    times, start_all = [], time.perf_counter()
    while True:
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
        more = len(times) < 5 or (
            time.perf_counter() - start_all < min_time and len(times) < max_iters
        )
        flag = torch.tensor([int(more)])
        torch.distributed.broadcast(flag, src=0)
        if not flag.item():
            return statistics.median(times)


def rank_main(rank, port, queue, sizes):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    from vllm_forge import extension
    from vllm_forge.distributed.shm import ShmGroup, new_token

    assert extension.load().loaded
    token = [new_token()]
    torch.distributed.broadcast_object_list(token, src=0)
    ours = ShmGroup("bench", token[0], rank, WORLD)  # FORGE_SHM_SLOT_BYTES, FORGE_SHM_TIMEOUT_S
    vllm = None
    if load_vllm_cpu_kernels() and hasattr(torch.ops._C, "init_shm_manager"):
        name = f"vllm-bench-{token[0]:x}"
        vllm = torch.ops._C.init_shm_manager(name, WORLD, rank, 1)
        torch.distributed.barrier()
        torch.ops._C.join_shm_manager(vllm, name)
        torch.distributed.barrier()
    rows = []
    for nbytes in sizes:
        x = torch.randn(nbytes // 4)
        providers = {
            "forge_shm": lambda: ours.all_reduce(x),
            "gloo": lambda: torch.distributed.all_reduce(x),
        }
        if vllm is not None:
            providers["vllm_shm"] = lambda: torch.ops._C.shm_allreduce(vllm, x)
        # Rounds alternate the providers, and each reports its median round: the machine's
        # neighbours come and go, and this spreads their noise over all providers alike.
        samples = {name: [] for name in providers}
        for _ in range(ROUNDS):
            for name, fn in providers.items():
                samples[name].append(
                    timed(
                        fn,
                        torch.distributed.barrier,
                        inner=max(1, min(50, (1 << 20) // nbytes)),
                        min_time=0.2,
                    )
                )
        for name, ts in samples.items():
            t = statistics.median(ts)
            rows.append(dict(bytes=nbytes, provider=name, us=t * 1e6, gbs=nbytes / t / 1e9))
    ours.close()
    buffer = io.BytesIO()
    torch.save(rows, buffer)
    queue.put((rank, buffer.getvalue()))
    torch.distributed.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", help="comma-separated byte counts (default: 1 KB .. 64 MB)")
    parser.add_argument("--no-write", action="store_true", help="print only, keep results/ as is")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    copy_gbs = copy_bandwidth_gbs()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=rank_main, args=(r, port, queue, sizes)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=1800) for _ in procs)
    for p in procs:
        p.join()
    rows = torch.load(io.BytesIO(results[0]))
    by = {(r["bytes"], r["provider"]): r for r in rows}
    out_rows = []
    print(f"copy bandwidth {copy_gbs:.1f} GB/s; 2 ranks, 1 thread each, float32")
    print(
        f"{'size':>10} {'forge us':>10} {'gloo us':>10} {'vllm us':>10} {'x gloo':>7} {'x vllm':>7} {'forge GB/s':>10}"
    )
    for nbytes in sizes:
        ours, gloo, vllm = (by.get((nbytes, p)) for p in ("forge_shm", "gloo", "vllm_shm"))
        vs_gloo = gloo["us"] / ours["us"]
        vs_vllm = vllm["us"] / ours["us"] if vllm else float("nan")
        print(
            f"{nbytes:>10} {ours['us']:>10.1f} {gloo['us']:>10.1f} "
            f"{vllm['us'] if vllm else float('nan'):>10.1f} {vs_gloo:>7.2f} {vs_vllm:>7.2f} "
            f"{ours['gbs']:>10.2f}"
        )
        for r in (ours, gloo, vllm):
            if r:
                out_rows.append(
                    dict(
                        r,
                        copy_gbs=copy_gbs,
                        speedup_vs_gloo=gloo["us"] / r["us"],
                        speedup_vs_vllm=(vllm["us"] / r["us"]) if vllm else "",
                    )
                )
    if args.no_write:
        return
    path = write_csv("all_reduce", out_rows)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for provider in ("forge_shm", "gloo", "vllm_shm"):
        pts = [(n, by[(n, provider)]["us"]) for n in sizes if (n, provider) in by]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=provider)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="bytes",
        ylabel="us per all_reduce (median)",
        title="all_reduce, 2 local ranks, float32",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
