"""Runtime latency: torch vs onnxruntime, side by side in one run, on this machine's CPU (and GPU if any).

    .venv/bin/python benchmarks/runtime.py                    # tiny and paper sizes, CPU (+ GPU if any)
    .venv/bin/python benchmarks/runtime.py --sizes tiny       # quick
    .venv/bin/python benchmarks/runtime.py --devices cuda     # GPU only

For each size and device: export the policy (rd_vla_ros.export.onnx) into a temporary directory, then
on one observation (batch 1, two cameras, a short instruction) measure the runtimes, alternating
repeat by repeat so all see the same machine load: torch (float32), torch with a bfloat16 backbone,
onnxruntime with the whole loop in head_loop.onnx (the default) and with the loop on the host around
head_step.onnx, the latter without and with I/O binding (binding is the default on a GPU only):
  - encode (backbone + conditioning, once per observation),
  - one head iteration (core + coda),
  - a whole chunk at fixed depth 12 and with adaptive halting (action_mse, delta 1e-3),
  latency p50/p99, actions per second (chunk length / end-to-end latency), and the largest difference
  of each runtime's chunk from torch float32's (parity; CPU only, a CUDA generator draws another
  scratchpad). Weights are random: latency does not depend on their values, and parity holds for any
  weights. Anchors for the GPU table: VLA-Adapter 219 actions/s (chunk 8), OpenVLA-OFT ~110; RD-VLA
  target: an end-to-end chunk under 20 ms on an H100-class GPU.
The last line is key=value pairs (ort_parity_max_abs, ort_over_torch_cpu_speedup, torch_chunk12_p50_ms_<device>_<size>,
...).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile_ms, print_table

from rd_vla_ros.export.onnx import export
from rd_vla_ros.export.runtime import OnnxPolicy
from rd_vla_ros.model.config import InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy

FIXED = InferenceSettings(fixed_depth=12)
ADAPTIVE = InferenceSettings()


def observation(policy: RDVLAPolicy) -> dict:
    s = policy.config.backbone.image_size
    g = torch.Generator().manual_seed(0)
    c = len(policy.config.camera_names)
    return {"images": torch.rand(1, c, 3, s, s, generator=g), "proprio": torch.randn(1, 14, generator=g),
            "instruction": ["transfer the cube"]}  # fmt: skip


def make_runtimes(policy: RDVLAPolicy, directory: Path, device: torch.device) -> dict[str, object]:
    """The runtimes compared on `device`: torch float32, torch with a bfloat16 backbone, onnxruntime
    with the loop graph, and with the host loop without and with I/O binding; the first onnxruntime
    entry is the default on that device."""
    threads = torch.get_num_threads()
    half = copy.deepcopy(policy)
    runtimes: dict[str, object] = {
        "torch": policy.to(device),
        "torch bf16 backbone": half.to(device).eval().half_backbone(),
    }
    cuda = device.type == "cuda"
    providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    loop = OnnxPolicy(directory, providers, threads, cuda, loop=True)
    # named by the provider the sessions run on: without onnxruntime-gpu a CUDA request runs on the CPU
    prefix = "onnxruntime" if not cuda else f"onnxruntime {loop.providers[0].removesuffix('ExecutionProvider')}"
    # the first onnxruntime entry is each device's default
    runtimes[f"{prefix} (loop graph)"] = loop
    runtimes[f"{prefix} (host loop, plain run)"] = OnnxPolicy(directory, providers, threads, False, loop=False)
    runtimes[f"{prefix} (host loop, I/O binding)"] = OnnxPolicy(directory, providers, threads, True, loop=False)
    return runtimes


def measure(size: str, repeats: int, device: torch.device) -> tuple[list[list[object]], dict[str, float]]:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config(size)).eval()
    obs = observation(policy)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export(policy, Path(tmp))
        export_s = time.perf_counter() - start
        runtimes = make_runtimes(policy, Path(tmp), device)
        ort_name = next(name for name in runtimes if name.startswith("onnxruntime"))
        times: dict[str, dict[str, list[float]]] = {name: {"encode": [], "fixed": [], "adaptive": [], "step": []}
                                                   for name in runtimes}  # fmt: skip
        iterations: dict[str, list[int]] = {name: [] for name in runtimes}
        parity = {name: 0.0 for name in runtimes}
        with torch.no_grad():
            for r in range(repeats + 1):  # the first round warms up
                chunks = {}
                for name, p in runtimes.items():  # alternating: every runtime sees the same machine load
                    _sync(device)
                    t0 = time.perf_counter()
                    encoded = p.encode(obs)
                    _sync(device)
                    t1 = time.perf_counter()
                    fixed = p.run_head(encoded, FIXED, torch.Generator(device=p.device).manual_seed(r))
                    t2 = time.perf_counter()  # run_head returns host tensors: synchronised
                    adaptive = p.run_head(encoded, ADAPTIVE, torch.Generator(device=p.device).manual_seed(r))
                    t3 = time.perf_counter()
                    chunks[name] = fixed.actions.cpu()
                    if r:
                        times[name]["encode"].append(t1 - t0)
                        times[name]["fixed"].append(t1 - t0 + t2 - t1)
                        times[name]["adaptive"].append(t1 - t0 + t3 - t2)
                        times[name]["step"].append((t2 - t1) / 12)
                        iterations[name].append(int(adaptive.iterations[0]))
                for name in runtimes:  # on a GPU torch draws the scratchpad from a CUDA generator: no parity
                    parity[name] = (
                        math.nan
                        if device.type == "cuda"
                        else max(parity[name], float((chunks["torch"] - chunks[name]).abs().max()))
                    )
    k = policy.config.head.chunk_length
    rows = []
    for name in runtimes:
        t = times[name]
        chunk_ms = percentile_ms(t["fixed"], 50)
        rows.append([size, name, percentile_ms(t["encode"], 50), percentile_ms(t["step"], 50), chunk_ms,
                     percentile_ms(t["fixed"], 99), k / (chunk_ms / 1e3), percentile_ms(t["adaptive"], 50),
                     sum(iterations[name]) / len(iterations[name]), parity[name]])  # fmt: skip
    fixed_p50 = {name: percentile_ms(times[name]["fixed"], 50) for name in runtimes}
    stats = {"parity": parity[ort_name], "speedup": fixed_p50["torch"] / fixed_p50[ort_name], "export_s": export_s,
             "torch_chunk12_p50_ms": fixed_p50["torch"], "ort_chunk12_p50_ms": fixed_p50[ort_name],
             "same_k": float(iterations["torch"] == iterations[ort_name]),
             "bf16_speedup": fixed_p50["torch"] / fixed_p50["torch bf16 backbone"],
             "bf16_max_abs": parity["torch bf16 backbone"]}  # fmt: skip
    bound = next(name for name in runtimes if "I/O binding" in name)
    plain = next(name for name in runtimes if "plain run" in name)
    stats["binding_speedup"] = fixed_p50[plain] / fixed_p50[bound]  # > 1: binding is faster
    host = bound if device.type == "cuda" else plain  # the host loop as it would run by default
    stats["loop_speedup"] = fixed_p50[host] / fixed_p50[ort_name]  # > 1: the loop graph is faster
    adaptive_p50 = {name: percentile_ms(times[name]["adaptive"], 50) for name in (host, ort_name)}
    stats["loop_speedup_adaptive"] = adaptive_p50[host] / adaptive_p50[ort_name]
    return rows, stats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch / onnxruntime threads (0 = all cores)")
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, and cuda if any)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"machine: {machine()}")
    keys: dict[str, dict[str, float]] = {}
    columns = ["size", "runtime", "encode p50 ms", "iteration p50 ms", "chunk@12 p50 ms", "chunk@12 p99 ms",
               "actions/s @12", "adaptive p50 ms", "adaptive mean k*", "max |chunk - torch|"]  # fmt: skip
    for device in map(torch.device, devices):
        rows = []
        for size in args.sizes:
            repeats = args.repeats if size == "tiny" or device.type == "cuda" else max(3, args.repeats // 4)
            size_rows, stats = measure(size, repeats, device)
            rows += size_rows
            keys[f"{device.type}_{size}"] = stats
        where = "CPU" if device.type == "cpu" else f"GPU ({torch.cuda.get_device_name(device)})"
        print_table(f"{where}, batch 1, two cameras: torch vs onnxruntime (benchmarks/runtime.py)", columns, rows)
    parts = []
    cpu = [s for name, s in keys.items() if name.startswith("cpu")]
    if cpu:
        parts += [f"ort_parity_max_abs={max(s['parity'] for s in cpu):.3g}",
                  f"ort_over_torch_cpu_speedup={cpu[0]['speedup']:.3f}"]  # fmt: skip
    for name, s in keys.items():
        parts += [f"ort_over_torch_speedup_{name}={s['speedup']:.3f}", f"same_k_{name}={int(s['same_k'])}",
                  f"bf16_backbone_speedup_{name}={s['bf16_speedup']:.3f}",
                  f"export_s_{name}={s['export_s']:.1f}"]  # fmt: skip
        parts.append(f"torch_chunk12_p50_ms_{name}={s['torch_chunk12_p50_ms']:.4g}")
        parts.append(f"ort_chunk12_p50_ms_{name}={s['ort_chunk12_p50_ms']:.4g}")
        parts.append(f"ort_binding_over_plain_{name}={s['binding_speedup']:.3f}")
        parts.append(f"ort_loop_graph_over_host_loop_{name}={s['loop_speedup']:.3f}")
        parts.append(f"ort_loop_graph_over_host_loop_adaptive_{name}={s['loop_speedup_adaptive']:.3f}")
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
