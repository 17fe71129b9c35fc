"""python -m vllm_forge.info: what is installed, what was built, which kernels serve.

Prints the versions of vLLM, torch and vllm-forge, the compiled targets, the CPU's
instruction sets, the platform decision register() makes here, and for each op the
provider that serves it (and why the ones before it were skipped) and where vLLM calls
it (or that it is library only, and why).
"""

import argparse
import json
import platform as host

import torch

import vllm_forge
from vllm_forge import extension, ops
from vllm_forge.ops import spec
from vllm_forge.platform import threads
from vllm_forge.platform.common import choose_platform, installed_vllm_version
from vllm_forge.quant import activations, selection

# Instruction sets the CPU kernels care about, as /proc/cpuinfo names them.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
)


def cpu_flag_set() -> set[str]:
    """Every flag the CPU reports in /proc/cpuinfo (x86 "flags", Arm "Features"); empty
    where there is no such file."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_flags() -> list[str]:
    """The flags of ISA_FLAGS this CPU has, in that order."""
    present = cpu_flag_set()
    return [flag for flag in ISA_FLAGS if flag in present]


def collect(device_type: str = "cpu") -> dict:
    status = extension.load()
    choice = choose_platform()
    return {
        "vllm_forge": vllm_forge.__version__,
        "vllm": installed_vllm_version(),
        "torch": torch.__version__,
        "extension": {
            "loaded": status.loaded,
            "detail": status.reason,
            "targets": list(status.targets),
            "built_with_torch": status.built_with_torch,
        },
        "cpu": {
            "machine": host.machine(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "isa_flags": cpu_flags(),
            "threads": torch.get_num_threads(),
            "worker_cores": threads.describe(),
            "kernel_variant": extension.cpu_kernel_isa()[0],
            "runnable_variants": extension.cpu_kernel_isa()[1],
        },
        "platform": {"class": choice.platform, "reason": choice.reason},
        "wna16_linear": dict(zip(("kernel", "reason"), selection.choice())),
        "quant_activations": activations.describe(device_type),
        "ops": {
            op: {
                "provider": c.provider,
                "skipped": list(c.skipped),
                "order_from": c.source,
                "serves": spec.BY_NAME[op].serves,
            }
            for op, c in ops.providers(device_type).items()
        },
    }


def format_text(info: dict) -> str:
    ext = info["extension"]
    lines = [
        f"vllm-forge {info['vllm_forge']}   vLLM {info['vllm'] or 'not installed'}   torch {info['torch']}",
        f"extension: {ext['detail']}"
        + (f"; built with torch {ext['built_with_torch']}" if ext["built_with_torch"] else ""),
        f"cpu: {info['cpu']['machine']}, torch capability {info['cpu']['torch_capability']}, "
        f"{info['cpu']['threads']} threads, ISA: {' '.join(info['cpu']['isa_flags']) or 'unknown'}",
        f"vLLM's CPU worker cores: {info['cpu']['worker_cores']}",
        f"cpu kernels: {info['cpu']['kernel_variant']} variant (runnable here: "
        f"{info['cpu']['runnable_variants']}; FORGE_CPU_ISA picks one)",
        f"platform: {info['platform']['class'] or 'declined'} ({info['platform']['reason']})",
        f"int4/int8 checkpoints (GPTQ, AWQ, compressed-tensors W4A16/W8A16) on cpu: "
        f"{info['wna16_linear']['kernel']} ({info['wna16_linear']['reason']})",
        f"quantised linear layers' activations: {info['quant_activations']}",
        "ops (provider per op on cpu; order native,triton,torch unless FORGE_KERNELS* set it):",
    ]
    for op, c in info["ops"].items():
        source = f" (order from {c['order_from']})" if c["order_from"] != "default" else ""
        why = f"   [skipped {'; '.join(c['skipped'])}]" if c["skipped"] else ""
        lines.append(f"  {op:<20} {c['provider']}{source}{why}")
        lines.append(f"  {'':<20} used by: {c['serves']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    try:
        info = collect()
    except ValueError as e:  # a bad FORGE_KERNELS* value: say it plainly
        raise SystemExit(f"vllm_forge.info: {e}") from None
    print(json.dumps(info, indent=2) if args.json else format_text(info))


if __name__ == "__main__":
    main()
