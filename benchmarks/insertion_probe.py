"""Where closed-loop Insertion fails: a diagnostic of a checkpoint against the scripted expert, seed by seed.

    .venv/bin/python benchmarks/insertion_probe.py --checkpoint embedded --seed 2000 --episodes 20

Each seed runs twice from the same scene: the scripted expert (undisturbed, physics only) and the
policy closed loop through `rd-vla sim-eval`'s episode loop (the checkpoint's deployed setting). Both
record the peg's position relative to the socket at every control step (simulator state, read for the
diagnosis only; the policy never sees it). Per episode: the highest reward of each (0 nothing, 1 both
grasped, 2 both lifted, 3 peg touches the socket, 4 peg touches the pin), the first step the policy
reaches 3 and 4, and the policy's closest approach to the expert's pose at its first reward 4
(distance and x / y / z offsets in mm; x is the insertion axis, so a positive dx is a peg short of
the pin). The summary counts the failure stages. Use seeds the checkpoint was neither trained nor
evaluated on (training < 1000, `tools/eval_embedded.sh` 1000-1049) when the probe guides a change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table

from rd_vla_ros.model.checkpoint import load_policy
from rd_vla_ros.paths import config_path, resolve_checkpoint
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.sim.aloha import EPISODE_STEPS, AlohaSim
from rd_vla_ros.sim.evaluate import run_episode
from rd_vla_ros.sim.scripted import joint_trajectory_for

STAGES = ("nothing", "grasped", "lifted", "peg on socket", "inserted")


class TracedSim(AlohaSim):
    """The simulation, recording the peg's position relative to the socket after every step."""

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.relative: list[np.ndarray] = []  # (3,) per step, metres

    def step(self, action: np.ndarray) -> int:
        reward = super().step(action)
        xpos = self.physics.named.data.xpos
        self.relative.append(np.array(xpos["peg"]) - np.array(xpos["socket"]))
        return reward


def first_step(rewards: list[int], level: int) -> int | None:
    hits = np.flatnonzero(np.asarray(rewards) >= level)
    return int(hits[0]) if hits.size else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="embedded")
    parser.add_argument("--seed", type=int, default=2000, help="first seed (default: 2000, never trained on)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = resolve_checkpoint(args.checkpoint)
    policy = load_policy(checkpoint)
    robot = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    runner = PolicyRunner(policy, robot.joint_names, list(policy.config.camera_names))
    rows, stages, offsets = [], [0] * len(STAGES), []
    for seed in range(args.seed, args.seed + args.episodes):
        expert = TracedSim("insertion", ())
        expert.reset(seed)
        targets = joint_trajectory_for("insertion", seed)  # (EPISODE_STEPS + 1, 14)
        for t in range(EPISODE_STEPS):
            expert.step(targets[t + 1])
        expert.close()
        expert_inserted = first_step(expert.rewards, 4)
        reference = expert.relative[-1 if expert_inserted is None else expert_inserted]
        sim = TracedSim("insertion", runner.camera_names)
        result = run_episode(runner, robot, "insertion", seed, runner.settings, sim=sim)
        sim.close()
        error = np.array(sim.relative) - reference  # (T, 3)
        t = int(np.argmin(np.linalg.norm(error, axis=1)))
        dx, dy, dz = 1000 * error[t]
        stages[result.max_reward] += 1
        if result.max_reward == 3:
            offsets.append((abs(dx), abs(dy), abs(dz)))
        contact, inserted = (first_step(sim.rewards, level) for level in (3, 4))
        closest = 1000 * float(np.linalg.norm(error[t]))
        rows.append([seed, max(expert.rewards), result.max_reward, "-" if contact is None else contact,
                     "-" if inserted is None else inserted, closest, t, dx, dy, dz])  # fmt: skip
        print(f"seed {seed}: expert {max(expert.rewards)}, policy {result.max_reward}", flush=True)
    print_table(
        f"Insertion, {checkpoint} (deployed setting) against the scripted expert; {machine()}",
        ["seed", "expert max", "policy max", "first 3", "first 4", "closest (mm)", "at step", "dx", "dy", "dz"],
        rows,
    )
    counts = list(zip(STAGES, stages, strict=True))
    print_table("Highest reward of the policy's episodes", ["stage", "episodes"], [list(c) for c in counts])
    median = np.median(offsets, axis=0) if offsets else [float("nan")] * 3
    print(" ".join(f"{name.replace(' ', '_')}={n}" for name, n in counts)
          + f" contact_median_abs_dx_mm={median[0]:.1f} dy_mm={median[1]:.1f} dz_mm={median[2]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
