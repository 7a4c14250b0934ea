"""Chunk blending (none / ensemble / crossfade) at the deployed setting, on held-out data.

    .venv/bin/rd-vla sim-demos build/heldout --tasks transfer_cube insertion --episodes 10 --seed 1000
    .venv/bin/python benchmarks/blending.py --bags build/heldout/* [--every-period] \
        [--sim-task insertion --sim-episodes 20]

Replay (`rd-vla replay --stride horizon --blending none,ensemble,crossfade` on each bag, pooled): the
deployed setting (config/rd_vla_node.yaml, blending.decay from it) re-plans when its executed rows run
out, as the node does; every chunk goes through a ChunkBlender of the mode (the node's class) before
it is scored. Chunks are the same in every mode (the head sees the same observations), so modes
differ only by blending. Reported: mean k*, executed-row and full-chunk MAE of the blended rows against
the recorded commands (rad; grippers in their own units), and the jerk of the trajectory the executed
rows form (each chunk replacing the rest of the previous one): mean |q[t+3] - 3 q[t+2] + 3 q[t+1] -
q[t]| per control period over the arm joints, in mrad (x 1/period^3 = 125000/s^3 for rad/s^3); the
recorded commands' own jerk is printed as the reference. Simulation (optional): sim-eval's in-process
closed loop with each listed mode on consecutive seeds; success with 95% Wilson intervals.
The last line is key=value pairs for scripts.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table
from heldout import deployed_settings, make_runner, mean, replay_bags, seed_range, sim_episodes, success_cell

from rd_vla_ros.runtime.blending import BLENDING_MODES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="embedded")
    parser.add_argument("--bags", type=Path, nargs="*", default=[], help="held-out bags (none: skip the replay)")
    parser.add_argument("--modes", nargs="+", default=list(BLENDING_MODES), choices=BLENDING_MODES)
    parser.add_argument("--every-period", action="store_true",
                        help="also replay the deployed halting with horizon fixed h=1: a re-plan every control "
                             "period, ACT's temporal-ensembling regime (node: horizon.schedule fixed, "
                             "horizon.fixed.h 1)")  # fmt: skip
    parser.add_argument("--sim-task", default="insertion")
    parser.add_argument("--sim-modes", nargs="+", default=["none", "ensemble"], choices=BLENDING_MODES)
    parser.add_argument("--sim-episodes", type=int, default=0, help="episodes per mode (0: skip the simulation)")
    parser.add_argument("--seed", type=int, default=1000, help="first held-out seed of the simulation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, deployed = deployed_settings()
    runner, robot = make_runner(args.checkpoint)
    print(f"machine: {machine()}")
    keys = {}
    if args.bags:
        start = time.perf_counter()
        sweep = [("deployed", deployed)]
        if args.every_period:
            sweep.append(("every period (h=1)", replace(deployed, horizon="fixed", horizon_params={"h": 1})))
        pooled, recorded_jerk = replay_bags(runner, robot, sorted(args.bags), sweep, args.modes)
        rows = [[p.name, p.bags, len(p.iterations), f"{mean(p.iterations):.2f}", f"{mean(p.horizons):.2f}",
                 f"{p.exec_mae:.4f}", f"{p.full_mae:.4f}", f"{p.jerk_mrad:.3f}"] for p in pooled]  # fmt: skip
        tasks = ", ".join(sorted({b.name.rsplit("_", 1)[0] for b in args.bags}))
        print_table(
            f"Replay, {len(args.bags)} held-out bags ({tasks}), deployed setting, re-planning at H_exec;"
            f" recorded commands' jerk {recorded_jerk:.3f} mrad ({time.perf_counter() - start:.0f} s)",
            ["setting", "bags", "chunks", "mean k*", "mean H_exec", "exec MAE", "full MAE", "jerk mrad"],
            rows,
        )
        for p in pooled:
            tag = re.sub(r"\W+", "_", p.name).strip("_")
            keys |= {f"replay_exec_mae_{tag}": p.exec_mae, f"replay_jerk_mrad_{tag}": p.jerk_mrad}
    if args.sim_episodes > 0:
        seeds = list(range(args.seed, args.seed + args.sim_episodes))
        rows = []
        for mode in args.sim_modes:
            start = time.perf_counter()
            s = sim_episodes(runner, robot, args.sim_task, seeds, [("deployed", deployed)], mode)["deployed"]
            rows.append([mode, seed_range(seeds), s["chunks"], f"{s['mean_iterations']:.2f}",
                         f"{s['mean_execution_horizon']:.2f}", success_cell(s), success_cell(s, "success_final"),
                         f"{time.perf_counter() - start:.0f}"])  # fmt: skip
            keys[f"sim_success_{mode}"] = s["success_reached"]
        print_table(
            f"Simulation, {args.sim_task}, deployed setting, {len(seeds)} episodes per blending mode",
            ["blending", "seeds", "chunks", "mean k*", "mean H_exec", "success (reached 4)", "success (4 at the end)",
             "wall s"],
            rows,
        )  # fmt: skip
    print("\n" + " ".join(f"{k}={v:.4f}" for k, v in keys.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
