"""The scripted expert's own success on given seeds: the ceiling an imitation policy is measured against.

    .venv/bin/python benchmarks/expert_success.py --seed 1000 --episodes 50
    .venv/bin/python benchmarks/expert_success.py --tasks insertion --disturbance 0,0.02

Each episode replays the scripted joint trajectory (`rd_vla_ros.sim.scripted`, the demonstrations'
source) in the joint-position scene, physics only (no rendering), undisturbed or with the DART-style
disturbance that `rd-vla sim-demos --disturbance` records with. Reported per task and disturbance, as
`rd-vla sim-eval` counts them: "reached" (the reward reached 4 at some step), "final" (4 at the last
step), both with 95% Wilson intervals, and the mean number of steps at reward 4. On Insertion, reward 4
means the peg touches the pin at the socket's end: the scripted expert presses it there for a step or two,
then the peg rests in the socket a millimetre off the pin (reward 2), so its "final" success measures
where the peg rests at the last step, not whether it is in the socket.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table

from rd_vla_ros.sim.aloha import MAX_REWARD
from rd_vla_ros.sim.evaluate import wilson
from rd_vla_ros.sim.scripted import Disturbance, record_demo


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["transfer_cube", "insertion"])
    parser.add_argument("--seed", type=int, default=1000, help="first seed (default: 1000, the held-out seeds)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--disturbance", type=floats, default=[0.0], help="stds to compare, e.g. 0,0.02 (rad)")
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)
    rows, summary = [], []
    for task in args.tasks:
        for std in args.disturbance:
            disturbance = Disturbance(std) if std > 0 else None
            demos = [record_demo(task, seed, None, disturbance=disturbance) for seed in seeds]
            reached = sum(d.success["reached"] for d in demos)
            final = sum(d.success["final"] for d in demos)
            at_max = [d.steps_at_max for d in demos if d.success["reached"]]
            rows.append([task, std, f"{seeds[0]}-{seeds[-1]}", len(demos), pct(reached, len(demos)),
                         pct(final, len(demos)), float(np.mean(at_max)) if at_max else float("nan")])  # fmt: skip
            print(f"{task} disturbance {std}: reached {reached}/{len(demos)}, final {final}/{len(demos)}", flush=True)
            key, n = f"{task}_{std:g}", len(demos)
            summary += [f"{key}_reached={reached / n:.3f}", f"{key}_final={final / n:.3f}"]
    print_table(
        f"Scripted expert success (reward {MAX_REWARD}); {machine()}",
        ["task", "disturbance std", "seeds", "episodes", "reached", "final", f"mean steps at {MAX_REWARD} (reached)"],
        rows,
    )
    print(" ".join(summary))
    return 0


def pct(successes: int, n: int) -> str:
    lo, hi = wilson(successes, n)
    return f"{100 * successes / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


if __name__ == "__main__":
    raise SystemExit(main())
