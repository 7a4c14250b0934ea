"""Runtime latency: torch vs onnxruntime, side by side in one run, on this machine's CPU (and GPU if any).

    .venv/bin/python benchmarks/runtime.py                    # tiny and paper sizes
    .venv/bin/python benchmarks/runtime.py --sizes tiny       # quick

For each size: export the policy (rd_vla_ros.export.onnx) into a temporary directory, then on one
observation (batch 1, two cameras, a short instruction) measure, alternating torch and onnxruntime
repeat by repeat so both see the same machine load:
  - encode (backbone + conditioning, once per observation),
  - one head iteration (core + coda),
  - a whole chunk at fixed depth 12 and with adaptive halting (action_mse, delta 1e-3),
  latency p50/p99 and actions per second (chunk length / end-to-end latency), and the largest
  difference between the two runtimes' chunks (parity). Weights are random: latency does not depend
on their values, and parity holds for any weights. On a GPU (torch CUDA, onnxruntime CUDA provider)
the same table is printed for the GPU; anchors: VLA-Adapter 219 actions/s (chunk 8), OpenVLA-OFT ~110;
RD-VLA target: an end-to-end chunk under 20 ms on an H100-class GPU.
The last line is key=value pairs (ort_parity_max_abs, ort_over_torch_cpu_speedup, ...).
"""

from __future__ import annotations

import argparse
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
    return {"images": torch.rand(1, 2, 3, s, s, generator=g), "proprio": torch.randn(1, 14, generator=g),
            "instruction": ["transfer the cube"]}  # fmt: skip


def measure(size: str, repeats: int) -> tuple[list[list[object]], dict[str, float]]:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config(size)).eval()
    obs = observation(policy)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export(policy, Path(tmp))
        export_s = time.perf_counter() - start
        ort = OnnxPolicy(tmp, ["CPUExecutionProvider"], threads=torch.get_num_threads())
        runtimes = {"torch": policy, "onnxruntime": ort}
        times: dict[str, dict[str, list[float]]] = {name: {"encode": [], "fixed": [], "adaptive": [], "step": []}
                                                   for name in runtimes}  # fmt: skip
        iterations: dict[str, list[int]] = {name: [] for name in runtimes}
        parity = 0.0
        with torch.no_grad():
            for r in range(repeats + 1):  # the first round warms up
                chunks = {}
                for name, p in runtimes.items():
                    t0 = time.perf_counter()
                    encoded = p.encode(obs)
                    t1 = time.perf_counter()
                    fixed = p.run_head(encoded, FIXED, torch.Generator().manual_seed(r))
                    t2 = time.perf_counter()
                    adaptive = p.run_head(encoded, ADAPTIVE, torch.Generator().manual_seed(r))
                    t3 = time.perf_counter()
                    chunks[name] = fixed.actions
                    if r:
                        times[name]["encode"].append(t1 - t0)
                        times[name]["fixed"].append(t1 - t0 + t2 - t1)
                        times[name]["adaptive"].append(t1 - t0 + t3 - t2)
                        times[name]["step"].append((t2 - t1) / 12)
                        iterations[name].append(int(adaptive.iterations[0]))
                parity = max(parity, float((chunks["torch"] - chunks["onnxruntime"]).abs().max()))
    k = policy.config.head.chunk_length
    rows = []
    for name in runtimes:
        t = times[name]
        chunk_ms = percentile_ms(t["fixed"], 50)
        rows.append([size, name, percentile_ms(t["encode"], 50), percentile_ms(t["step"], 50), chunk_ms,
                     percentile_ms(t["fixed"], 99), k / (chunk_ms / 1e3), percentile_ms(t["adaptive"], 50),
                     sum(iterations[name]) / len(iterations[name])])  # fmt: skip
    speedup = percentile_ms(times["torch"]["fixed"], 50) / percentile_ms(times["onnxruntime"]["fixed"], 50)
    same_k = iterations["torch"] == iterations["onnxruntime"]
    return rows, {"parity": parity, "speedup": speedup, "export_s": export_s, "same_k": float(same_k)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch / onnxruntime threads (0 = all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    rows, keys = [], {}
    for size in args.sizes:
        repeats = args.repeats if size == "tiny" else max(3, args.repeats // 4)
        size_rows, stats = measure(size, repeats)
        rows += size_rows
        keys[size] = stats
    print_table(
        "CPU, batch 1, two cameras: torch vs onnxruntime (benchmarks/runtime.py)",
        ["size", "runtime", "encode p50 ms", "iteration p50 ms", "chunk@12 p50 ms", "chunk@12 p99 ms",
         "actions/s @12", "adaptive p50 ms", "adaptive mean k*"],
        rows,
    )  # fmt: skip
    if torch.cuda.is_available():
        print("\nGPU: measured by a GPU session; this CPU run has none")
    first = args.sizes[0]
    parts = [f"ort_parity_max_abs={max(s['parity'] for s in keys.values()):.3g}",
             f"ort_over_torch_cpu_speedup={keys[first]['speedup']:.3f}"]  # fmt: skip
    for size, s in keys.items():
        parts += [f"ort_over_torch_cpu_speedup_{size}={s['speedup']:.3f}", f"same_k_{size}={int(s['same_k'])}",
                  f"export_s_{size}={s['export_s']:.1f}"]  # fmt: skip
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
