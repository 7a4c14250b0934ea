"""Warm-started scratchpad vs fresh noise at the deployed adaptive setting, on held-out data.

    .venv/bin/rd-vla sim-demos build/heldout --tasks transfer_cube insertion --episodes 10 --seed 1000
    .venv/bin/python benchmarks/warm_start.py --bags build/heldout/* --sim-episodes 20

The deployed setting is config/rd_vla_node.yaml's (action_mse 1e-3, linear horizon) three ways:
`halting.warm_start` off (fresh noise), on with the state shifted by the rows executed
(`halting.warm_start_shift` true), and on unshifted (its default); everything else is equal.
Replay: each held-out bag through OfflineReplay, each setting re-planning when its executed rows run
out (as the node does, so a shifted warm start moves by the H_exec rows executed); mean k*, mean
H_exec, executed-row and full-chunk MAE against the recorded commands (rad; grippers in their own
units), the executed trajectory's jerk (mean |third difference| per control period, arm joints,
mrad). Simulation: sim-eval's in-process closed loop (`rd-vla sim-eval --depths "" --thresholds 1e-3
[--warm-start yes [--warm-start-shift yes|no]]`) on consecutive seeds; success with 95% Wilson
intervals. The last line is key=value pairs for scripts.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table
from heldout import deployed_settings, make_runner, mean, replay_bags, seed_range, sim_episodes, success_cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="embedded")
    parser.add_argument("--bags", type=Path, nargs="*", default=[], help="held-out bags (none: skip the replay)")
    parser.add_argument("--sim-task", default="transfer_cube")
    parser.add_argument("--sim-episodes", type=int, default=20, help="episodes per setting (0: skip the simulation)")
    parser.add_argument("--seed", type=int, default=1000, help="first held-out seed of the simulation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, deployed = deployed_settings()
    cold, warm = replace(deployed, warm_start=False), replace(deployed, warm_start=True, warm_start_shift=True)
    unshifted = replace(warm, warm_start_shift=False)
    sweep = [("cold (noise)", cold), ("warm, shifted", warm), ("warm, unshifted", unshifted)]
    runner, robot = make_runner(args.checkpoint)
    print(f"machine: {machine()}")
    keys = {}
    if args.bags:
        start = time.perf_counter()
        pooled, recorded_jerk = replay_bags(runner, robot, sorted(args.bags), sweep, ["none"])
        base = mean(pooled[0].iterations)
        rows = [[p.name, p.bags, len(p.iterations), f"{mean(p.iterations):.2f}",
                 f"{100 * (1 - mean(p.iterations) / base):.0f}%", f"{mean(p.horizons):.2f}", f"{p.exec_mae:.4f}",
                 f"{p.full_mae:.4f}", f"{p.jerk_mrad:.3f}"] for p in pooled]  # fmt: skip
        tasks = ", ".join(sorted({b.name.rsplit("_", 1)[0] for b in args.bags}))
        print_table(
            f"Replay, {len(args.bags)} held-out bags ({tasks}), deployed setting, re-planning at H_exec;"
            f" recorded commands' jerk {recorded_jerk:.3f} mrad"
            f" ({time.perf_counter() - start:.0f} s)",
            ["setting", "bags", "chunks", "mean k*", "saving", "mean H_exec", "exec MAE", "full MAE", "jerk mrad"],
            rows,
        )
        for tag, p in (("shifted", pooled[1]), ("unshifted", pooled[2])):
            keys |= {f"replay_saving_{tag}": 1 - mean(p.iterations) / base,
                     f"replay_full_mae_ratio_{tag}": p.full_mae / pooled[0].full_mae}  # fmt: skip
    if args.sim_episodes > 0:
        seeds = list(range(args.seed, args.seed + args.sim_episodes))
        start = time.perf_counter()
        results = sim_episodes(runner, robot, args.sim_task, seeds, sweep)
        base = results[sweep[0][0]]["mean_iterations"]
        rows = [[name, seed_range(seeds), s["chunks"], f"{s['mean_iterations']:.2f}",
                 f"{100 * (1 - s['mean_iterations'] / base):.0f}%", f"{s['mean_execution_horizon']:.2f}",
                 success_cell(s), success_cell(s, "success_final")] for name, s in results.items()]  # fmt: skip
        print_table(
            f"Simulation, {args.sim_task}, {len(seeds)} episodes per setting ({time.perf_counter() - start:.0f} s)",
            ["setting", "seeds", "chunks", "mean k*", "saving", "mean H_exec", "success (reached 4)",
             "success (4 at the end)"],
            rows,
        )  # fmt: skip
        cold_success = results[sweep[0][0]]["success_reached"]
        for tag, (name, _) in zip(("shifted", "unshifted"), sweep[1:], strict=True):
            keys |= {f"sim_saving_{tag}": 1 - results[name]["mean_iterations"] / base,
                     f"sim_success_diff_{tag}": results[name]["success_reached"] - cold_success}  # fmt: skip
    print("\n" + " ".join(f"{k}={v:.4f}" for k, v in keys.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
