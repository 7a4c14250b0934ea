"""Per-chunk latency of checkpoints side by side: what the node pays per chunk on this machine.

    .venv/bin/python benchmarks/checkpoint_latency.py CHECKPOINT [CHECKPOINT ...] [--repeats 200]
    .venv/bin/python benchmarks/checkpoint_latency.py embedded build/old_embedded   # new vs previous model

Each checkpoint runs through PolicyRunner (the node's own inference path: image preparation,
backbone, recurrent head, output checks) on the simulated robot's start observation (TransferCube,
held-out seed 1000: every camera the checkpoint uses at 160x120, cropped and resized as it says,
the joint positions) with its deployed settings, one torch thread (the node's default
on 2 cores), alternating checkpoint by checkpoint every repeat so all see the same machine load.
Reported: preprocess / backbone / head / total p50 and p99 and the mean k*; the first checkpoint is
the reference of the ratio column. The last line is key=value pairs (p50 ratio of each to the first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile_ms, print_table

from rd_vla_ros.model.checkpoint import load_policy
from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.paths import resolve_checkpoint
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.sim.aloha import AlohaSim


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runners = {}
    for name in args.checkpoints:
        policy = load_policy(resolve_checkpoint(name))
        cameras = list(policy.config.camera_names)
        runners[name] = PolicyRunner(policy, ALOHA_JOINTS, cameras)
    sim = AlohaSim("transfer_cube", sorted({c for r in runners.values() for c in r.camera_names}))
    sim.reset(1000)
    images, qpos = sim.images(), sim.qpos()
    sim.close()
    times: dict[str, dict[str, list[float]]] = {n: {"pre": [], "bb": [], "head": [], "total": []} for n in runners}
    iterations: dict[str, list[int]] = {n: [] for n in runners}
    with torch.no_grad():
        for repeat in range(args.repeats + 5):
            for name, runner in runners.items():
                obs = Observation(images, qpos, "transfer the cube", stamp_ns=repeat * 20_000_000)
                chunk, timing = runner.run(obs, repeat)
                if repeat < 5:  # warm-up
                    continue
                for key, value in (("pre", timing.preprocess_s), ("bb", timing.backbone_s),
                                   ("head", timing.head_s), ("total", timing.total_s)):  # fmt: skip
                    times[name][key].append(value)
                iterations[name].append(chunk.iterations)
    first = args.checkpoints[0]
    reference = percentile_ms(times[first]["total"], 50)
    rows = []
    for name, t in times.items():
        config = runners[name].policy.config
        rows.append([
            name, f"{config.backbone.vision_encoders[0]} {config.backbone.image_size} px x {len(config.camera_names)}",
            sum(p.numel() for p in runners[name].policy.parameters()) / 1e6,
            percentile_ms(t["pre"], 50), percentile_ms(t["bb"], 50), percentile_ms(t["head"], 50),
            percentile_ms(t["total"], 50), percentile_ms(t["total"], 99), float(np.mean(iterations[name])),
            percentile_ms(t["total"], 50) / reference,
        ])  # fmt: skip
    print(f"machine: {machine()}; {args.repeats} chunks per checkpoint, deployed settings, alternating")
    print_table("per-chunk latency through PolicyRunner (ms)",
                ["checkpoint", "vision", "M params", "preprocess p50", "backbone p50", "head p50", "total p50",
                 "total p99", "mean k*", f"p50 / {first}"], rows)  # fmt: skip
    print(" ".join(f"p50_ratio[{r[0]}]={r[-1]:.3f}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
